"""SyncBatchNorm in one process (no group of more than one rank): it is BatchNorm, as torch's is; and
convert_sync_batchnorm. Its group statistics are tested with real ranks in tests/parallel/mpi_ddp.py."""
import pytest
import torch
from helpers import check_raises
from test_conv import module_check

import dtrain


@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("kw", [{}, {"affine": False}, {"momentum": None}, {"track_running_stats": False},
                                {"bias": False}])
@pytest.mark.parametrize("train", [True, False])
def test_without_a_group_it_is_batchnorm(device, shape, kw, train):
    module_check(torch.nn.SyncBatchNorm(3, **kw).double(), dtrain.nn.SyncBatchNorm(3, **kw).double(), shape,
                 device=device, train=train)


def test_repr_and_errors():
    assert repr(dtrain.nn.SyncBatchNorm(5, momentum=None, process_group=None)) == \
        repr(torch.nn.SyncBatchNorm(5, momentum=None))
    for shape, match in [((3,), "expected at least 2D input (got 1D input)"),
                         ((2, 0, 3), "number of input channels should be non-zero")]:
        check_raises(lambda m, x: m.nn.SyncBatchNorm(3)(x), shape, match=match)


def test_convert_sync_batchnorm_takes_over_parameters_and_buffers():
    def build(m):
        return m.nn.Sequential(m.nn.Conv2d(1, 4, 3), m.nn.BatchNorm2d(4),
                               m.nn.Sequential(m.nn.Flatten(), m.nn.BatchNorm1d(4, affine=False, momentum=None)))
    d, t = build(dtrain), build(torch)
    d[1].eval()
    bn, inner = d[1], d[2][1]
    out = dtrain.nn.SyncBatchNorm.convert_sync_batchnorm(d, process_group=None)
    assert repr(out) == repr(torch.nn.SyncBatchNorm.convert_sync_batchnorm(t))
    assert type(out[1]) is dtrain.nn.SyncBatchNorm and type(out[2][1]) is dtrain.nn.SyncBatchNorm
    assert out[1].weight is bn.weight and out[1].bias is bn.bias and out[1].running_mean is bn.running_mean
    assert out[1].running_var is bn.running_var and out[1].num_batches_tracked is bn.num_batches_tracked
    assert out[2][1].weight is None and out[2][1].running_mean is inner.running_mean
    assert not out[1].training and out[2][1].training and out[2][1].momentum is None
    assert list(out.state_dict()) == list(d.state_dict())
    single = dtrain.nn.SyncBatchNorm.convert_sync_batchnorm(dtrain.nn.BatchNorm1d(2))
    assert type(single) is dtrain.nn.SyncBatchNorm and single.num_features == 2
