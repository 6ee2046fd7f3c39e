"""grid_sample and affine_grid against torch: every mode, padding mode and align_corners in 2-D and 3-D, values
and the gradients of input and grid (float64 and float32), bfloat16 against torch's bfloat16, and the errors."""
import zlib

import numpy as np
import pytest
import torch
from helpers import check, check_raises

import dtrain

F64 = {"atol": 1e-10, "rtol": 1e-9}
# float32: the grid's gradient sums taps of size ~10 that can cancel to ~0, so a few 1e-5 apart is rounding
F32 = {"atol": 1e-4, "rtol": 1e-4}


def _grid(rng, shape):
    # beyond [-1, 1] on purpose: the padding modes decide what is read there
    return rng.uniform(-1.4, 1.4, shape)


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_2d(device, mode, padding_mode, align_corners):
    rng = np.random.default_rng(zlib.crc32(f"{mode} {padding_mode} {align_corners}".encode()))
    x, g = rng.standard_normal((2, 3, 5, 6)), _grid(rng, (2, 4, 3, 2))
    check(lambda m, x, g: m.nn.functional.grid_sample(x, g, mode=mode, padding_mode=padding_mode,
                                                      align_corners=align_corners), x, g, device=device, **F64)
    check(lambda m, x, g: m.nn.functional.grid_sample(x, g, mode=mode, padding_mode=padding_mode,
                                                      align_corners=align_corners),
          x.astype(np.float32), g.astype(np.float32), device=device, dtype=np.float32, **F32)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_3d(device, mode, padding_mode, align_corners):
    rng = np.random.default_rng(zlib.crc32(f"3d {mode} {padding_mode} {align_corners}".encode()))
    x, g = rng.standard_normal((2, 2, 4, 5, 3)), _grid(rng, (2, 3, 2, 4, 3))
    check(lambda m, x, g: m.nn.functional.grid_sample(x, g, mode=mode, padding_mode=padding_mode,
                                                      align_corners=align_corners), x, g, device=device, **F64)


def test_grid_sample_identity_grid_reads_the_input(device):
    # affine_grid of the identity with align_corners puts every sample on a pixel centre
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 4, 5))
    theta = np.array([[[1.0, 0, 0], [0, 1, 0]]])
    check(lambda m, x, t: m.nn.functional.grid_sample(
        x, m.nn.functional.affine_grid(t, (1, 2, 4, 5), align_corners=True), align_corners=True),
        x, theta, device=device, **F64)
    d = dtrain.nn.functional.grid_sample(dtrain.tensor(x), dtrain.nn.functional.affine_grid(
        dtrain.tensor(theta), (1, 2, 4, 5), align_corners=True), align_corners=True)
    np.testing.assert_allclose(d.numpy(), x, atol=1e-12)


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_bfloat16(mode):
    rng = np.random.default_rng(7)
    x, g = rng.standard_normal((2, 3, 6, 5)).astype(np.float32), _grid(rng, (2, 4, 4, 2)).astype(np.float32)
    tx, tg = torch.from_numpy(x).bfloat16(), torch.from_numpy(g).bfloat16()
    if mode == "bicubic":
        # torch's bfloat16 bicubic kernel rounds its intermediates: it is up to 0.08 away from its own float32
        # result on the same bfloat16 values, which dtrain matches to one rounding
        t = torch.nn.functional.grid_sample(tx.float(), tg.float(), mode=mode, align_corners=False).bfloat16()
    else:
        t = torch.nn.functional.grid_sample(tx, tg, mode=mode, align_corners=False)
    d = dtrain.nn.functional.grid_sample(dtrain.tensor(x).bfloat16(), dtrain.tensor(g).bfloat16(), mode=mode,
                                         align_corners=False)
    assert d.dtype is dtrain.bfloat16
    # the same bfloat16 coordinates; sums of up to 16 taps, each rounded once by dtrain, so a few ulps apart
    np.testing.assert_allclose(d.float().numpy(), t.float().numpy(), rtol=2 ** -6, atol=3e-2)


@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid(device, align_corners):
    rng = np.random.default_rng(3)
    check(lambda m, t: m.nn.functional.affine_grid(t, (2, 3, 4, 5), align_corners=align_corners),
          rng.standard_normal((2, 2, 3)), device=device, **F64)
    check(lambda m, t: m.nn.functional.affine_grid(t, (2, 3, 4, 5, 3), align_corners=align_corners),
          rng.standard_normal((2, 3, 4)), device=device, **F64)
    check(lambda m, t: m.nn.functional.affine_grid(t, [2, 1, 3, 6], align_corners=align_corners),
          rng.standard_normal((2, 2, 3)).astype(np.float32), device=device, dtype=np.float32, **F32)


