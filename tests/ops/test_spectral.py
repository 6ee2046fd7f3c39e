"""stft, istft and the window functions against torch: values and input gradients in float64 and float32
over hop/window lengths, centring and pad modes, normalisation, one- and two-sided spectra, align_to_window,
istft's round trip with and without `length`; torch's warnings, errors, and float32 under autocast."""
import warnings

import numpy as np
import pytest
import torch
from helpers import check, check_raises

import dtrain

TOL = {np.float64: {"atol": 1e-10, "rtol": 1e-9}, np.float32: {"atol": 1e-4, "rtol": 1e-4}}
WINDOWS = ["hann_window", "hamming_window", "blackman_window", "bartlett_window", "kaiser_window"]


@pytest.mark.parametrize("name", WINDOWS)
@pytest.mark.parametrize("periodic", [True, False])
def test_windows(name, periodic):
    for n in (0, 1, 2, 7, 8):
        t, d = getattr(torch, name)(n, periodic), getattr(dtrain, name)(n, periodic)
        assert str(d.dtype) == str(t.dtype) == "torch.float32"
        np.testing.assert_allclose(d.numpy(), t.numpy(), atol=1e-6)
        t = getattr(torch, name)(n, periodic, dtype=torch.float64)
        d = getattr(dtrain, name)(n, periodic, dtype=dtrain.float64)
        np.testing.assert_allclose(d.numpy(), t.numpy(), atol=1e-12)


STFT = [{}, {"hop_length": 3, "win_length": 6}, {"center": False, "win_length": 5, "hop_length": 4},
        {"normalized": True, "pad_mode": "constant"}, {"onesided": False}, {"pad_mode": "replicate"},
        {"center": False, "win_length": 6, "hop_length": 4, "align_to_window": True}]


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("kw", STFT, ids=[str(k) for k in STFT])
@pytest.mark.parametrize("windowed", [True, False])
def test_stft(device, dt, kw, windowed):
    x = np.random.default_rng(0).standard_normal((2, 40)).astype(dt)

    def f(m, x):
        w = m.hann_window(kw.get("win_length", 8), dtype=x.dtype, device=x.device) if windowed else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the rectangular window's warning
            return m.view_as_real(m.stft(x, 8, window=w, return_complex=True, **kw))
    check(f, x, device=device, dtype=dt, **TOL[dt])
    check(lambda m, x: f(m, x[0]), x, device=device, dtype=dt, **TOL[dt])


ISTFT = [{}, {"hop_length": 2, "win_length": 6}, {"center": False, "hop_length": 2}, {"normalized": True, "length": 37},
         {"length": 45}, {"onesided": False}]


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("kw", ISTFT, ids=[str(k) for k in ISTFT])
def test_istft(device, dt, kw):
    x = np.random.default_rng(1).standard_normal((2, 40)).astype(dt)

    def f(m, x):
        # a Hann window is zero at its ends: uncentred frames need one that is not (torch refuses it too)
        w = (m.hamming_window if kw.get("center") is False else m.hann_window)(
            kw.get("win_length", 8), dtype=x.dtype, device=x.device)
        skw = {k: v for k, v in kw.items() if k in ("hop_length", "win_length", "center", "normalized", "onesided")}
        spec = m.stft(x, 8, window=w, return_complex=True, **skw)
        return m.istft(spec, 8, window=w, **kw)
    check(f, x, device=device, dtype=dt, **TOL[dt])
    check(lambda m, x: f(m, x[1]), x, device=device, dtype=dt, **TOL[dt])


def test_round_trip():
    x = dtrain.randn(3, 50, dtype=dtrain.float64)
    w = dtrain.hann_window(16, dtype=dtrain.float64)
    y = dtrain.istft(dtrain.stft(x, 16, 4, window=w, return_complex=True), 16, 4, window=w, length=50)
    np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-12)


def test_warnings_and_errors():
    x = dtrain.randn(20)
    with pytest.warns(UserWarning, match="A window was not provided"):
        dtrain.stft(x, 8, return_complex=True)
    with pytest.warns(UserWarning, match="return_complex=False is deprecated"):
        y = dtrain.stft(x, 8, window=dtrain.ones(8), return_complex=False)
    assert y.dtype is dtrain.float32 and tuple(y.shape) == (5, 11, 2)
    check_raises(lambda m, x: m.stft(x, 8, window=m.ones(8)), (20,), match="return_complex parameter be given")
    check_raises(lambda m, x: m.stft(x, 8, window=m.ones(8), return_complex=True, align_to_window=True), (20,),
                 match="align_to_window should only be set when center = false")
    check_raises(lambda m, x: m.stft(x, 8, window=m.ones(7), return_complex=True), (20,))
    check_raises(lambda m, x: m.istft(x, 8), (5, 3), match="complex")
    w = np.hanning(8)
    check_raises(lambda m, x: m.istft(m.stft(x, 8, 2, window=m.tensor(w), center=False, return_complex=True), 8, 2,
                                      window=m.tensor(w), center=False), (40,), match="window overlap add min")


def test_autocast_runs_stft_in_float32():
    x = np.random.default_rng(2).standard_normal(32).astype(np.float32)
    with torch.autocast("cpu"):
        t = torch.stft(torch.from_numpy(x).bfloat16(), 8, window=torch.hann_window(8), return_complex=True)
    with dtrain.autocast("cpu"):
        d = dtrain.stft(dtrain.tensor(x).bfloat16(), 8, window=dtrain.hann_window(8), return_complex=True)
    assert str(d.dtype) == str(t.dtype) == "torch.complex64"
    np.testing.assert_allclose(d.numpy(), t.numpy(), atol=1e-5)
