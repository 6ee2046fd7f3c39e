"""The fused y += alpha * x through NumPy's bundled OpenBLAS, and its fallbacks where a wheel's layout differs."""
import builtins

import numpy as np
import pytest
import torch

import dtrain
from dtrain import _axpy


def test_numpy_layout_not_found_or_not_a_library(tmp_path):
    assert _axpy._numpy_blas(str(tmp_path)) is None                    # no numpy.libs (macOS, conda, ...)
    (tmp_path / "libscipy_openblas64_-0000.so").write_bytes(b"not a shared library")
    assert _axpy._numpy_blas(str(tmp_path)) is None


def test_a_blas_with_other_argument_types_is_rejected():
    def wrong(dt, alpha, x, y):  # e.g. a 32-bit-integer ABI reading garbage: writes past n, or nothing
        y += np.float32(1)
    assert not _axpy._works(wrong)
    assert not _axpy._works(lambda dt, a, x, y: (_ for _ in ()).throw(OSError("symbol misbehaves")))
    assert _axpy._works(lambda dt, a, x, y: y.__iadd__(a * x))


def _no_scipy(monkeypatch):
    real = builtins.__import__

    def imp(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError("no scipy here")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", imp)


def test_neither_blas_found_falls_back_to_two_roundings(monkeypatch):
    monkeypatch.setattr(_axpy, "_numpy_blas", lambda libs=None: (_ for _ in ()).throw(RuntimeError("odd wheel")))
    _no_scipy(monkeypatch)
    own, table = _axpy._load()
    assert own is None and table == {}
    monkeypatch.setattr(_axpy, "_NUMPY_AXPY", own)
    monkeypatch.setattr(_axpy, "_AXPY", table)
    rng = np.random.default_rng(0)
    y, x = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(1000).astype(np.float32)
    before = y.copy()
    assert not _axpy.fusable(y, x) and _axpy.axpy_(y, x, 0.5) is False
    np.testing.assert_array_equal(y, before)
    np.testing.assert_allclose(_axpy.add_scaled(y, x, -0.37), y + x * np.float32(-0.37), rtol=0, atol=0)
    # an optimizer still steps, within float32 rounding of torch
    init = rng.standard_normal((6, 5)).astype(np.float32)
    got = []
    for m in (dtrain, torch):
        w = m.tensor(init.copy(), requires_grad=True)
        opt = m.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.01)
        for _ in range(5):
            opt.zero_grad()
            (w.sin() * w).sum().backward()
            opt.step()
        got.append(w.detach().numpy())
    np.testing.assert_allclose(got[0], got[1], rtol=1e-5, atol=1e-6)


def test_scipy_used_where_numpy_layout_differs(monkeypatch):
    monkeypatch.setattr(_axpy, "_numpy_blas", lambda libs=None: None)
    own, table = _axpy._load()
    assert own is None and set(table) == {np.dtype(np.float32), np.dtype(np.float64)}
    y, x = np.ones(3 * _axpy._PIECE + 5), np.arange(3 * _axpy._PIECE + 5, dtype=np.float64)
    table[y.dtype](y.size, 2.0, x, y)
    np.testing.assert_array_equal(y, 1 + 2 * np.arange(y.size))


def test_pieces_cover_the_whole_array():
    if _axpy._NUMPY_AXPY is None:
        pytest.skip("NumPy's own OpenBLAS is not found in this wheel")
    n = 2 * _axpy._PIECE + 3
    y, x = np.zeros(n + 1, np.float32), np.ones(n, np.float32)
    assert _axpy.axpy_(y[:n], x, 3.0)
    assert (y[:n] == 3).all() and y[n] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_call_and_pieces_give_torchs_bits(dtype, monkeypatch):
    # a single-threaded BLAS takes the whole array in one call, a threaded one gets pieces that never wake its
    # threads: the same elements get the same fused multiply-add either way, torch's add_(alpha=) bits
    if _axpy._NUMPY_AXPY is None:
        pytest.skip("NumPy's own BLAS not found: SciPy's pieces are tested elsewhere")
    rng = np.random.default_rng(3)
    n = 3 * _axpy._PIECE + 17
    y0, x = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    want = torch.from_numpy(y0.copy()).add_(torch.from_numpy(x), alpha=-0.37).numpy()
    calls = []
    real = _axpy._NUMPY_AXPY
    monkeypatch.setattr(_axpy, "_NUMPY_AXPY", {dt: (lambda f: lambda n, *a: calls.append(n) or f(n, *a))(f)
                                               for dt, f in real.items()})
    for threads, pieces in ((1, [n]), (None, [n]), (2, [_axpy._PIECE] * 3 + [17])):
        monkeypatch.setattr(_axpy, "_blas_threads", threads)
        calls.clear()
        y = y0.copy()
        assert _axpy.axpy_(y, x, -0.37)
        assert calls == pieces
        np.testing.assert_array_equal(y, want)