def test_affine_grid_bfloat16():
    theta = np.random.default_rng(4).standard_normal((2, 2, 3)).astype(np.float32)
    t = torch.nn.functional.affine_grid(torch.from_numpy(theta).bfloat16(), (2, 3, 4, 5), align_corners=False)
    d = dtrain.nn.functional.affine_grid(dtrain.tensor(theta).bfloat16(), (2, 3, 4, 5), align_corners=False)
    assert d.dtype is dtrain.bfloat16
    np.testing.assert_allclose(d.float().numpy(), t.float().numpy(), rtol=2 ** -6, atol=2e-2)


def test_errors():
    x, g = (3, 2, 4, 4), (3, 2, 2, 2)
    check_raises(lambda m, x, g: m.nn.functional.grid_sample(x, g, mode="area"), x, g, match="expected mode")
    check_raises(lambda m, x, g: m.nn.functional.grid_sample(x, g, padding_mode="wrap"), x, g,
                 match="expected padding_mode")
    check_raises(lambda m, x, g: m.nn.functional.grid_sample(x, g.float()), x, g, match="same dtype")
    check_raises(lambda m, x, g: m.nn.functional.grid_sample(x, g[..., :1]), x, g, match="size 2 in last")
    check_raises(lambda m, x, g: m.nn.functional.grid_sample(x.unsqueeze(2), g.unsqueeze(1).expand(
        3, 1, 2, 2, 2).reshape(3, 1, 2, 2, 2).repeat(1, 1, 1, 1, 2)[..., :3], mode="bicubic"), x, g, match="bicubic")
    check_raises(lambda m, t: m.nn.functional.affine_grid(t, (3, 1, 4, 4)), (3, 3, 4), match="Nx2x3")
    check_raises(lambda m, t: m.nn.functional.affine_grid(t, (3, 1, 4, 4, 4)), (3, 2, 3), match="Nx3x4")
    check_raises(lambda m, t: m.nn.functional.affine_grid(t, (3, 4)), (3, 2, 3), match="4D and 5D")
    check_raises(lambda m, t: m.nn.functional.affine_grid(t, (2, 1, 4, 4)), (3, 2, 3), match="batch2")
    check_raises(lambda m, x, g: m.nn.functional.grid_sample(x, g[:2]), x, g, match="same batch size")


def test_default_align_corners_warns_as_torchs():
    x, g = dtrain.randn(1, 1, 3, 3), dtrain.zeros(1, 2, 2, 2)
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        dtrain.nn.functional.grid_sample(x, g)
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        dtrain.nn.functional.affine_grid(dtrain.eye(2, 3)[None], (1, 1, 2, 2))


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_bfloat16_gradients_round_once(mode):
    # bfloat16 in, float32 inside, one rounding out: the gradients are torch's float32 ones on the same
    # bfloat16 values, rounded to bfloat16 (torch's own bfloat16 kernel adds its gradients up in bfloat16)
    rng = np.random.default_rng(8)
    x, g = rng.standard_normal((2, 3, 6, 5)).astype(np.float32), _grid(rng, (2, 4, 4, 2)).astype(np.float32)
    w = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    tx = torch.from_numpy(x).bfloat16().float().requires_grad_()
    tg = torch.from_numpy(g).bfloat16().float().requires_grad_()
    out = torch.nn.functional.grid_sample(tx, tg, mode=mode, align_corners=False).bfloat16().float()
    (out * torch.from_numpy(w)).sum().backward()
    dx, dg = dtrain.tensor(x).bfloat16().requires_grad_(), dtrain.tensor(g).bfloat16().requires_grad_()
    out = dtrain.nn.functional.grid_sample(dx, dg, mode=mode, align_corners=False).float()
    (out * dtrain.tensor(w)).sum().backward()
    assert dx.grad.dtype is dtrain.bfloat16 and dg.grad.dtype is dtrain.bfloat16
    np.testing.assert_array_equal(dx.grad.float().numpy(), tx.grad.bfloat16().float().numpy())
    np.testing.assert_array_equal(dg.grad.float().numpy(), tg.grad.bfloat16().float().numpy())
