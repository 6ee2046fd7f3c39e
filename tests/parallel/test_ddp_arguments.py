"""DistributedDataParallel's arguments in a world of one, next to torch's: the same errors and warnings, and the
arguments dtrain accepts either work (same gradients as torch's) or warn."""
import warnings

import numpy as np
import pytest
import torch

import dtrain
import dtrain.distributed as dist


@pytest.fixture(scope="module", autouse=True)
def worlds():
    """A world of one in both libraries, taken down after this module (no process group leaks to other tests)."""
    mine = not dist.is_initialized()
    if mine:
        dist.init_process_group("mpi")
    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)
    yield
    torch.distributed.destroy_process_group()
    if mine:
        dist.destroy_process_group()


def _model(T):
    T.manual_seed(0)
    return T.nn.Sequential(T.nn.Linear(3, 4), T.nn.BatchNorm1d(4), T.nn.Linear(4, 2))


def _outcome(T, **kw):
    """What constructing DDP(model, **kw) does in library T: the error, or the warnings it gave."""
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        try:
            T.nn.parallel.DistributedDataParallel(_model(T), **kw)
        except Exception as e:
            return type(e).__name__, str(e).replace("torch.", "").replace("dtrain.", "")
    return [(w.category.__name__, str(w.message)) for w in ws if "DistributedDataParallel" in str(w.message) or
            w.category is FutureWarning or "static_graph" in str(w.message)]


@pytest.mark.parametrize("kw", [
    dict(device_ids=[0]),
    dict(device_ids=["cuda:0"]),
    dict(output_device=0),
    dict(device_ids=[0, 1]),
    dict(device_ids=[]),
    dict(delay_all_reduce_named_params=[]),
    dict(param_to_hook_all_reduce=object()),
    dict(broadcast_buffers=False),
    dict(broadcast_buffers=True, forward_sync_buffers=False),
    dict(forward_sync_buffers=False),
    dict(check_reduction=True),
    dict(static_graph=True, find_unused_parameters=True),
    dict(static_graph=True),
    dict(dim=1, bucket_cap_mb=1, init_sync=False, gradient_as_bucket_view=True, skip_all_reduce_unused_params=True,
         batched_grad_copy=True),
], ids=lambda kw: ",".join(kw))
def test_errors_and_warnings_are_torchs(kw):
    assert _outcome(dtrain, **kw) == _outcome(torch, **kw)


def test_process_group_and_device_mesh_together_are_refused_as_torch():
    for T in (dtrain, torch):
        with pytest.raises(RuntimeError, match="^Cannot specify both process_group and device_mesh arguments.$"):
            T.nn.parallel.DistributedDataParallel(_model(T), process_group=T.distributed.group.WORLD,
                                                  device_mesh=object())


class _Mesh:
    """A 1-D device mesh as DDP reads one."""
    ndim = 1

    def get_group(self, mesh_dim=0):
        return dist.group.WORLD


def test_a_one_dimensional_device_mesh_gives_the_process_group():
    ddp = dtrain.nn.parallel.DistributedDataParallel(_model(dtrain), device_mesh=_Mesh())
    assert ddp.process_group is dist.group.WORLD
    mesh = _Mesh()
    mesh.ndim = 2
    with pytest.raises(RuntimeError, match="Only 1D device mesh is supported"):
        dtrain.nn.parallel.DistributedDataParallel(_model(dtrain), device_mesh=mesh)


@pytest.mark.parametrize("kw", [dict(mixed_precision=object()),
                                dict(delay_all_reduce_named_params=[], param_to_hook_all_reduce=object())])
def test_what_dtrain_does_not_do_warns(kw):
    with pytest.warns(UserWarning, match="DistributedDataParallel: .*dtrain"):
        dtrain.nn.parallel.DistributedDataParallel(_model(dtrain), **kw)


def test_attributes_are_torchs():
    kw = dict(dim=1, broadcast_buffers=False, find_unused_parameters=True, gradient_as_bucket_view=True)

    def attrs(T):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ddp = T.nn.parallel.DistributedDataParallel(_model(T), **kw)
        return (ddp.dim, ddp.device_ids, ddp.output_device, ddp.broadcast_buffers, ddp.forward_sync_buffers,
                ddp.find_unused_parameters, ddp.gradient_as_bucket_view, ddp.static_graph)
    assert attrs(dtrain) == attrs(torch)


class _Unused(object):
    @staticmethod
    def build(T):
        class Net(T.nn.Module):
            def __init__(self):
                super().__init__()
                self.used, self.unused = T.nn.Linear(3, 2), T.nn.Linear(3, 2)

            def forward(self, x):
                return self.used(x)
        net = Net()
        with T.no_grad():  # the same start in both libraries
            for k, p in enumerate(net.parameters()):
                p.copy_(T.tensor(np.linspace(-1, 1, p.numel()).reshape(tuple(p.shape)) * (k + 1), dtype=p.dtype))
        return net


def test_static_graph_trains_with_an_unused_parameter_as_torch():
    """torch's static_graph reduces what is used and leaves the rest: two steps give torch's parameters and
    no 'parameters that were not used' error at the second forward."""
    def train(T):
        net = _Unused.build(T)
        ddp = T.nn.parallel.DistributedDataParallel(net, static_graph=True)
        opt = T.optim.SGD(net.parameters(), lr=0.1)
        x = T.tensor(np.linspace(-1, 1, 12).reshape(4, 3), dtype=T.float32)
        for _ in range(2):
            opt.zero_grad()
            ddp(x).square().sum().backward()
            opt.step()
        return [p.detach().numpy().copy() for p in net.parameters()], [p.grad is None for p in net.parameters()]
    (pa, ga), (pb, gb) = train(dtrain), train(torch)
    assert ga == gb
    for a, b in zip(pa, pb):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_bucket_cap_mb_list_gives_each_bucket_its_cap():
    net = dtrain.nn.Sequential(*[dtrain.nn.Linear(64, 64) for _ in range(4)])  # 4 x (16 KiB + 256 B) in float32
    kib = 1 / 1024
    ddp = dtrain.nn.parallel.DistributedDataParallel(net, bucket_cap_mb_list=[16 * kib, 20 * kib])
    # reverse order, a bucket closing once it reaches its cap (torch's rule): the last layer fills the first
    # (16 KiB), two layers the second (20 KiB), and the cap repeats for the third
    sizes = [sum(p.numel() for p in b.params) for b in ddp._buckets]
    layer = 64 + 64 * 64
    assert sizes == [layer, 2 * layer, layer]
    assert ddp.bucket_bytes_cap == int(20 * kib * 1024 * 1024)
    assert len(dtrain.nn.parallel.DistributedDataParallel(net)._buckets) == 1
