"""Activations, distances, interpolation, pixel shuffle and padding layers against torch."""
import numpy as np
import pytest
import torch

import dtrain
from helpers import check, check_raises

FN = {
    "hardsigmoid": (lambda m, x: m.nn.functional.hardsigmoid(x * 4), [(3, 5)]),
    "hardswish": (lambda m, x: m.nn.functional.hardswish(x * 4), [(3, 5)]),
    "selu": (lambda m, x: m.nn.functional.selu(x), [(3, 5)]),
    "celu": (lambda m, x: m.nn.functional.celu(x, 0.7), [(3, 5)]),
    "glu": (lambda m, x: m.nn.functional.glu(x, 1), [(3, 6)]),
    "prelu": (lambda m, x, w: m.nn.functional.prelu(x, w), [(2, 3, 4), (3,)]),
    "threshold": (lambda m, x: m.nn.functional.threshold(x, 0.1, -2.0), [(3, 5)]),
    "normalize": (lambda m, x: m.nn.functional.normalize(x, dim=1), [(3, 5)]),
    "normalize_p1": (lambda m, x: m.nn.functional.normalize(x, p=1, dim=0), [(3, 5)]),
    "cosine_similarity": (lambda m, a, b: m.nn.functional.cosine_similarity(a, b, dim=1), [(4, 5), (4, 5)]),
    "pairwise_distance": (lambda m, a, b: m.nn.functional.pairwise_distance(a, b), [(4, 5), (4, 5)]),
    "pixel_shuffle": (lambda m, x: m.nn.functional.pixel_shuffle(x, 2), [(2, 8, 3, 4)]),
    "pixel_unshuffle": (lambda m, x: m.nn.functional.pixel_unshuffle(x, 2), [(2, 2, 4, 6)]),
    "nearest_2x": (lambda m, x: m.nn.functional.interpolate(x, scale_factor=2), [(2, 3, 4, 5)]),
    "nearest_size": (lambda m, x: m.nn.functional.interpolate(x, size=(7, 3)), [(2, 3, 4, 5)]),
    "nearest_exact": (lambda m, x: m.nn.functional.interpolate(x, size=(7, 3), mode="nearest-exact"), [(1, 2, 4, 5)]),
    "bilinear": (lambda m, x: m.nn.functional.interpolate(x, size=(7, 9), mode="bilinear", align_corners=False),
                 [(2, 3, 4, 5)]),
    "bilinear_ac": (lambda m, x: m.nn.functional.interpolate(x, scale_factor=1.5, mode="bilinear",
                                                             align_corners=True), [(2, 3, 4, 6)]),
    "linear": (lambda m, x: m.nn.functional.interpolate(x, scale_factor=2.5, mode="linear"), [(2, 3, 5)]),
    "trilinear": (lambda m, x: m.nn.functional.interpolate(x, size=(3, 4, 5), mode="trilinear"), [(1, 2, 2, 3, 4)]),
}


@pytest.mark.parametrize("name", sorted(FN))
def test_functional_matches_torch(name, device):
    fn, inputs = FN[name]
    check(fn, *inputs, device=device)


def test_gumbel_softmax_properties():
    dtrain.manual_seed(0)
    logits = dtrain.randn(64, 5, requires_grad=True)
    soft = dtrain.nn.functional.gumbel_softmax(logits, tau=0.5)
    hard = dtrain.nn.functional.gumbel_softmax(logits, tau=0.5, hard=True)
    np.testing.assert_allclose(soft.sum(1).detach().numpy(), 1.0, rtol=1e-5)
    assert set(np.unique(hard.detach().numpy())) <= {0.0, 1.0} and (hard.sum(1) == 1).all()
    (hard * dtrain.arange(5.0)).sum().backward()    # straight-through: the gradient flows
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0


MODULES = [("Hardswish", ()), ("Hardsigmoid", ()), ("SELU", ()), ("CELU", (0.5,)), ("GLU", (1,)), ("PReLU", (3,)),
           ("Threshold", (0.1, 20.0)), ("ZeroPad2d", ((1, 2, 0, 1),)), ("ConstantPad1d", (2, 3.5)),
           ("ReflectionPad2d", (1,)), ("ReplicationPad1d", ((2, 1),)), ("CircularPad2d", (1,)),
           ("PixelShuffle", (2,)), ("Upsample", (None, 2, "bilinear")), ("CosineSimilarity", ()),
           ("PairwiseDistance", ())]


@pytest.mark.parametrize("name,args", MODULES, ids=[m[0] for m in MODULES])
def test_modules_match_torch(name, args, device):
    tmod, dmod = getattr(torch.nn, name)(*args), getattr(dtrain.nn, name)(*args)
    assert repr(dmod) == repr(tmod)
    n_in = 2 if name in ("CosineSimilarity", "PairwiseDistance") else 1
    shape = (2, 4, 5) if name.endswith("1d") else (2, 4, 6, 6) if name != "GLU" else (2, 6)
    if name == "PReLU":
        shape = (2, 3, 5)
    if dmod.state_dict():
        dmod.load_state_dict({k: dtrain.tensor(v.detach().numpy()) for k, v in tmod.state_dict().items()})
    dmod.to(device)
    check(lambda m, *xs: (tmod if m is torch else dmod)(*xs), *[shape] * n_in, device=device,
          dtype=np.float32, atol=1e-5, rtol=1e-4)


def test_errors():
    check_raises(lambda m, x: m.nn.functional.glu(x, 1), (3, 5))
    check_raises(lambda m, x: m.nn.functional.interpolate(x, size=(3, 3), mode="bilinear"), (1, 2, 4))
