"""Subgroups, monitored_barrier, debug levels, node-local rank and backend queries (run alone, and under
mpiexec with 2, 3 and 4 ranks by test_mpi_worlds.py)."""
import datetime
import time

import numpy as np
import pytest
import torch

import dtrain
import dtrain.distributed as dist


def test_new_subgroups_by_enumeration(world):
    n, me = dist.get_world_size(), dist.get_rank()
    lists = [list(range(0, n, 2)), list(range(1, n, 2))] if n > 1 else [[0]]
    mine, groups = dist.new_subgroups_by_enumeration(lists)
    assert len(groups) == len(lists)
    assert dist.get_process_group_ranks(mine) == lists[me % 2]
    x = dtrain.tensor([float(me)])
    dist.all_reduce(x, group=mine)
    assert x.item() == sum(lists[me % 2])
    with pytest.raises(ValueError, match=r"Rank 0 has appeared in both subgroup \[0\] and \[0\]"):
        dist.new_subgroups_by_enumeration([[0], [0]])
    with pytest.raises(ValueError, match="cannot be empty"):
        dist.new_subgroups_by_enumeration([])


def test_new_subgroups(world):
    n, me = dist.get_world_size(), dist.get_rank()
    size = 2 if n % 2 == 0 else 1
    mine, groups = dist.new_subgroups(group_size=size)
    assert len(groups) == n // size
    first = me - me % size
    assert dist.get_process_group_ranks(mine) == list(range(first, first + size))
    x = dtrain.ones(3)
    dist.all_reduce(x, group=mine)
    np.testing.assert_array_equal(x.numpy(), np.full(3, float(size)))
    with pytest.raises(ValueError, match=r"The arg 'group_size' \(0\) must be positive"):
        dist.new_subgroups(group_size=0)
    with pytest.raises(ValueError, match=rf"must not exceed the world size \({n}\)"):
        dist.new_subgroups(group_size=n + 1)
    if not dtrain.cuda.is_available():
        with pytest.raises(ValueError, match="Default group size only takes effect when CUDA is available"):
            dist.new_subgroups()
    if n == 3:
        with pytest.raises(ValueError, match=r"The world size \(3\) must be divisible by 'group_size=2'"):
            dist.new_subgroups(group_size=2)


def test_monitored_barrier_passes_when_everyone_arrives(world):
    dist.monitored_barrier(timeout=datetime.timedelta(seconds=30))
    dist.monitored_barrier(wait_all_ranks=True)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("wait_all", [False, True])
def test_monitored_barrier_names_the_ranks_that_did_not_arrive(world, wait_all):
    n, me = dist.get_world_size(), dist.get_rank()
    late = [1] if n == 2 else [1, n - 1]  # these skip the barrier
    g = dist.new_group()
    if me not in late:
        t0 = time.monotonic()
        with pytest.raises(RuntimeError) as info:
            dist.monitored_barrier(g, timeout=datetime.timedelta(seconds=1.5), wait_all_ranks=wait_all)
        assert isinstance(info.value, dist.DistBackendError)
        expected = (f"Ranks {', '.join(map(str, late))}" if wait_all and len(late) > 1 else f"Rank {late[0]}") + \
            " failed to pass monitoredBarrier in 1500 ms"
        assert str(info.value) == expected
        assert 1.4 < time.monotonic() - t0 < 10
        assert g._timeout != 1.5  # the group's own timeout is back
    dist.barrier()
    if me in late:
        dist.barrier(group=g)  # completes the barrier the others abandoned
    dist.barrier()
    dist.destroy_process_group(g)


def test_debug_levels(world, monkeypatch):
    assert [int(v) for v in dist.DebugLevel] == [int(v) for v in torch.distributed.DebugLevel.__members__.values()]
    assert list(dist.DebugLevel.__members__) == list(torch.distributed.DebugLevel.__members__)
    monkeypatch.delenv("DTRAIN_DISTRIBUTED_DEBUG", raising=False)
    monkeypatch.setenv("TORCH_DISTRIBUTED_DEBUG", "DETAIL")
    try:
        dist.set_debug_level_from_env()
        assert dist.get_debug_level() == dist.DebugLevel.DETAIL
        g = dist.new_group()
        assert g._debug == (g.size() > 1) and world._debug == (world.size() > 1)
        dist.set_debug_level(dist.DebugLevel.OFF)
        assert not g._debug and not world._debug and dist.get_debug_level() == dist.DebugLevel.OFF
        assert world._plain  # the fast path is back
        monkeypatch.setenv("TORCH_DISTRIBUTED_DEBUG", "LOUD")
        with pytest.raises(ValueError, match="must be OFF, INFO, or DETAIL"):
            dist.set_debug_level_from_env()
        dist.destroy_process_group(g)
    finally:
        monkeypatch.delenv("TORCH_DISTRIBUTED_DEBUG")
        dist.set_debug_level_from_env()
    assert dist.get_debug_level() == dist.DebugLevel.OFF


def test_node_local_rank_and_backend_queries(world, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert dist.get_node_local_rank() == 3 and dist.get_node_local_rank(fallback_rank=7) == 3
    monkeypatch.delenv("LOCAL_RANK")
    assert dist.get_node_local_rank(fallback_rank=7) == 7
    with pytest.raises(RuntimeError, match="LOCAL_RANK is not in the environment"):
        dist.get_node_local_rank()
    assert dist.is_backend_available("mpi") and dist.is_backend_available("gloo")
    assert dist.is_backend_available("nccl") == dist.is_nccl_available()
    assert not dist.is_backend_available("ucc")
    assert dist.get_default_backend_for_device("cpu") == "mpi"
    assert dist.get_default_backend_for_device(dtrain.device("cuda:1")) == "nccl"
    with pytest.raises(ValueError, match="Default backend not registered for device : xpu"):
        dist.get_default_backend_for_device("xpu")
    assert dist.default_pg_timeout == datetime.timedelta(minutes=10) or "DTRAIN_DIST_TIMEOUT" in __import__("os").environ
    assert dist.GradBucket is dtrain.nn.parallel.distributed.GradBucket
