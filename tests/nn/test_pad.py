import pytest

from helpers import check, check_raises


@pytest.mark.parametrize("pad", [(1, 2), (1, 1, 2, 0), (0, 0, 1, 1, 2, 1), (-1, 2), (2, -1, -1, 1)])
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_matches_torch(pad, mode, device):
    if mode != "constant" and any(p < 0 for p in pad):
        pytest.skip("negative pads crop; torch allows that in constant mode only")
    # torch: non-constant modes pad the last 1/2/3 dims of a 3-D/4-D/5-D (batched) input
    shape = {2: (2, 3, 5), 4: (2, 3, 4, 5), 6: (2, 3, 4, 5, 6)}[len(pad)]
    check(lambda m, x: m.nn.functional.pad(x, pad, mode=mode), shape, device=device)


def test_constant_value_and_crop(device):
    check(lambda m, x: m.nn.functional.pad(x, (2, -1), value=3.5), (3, 4), device=device)


def test_pad_errors():
    check_raises(lambda m, x: m.nn.functional.pad(x, (1, 2, 3)), (2, 3))
    check_raises(lambda m, x: m.nn.functional.pad(x, (5, 5), mode="reflect"), (1, 2, 3))
    check_raises(lambda m, x: m.nn.functional.pad(x, (1, 1), mode="replicate"), (2, 3, 4, 5))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("cls,shape,kw", [("Conv2d", (2, 3, 7, 6), dict(padding=2)),
                                           ("Conv2d", (2, 3, 7, 6), dict(padding="same", dilation=2)),
                                           ("Conv1d", (2, 3, 9), dict(padding=1, stride=2))])
def test_conv_padding_modes_match_torch(mode, cls, shape, kw, device):
    import torch
    import dtrain
    from test_conv import module_check
    torch.manual_seed(0)
    tmod = getattr(torch.nn, cls)(3, 4, 3, padding_mode=mode, dtype=torch.float64, **kw)
    dmod = getattr(dtrain.nn, cls)(3, 4, 3, padding_mode=mode, dtype=dtrain.float64, **kw)
    assert repr(dmod) == repr(tmod)
    module_check(tmod, dmod, shape, device=device)
