"""dtrain.testing.assert_close: torch's tolerance rules (rtol/atol by dtype) over dtrain tensors."""
import numpy as np

from . import _backend

_TOL = {"float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7),
        "complex64": (1.3e-6, 1e-5), "complex128": (1e-7, 1e-7)}


def _arr(x):
    from ._tensor import Tensor
    if isinstance(x, Tensor):
        return _backend.to_numpy(x.detach()._data), x.dtype.name, x.device
    a = np.asarray(x)
    return a, None, None


def assert_close(actual, expected, *, allow_subclasses=True, rtol=None, atol=None, equal_nan=False,
                 check_device=True, check_dtype=True, check_layout=True, check_stride=False, msg=None):
    """Raise AssertionError unless actual and expected match (shape, dtype, device, values within tolerance)."""
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        if len(actual) != len(expected):
            raise AssertionError(f"The length of the sequences mismatch: {len(actual)} != {len(expected)}")
        for a, e in zip(actual, expected):
            assert_close(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan, check_device=check_device,
                         check_dtype=check_dtype, msg=msg)
        return
    if isinstance(actual, dict) and isinstance(expected, dict):
        if actual.keys() != expected.keys():
            raise AssertionError(f"The keys of the mappings do not match: {sorted(actual)} != {sorted(expected)}")
        for k in actual:
            assert_close(actual[k], expected[k], rtol=rtol, atol=atol, equal_nan=equal_nan,
                         check_device=check_device, check_dtype=check_dtype, msg=msg)
        return
    a, adt, adev = _arr(actual)
    e, edt, edev = _arr(expected)
    if a.shape != e.shape:
        raise AssertionError(msg or f"The values for attribute 'shape' do not match: {a.shape} != {e.shape}.")
    if check_dtype and adt and edt and adt != edt:
        raise AssertionError(msg or f"The values for attribute 'dtype' do not match: torch.{adt} != torch.{edt}.")
    if check_device and adev is not None and edev is not None and adev != edev:
        raise AssertionError(msg or f"The values for attribute 'device' do not match: {adev} != {edev}.")
    if rtol is None or atol is None:
        rtol, atol = _TOL.get(adt or a.dtype.name, (0.0, 0.0))
    if a.dtype.kind in "fc" or e.dtype.kind in "fc":
        ok = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan)
    else:
        ok = a == e
    if not np.all(ok):
        bad = int(np.size(ok) - np.count_nonzero(ok))
        diff = np.abs(a.astype(np.float64) - e.astype(np.float64)) if a.dtype.kind != "c" else np.abs(a - e)
        raise AssertionError(msg or f"Tensor-likes are not close!\n\nMismatched elements: {bad} / {ok.size} "
                                    f"({100.0 * bad / max(ok.size, 1):.1f}%)\nGreatest absolute difference: "
                                    f"{np.nanmax(diff)} (up to {atol} allowed)")


assert_allclose = assert_close
