"""dtrain.fft against torch.fft: values, dtypes, shapes and gradients of every transform and helper."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises, to_numpy

import dtrain
import dtrain.fft

_rng = np.random.default_rng(7)
NORMS = [None, "backward", "ortho", "forward"]


def _real(*shape):
    return _rng.standard_normal(shape)


def _cplx(*shape):
    return _rng.standard_normal(shape) + 1j * _rng.standard_normal(shape)


def _plain(m, t):
    # torch's ihfft (and ifft of a real input) returns a tensor with the conjugate bit set, which numpy() refuses
    if isinstance(t, list):
        return [_plain(m, u) for u in t]
    return t.resolve_conj() if m is torch else t


# name -> (fn(m, x, norm), input shape): n / s cropping (smaller) and zero-padding (larger), negative dims
TRANSFORMS = {
    "fft": (lambda m, x, nm: m.fft.fft(x, norm=nm), (3, 6)),
    "fft_pad": (lambda m, x, nm: m.fft.fft(x, n=9, dim=0, norm=nm), (5, 2)),
    "fft_crop": (lambda m, x, nm: m.fft.fft(x, 4, -2, nm), (7, 3)),
    "ifft": (lambda m, x, nm: m.fft.ifft(x, norm=nm), (4, 5)),
    "ifft_pad": (lambda m, x, nm: m.fft.ifft(x, n=8, norm=nm), (2, 5)),
    "ifft_crop": (lambda m, x, nm: m.fft.ifft(x, n=3, dim=-1, norm=nm), (2, 6)),
    "fft2": (lambda m, x, nm: m.fft.fft2(x, norm=nm), (2, 3, 4)),
    "fft2_s": (lambda m, x, nm: m.fft.fft2(x, s=(5, 2), norm=nm), (2, 3, 4)),
    "ifft2": (lambda m, x, nm: m.fft.ifft2(x, dim=(0, -1), norm=nm), (3, 2, 4)),
    "ifft2_s": (lambda m, x, nm: m.fft.ifft2(x, s=(2, 6), dim=(-1, 0), norm=nm), (3, 2, 4)),
    "fftn": (lambda m, x, nm: m.fft.fftn(x, norm=nm), (2, 3, 4)),
    "fftn_s": (lambda m, x, nm: m.fft.fftn(x, s=(-1, 5), norm=nm), (2, 3, 4)),
    "fftn_dim": (lambda m, x, nm: m.fft.fftn(x, s=(1, 6), dim=(-3, 1), norm=nm), (2, 3, 4)),
    "ifftn": (lambda m, x, nm: m.fft.ifftn(x, norm=nm), (3, 4, 2)),
    "ifftn_s": (lambda m, x, nm: m.fft.ifftn(x, s=(2, 2, 5), norm=nm), (3, 4, 2)),
    "irfft": (lambda m, x, nm: m.fft.irfft(x, norm=nm), (3, 5)),
    "irfft_odd": (lambda m, x, nm: m.fft.irfft(x, n=9, norm=nm), (3, 5)),
    "irfft_pad": (lambda m, x, nm: m.fft.irfft(x, n=12, dim=0, norm=nm), (4, 3)),
    "irfft_crop": (lambda m, x, nm: m.fft.irfft(x, n=3, dim=-2, norm=nm), (6, 2)),
    "irfft2": (lambda m, x, nm: m.fft.irfft2(x, norm=nm), (2, 3, 4)),
    "irfft2_s": (lambda m, x, nm: m.fft.irfft2(x, s=(5, 7), norm=nm), (2, 3, 4)),
    "irfftn": (lambda m, x, nm: m.fft.irfftn(x, norm=nm), (3, 4, 3)),
    "irfftn_s": (lambda m, x, nm: m.fft.irfftn(x, s=(2, -1, 5), norm=nm), (3, 4, 3)),
    "irfftn_dim": (lambda m, x, nm: m.fft.irfftn(x, s=(4, 3), dim=(2, 0), norm=nm), (3, 4, 3)),
    # x * 1: torch's gradient of hfft's input is otherwise a conjugate view, which numpy() refuses
    "hfft": (lambda m, x, nm: m.fft.hfft(x * 1, norm=nm), (3, 5)),
    "hfft_odd": (lambda m, x, nm: m.fft.hfft(x, n=7, dim=0, norm=nm), (3, 5)),
    "hfft_crop": (lambda m, x, nm: m.fft.hfft(x, n=4, norm=nm), (2, 6)),
}

# real input only (torch refuses complex ones)
REAL_TRANSFORMS = {
    "rfft": (lambda m, x, nm: m.fft.rfft(x, norm=nm), (3, 6)),
    "rfft_odd": (lambda m, x, nm: m.fft.rfft(x, n=7, norm=nm), (3, 6)),
    "rfft_crop": (lambda m, x, nm: m.fft.rfft(x, n=4, dim=0, norm=nm), (6, 3)),
    "rfft2": (lambda m, x, nm: m.fft.rfft2(x, norm=nm), (2, 4, 5)),
    "rfft2_s": (lambda m, x, nm: m.fft.rfft2(x, s=(3, 8), norm=nm), (2, 4, 5)),
    "rfftn": (lambda m, x, nm: m.fft.rfftn(x, norm=nm), (3, 4, 5)),
    "rfftn_dim": (lambda m, x, nm: m.fft.rfftn(x, s=(6, 2), dim=(-1, 0), norm=nm), (3, 4, 5)),
    "ihfft": (lambda m, x, nm: _plain(m, m.fft.ihfft(x, norm=nm)), (3, 6)),
    "ihfft_pad": (lambda m, x, nm: _plain(m, m.fft.ihfft(x, n=9, dim=-2, norm=nm)), (4, 3)),
}


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", sorted(TRANSFORMS) + sorted(REAL_TRANSFORMS))
def test_real_input_float64(name, norm):
    fn, shape = {**TRANSFORMS, **REAL_TRANSFORMS}[name]
    check(lambda m, x: _plain(m, fn(m, x, norm)), _real(*shape), atol=1e-10)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_complex_input_complex128(name, norm):
    fn, shape = TRANSFORMS[name]
    check(lambda m, x: _plain(m, fn(m, x, norm)), _cplx(*shape), atol=1e-10)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_complex64_keeps_single_precision(name):
    fn, shape = TRANSFORMS[name]
    check(lambda m, x: _plain(m, fn(m, x, "ortho")), _cplx(*shape).astype(np.complex64), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(TRANSFORMS) + sorted(REAL_TRANSFORMS))
def test_float32_gives_complex64_or_float32(name):
    fn, shape = {**TRANSFORMS, **REAL_TRANSFORMS}[name]
    check(lambda m, x: _plain(m, fn(m, x, None)), _real(*shape).astype(np.float32), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "ihfft", "irfft", "hfft", "fftn", "rfftn", "irfftn"])
def test_integer_input_uses_the_default_dtype(name):
    x = np.arange(12).reshape(3, 4)
    check(lambda m, t: _plain(m, getattr(m.fft, name)(t)), x, grad=False)


def test_1d_transforms_of_a_vector():
    x = _cplx(8)
    check(lambda m, t: _plain(m, [m.fft.fft(t), m.fft.ifft(t, 5), m.fft.irfft(t), m.fft.hfft(t, 11)]), x, atol=1e-10)
    check(lambda m, t: _plain(m, [m.fft.rfft(t, 3), m.fft.ihfft(t)]), _real(8), atol=1e-10)


def test_round_trips_match_torch():
    check(lambda m, t: m.fft.irfft(m.fft.rfft(t, norm="ortho"), n=7, norm="ortho"), _real(2, 7), atol=1e-10)
    check(lambda m, t: m.fft.ifftn(m.fft.fftn(t, dim=(0, 2)), dim=(0, 2)), _cplx(2, 3, 4), atol=1e-10)


def test_gradient_through_a_chain_of_transforms():
    # real -> one-sided complex -> full complex -> real: each backward feeds the next
    check(lambda m, t: _plain(m, m.fft.hfft(m.fft.ifft(m.fft.rfft(t, dim=0), n=4), n=6)), _real(5, 3), atol=1e-10)


@pytest.mark.parametrize("name", ["fft", "rfft", "irfft", "fftn", "irfftn", "hfft", "fftfreq"])
def test_out(name):
    x = _cplx(3, 4) if name in ("fft", "irfft", "irfftn", "hfft") else _real(3, 4)
    for m in (torch, dtrain):
        t = m.tensor(x)
        if name == "fftfreq":
            out = m.empty(0, dtype=m.float64)
            res = m.fft.fftfreq(5, 0.3, out=out)
            ref = torch.fft.fftfreq(5, 0.3, dtype=torch.float64)
        else:
            expect = getattr(m.fft, name)(t)
            out = m.empty(0, dtype=expect.dtype)
            res = getattr(m.fft, name)(t, out=out)
            ref = getattr(torch.fft, name)(torch.tensor(x))
        assert res is out
        np.testing.assert_allclose(to_numpy(out), to_numpy(ref), atol=1e-10)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
@pytest.mark.parametrize("d", [1.0, 0.25])
def test_fftfreq_and_rfftfreq(n, d):
    check(lambda m: [m.fft.fftfreq(n), m.fft.fftfreq(n, d, dtype=m.float64), m.fft.rfftfreq(n, d=d),
                     m.fft.rfftfreq(n, dtype=m.float64)], grad=False)


def test_fftfreq_dtype_and_requires_grad():
    for fn in ("fftfreq", "rfftfreq"):
        a = getattr(dtrain.fft, fn)(6, dtype=dtrain.float64, requires_grad=True)
        b = getattr(torch.fft, fn)(6, dtype=torch.float64, requires_grad=True)
        assert str(a.dtype) == str(b.dtype) and a.requires_grad and b.requires_grad
        np.testing.assert_allclose(to_numpy(a), to_numpy(b))
    check(lambda m: m.fft.fftfreq(0), grad=False)


@pytest.mark.parametrize("dim", [None, 0, -1, (0, 2), [-2]])
def test_fftshift_and_ifftshift(dim):
    for shape in [(5, 4, 3), (2, 7, 6)]:
        x = _cplx(*shape)
        check(lambda m, t: [m.fft.fftshift(t, dim), m.fft.ifftshift(t, dim=dim)], x)
        check(lambda m, t: m.fft.ifftshift(m.fft.fftshift(m.fft.fftn(t), dim), dim), _real(*shape))


def test_fftshift_of_fftfreq_is_sorted():
    check(lambda m: [m.fft.fftshift(m.fft.fftfreq(7)), m.fft.ifftshift(m.fft.fftfreq(6))], grad=False)


ERRORS = {
    "bad_norm": lambda m, x: m.fft.fft(x, norm="bad"),
    "bad_norm_rfftn": lambda m, x: m.fft.rfftn(x, norm="Ortho"),
    "fft_n0": lambda m, x: m.fft.fft(x, n=0),
    "irfft_n0": lambda m, x: m.fft.irfft(x, n=0),
    "irfft_n_negative": lambda m, x: m.fft.irfft(x, n=-2),
    "irfft_one_bin": lambda m, x: m.fft.irfft(x[:, :1]),
    "hfft_n0": lambda m, x: m.fft.hfft(x, 0),
    "dim_out_of_range": lambda m, x: m.fft.fft(x, dim=2),
    "scalar_input": lambda m, x: m.fft.fft(x[0, 0]),
    "rfft_complex": lambda m, x: m.fft.rfft(x.to(m.complex128)),
    "ihfft_complex": lambda m, x: m.fft.ihfft(x.to(m.complex64)),
    "rfft_half": lambda m, x: m.fft.rfft(x.half()),
    "s_too_long": lambda m, x: m.fft.fftn(x, s=(2, 2, 2)),
    "s_dim_mismatch": lambda m, x: m.fft.fftn(x, s=(2,), dim=(0, 1)),
    "duplicate_dims": lambda m, x: m.fft.fft2(x, dim=(1, -1)),
    "s_zero": lambda m, x: m.fft.rfft2(x, s=(0, 3)),
    "irfftn_no_dims": lambda m, x: m.fft.irfftn(x, dim=()),
    "fftfreq_int_dtype": lambda m, x: m.fft.fftfreq(4, dtype=m.int64),
    "fftfreq_complex_dtype": lambda m, x: m.fft.fftfreq(4, dtype=m.complex64),
    "rfftfreq_complex_dtype": lambda m, x: m.fft.rfftfreq(4, dtype=m.complex128),
    "fftshift_bad_dim": lambda m, x: m.fft.fftshift(x, dim=3),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_match_torch(name):
    de, te = check_raises(ERRORS[name], (3, 4))
    assert str(de) == str(te)


def test_fft_functions_stay_out_of_the_top_level():
    assert dtrain.fft.__name__ == "dtrain.fft"
    assert isinstance(dtrain.fft.fft(dtrain.ones(2)), dtrain.Tensor)
    for name in set(dtrain.fft.__all__) - {"fft"}:  # dtrain.fft is the namespace itself, as torch.fft
        assert hasattr(torch.fft, name), name
        assert not hasattr(dtrain, name) and not hasattr(torch, name), name
    assert set(dtrain.fft.__all__) >= {"fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2",
                                       "irfft2", "rfftn", "irfftn", "hfft", "ihfft", "fftfreq", "rfftfreq",
                                       "fftshift", "ifftshift"}
