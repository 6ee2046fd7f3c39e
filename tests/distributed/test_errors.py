"""Errors instead of hangs: a late rank, mismatched collectives (debug mode), misuse."""
import time

import numpy as np
import pytest

import dtrain
import dtrain.distributed as dist


def test_reduce_op_prints_like_torch():
    assert str(dist.ReduceOp.SUM) == "RedOpType.SUM"
    assert repr(dist.ReduceOp.AVG) == "<RedOpType.AVG: 1>"
    assert [int(getattr(dist.ReduceOp, o)) for o in ("SUM", "AVG", "PRODUCT", "MIN", "MAX")] == [0, 1, 2, 3, 4]


def test_cuda_aware_mpi_is_asked_unless_the_environment_says(world, monkeypatch):
    from dtrain._backend import cuda_available
    from dtrain.distributed import _env
    from dtrain.distributed._mpi import _cuda_aware
    MPI = _env.mpi()
    monkeypatch.setenv("DTRAIN_CUDA_AWARE_MPI", "1")
    assert _cuda_aware(MPI) is True
    monkeypatch.setenv("DTRAIN_CUDA_AWARE_MPI", "0")
    assert _cuda_aware(MPI) is False
    monkeypatch.delenv("DTRAIN_CUDA_AWARE_MPI")
    if not cuda_available():
        assert _cuda_aware(MPI) is False  # MPI says so itself: there is no device for it to reach
    monkeypatch.setattr(MPI, "__file__", "/nonexistent/libmpi.so", raising=False)
    assert _cuda_aware(MPI) is False  # nothing to ask: staging through the host is always safe


def test_double_init_raises(world):
    with pytest.raises(ValueError, match="twice"):
        dist.init_process_group()


def test_avg_of_ints_raises(world):
    with pytest.raises(RuntimeError, match="ReduceOp.AVG with integer inputs: result type Float can't be cast to "
                                           "the desired output type Long"):
        dist.all_reduce(dtrain.tensor([1, 2]), op=dist.ReduceOp.AVG)


def test_new_group_rejects_ranks_outside_the_world(world):
    with pytest.raises(ValueError, match="within the world_size"):
        dist.new_group([0, dist.get_world_size()])


def test_nccl_group_rejects_cpu_tensors(world):
    pg = dist.distributed_c10d.ProcessGroup(world._mpi, world._ranks, 5.0, "nccl", "check")
    with pytest.raises(RuntimeError, match="No backend type associated with device type cpu"):
        pg._backend_for(dtrain.zeros(2))


@pytest.mark.mpi(min_size=2)
def test_late_rank_times_out_naming_it(world):
    n, me = dist.get_world_size(), dist.get_rank()
    late = n - 1
    g = dist.new_group(timeout=2.0)
    x = dtrain.ones(3, 4)
    if me != late:
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=rf"all_reduce on a tensor of shape \[3, 4\].*timed out after 2 s "
                                               rf"on rank {me}: ranks \[{late}\] did not arrive") as info:
            dist.all_reduce(x, group=g)
        assert isinstance(info.value, dist.DistBackendError)
        assert 1.9 < time.monotonic() - t0 < 10
        with pytest.raises(RuntimeError, match="unusable after an earlier failure"):
            dist.all_reduce(x, group=g)
    dist.barrier()
    if me == late:
        # the late rank arrives after all: its peers' abandoned requests complete, leaving MPI clean
        dist.all_reduce(x, group=g)
        np.testing.assert_array_equal(x.numpy(), np.full((3, 4), float(n)))
    dist.barrier()
    dist.destroy_process_group(g)


@pytest.mark.mpi(min_size=2)
def test_late_rank_that_is_busy_elsewhere_is_named(world):
    # the late rank computes instead of waiting in some other collective, so it cannot answer the question
    # "how far have you got?": its silence names it
    n, me = dist.get_world_size(), dist.get_rank()
    late = n - 1
    g = dist.new_group(timeout=1.0)
    x = dtrain.ones(2)
    if me == late:
        time.sleep(3.0)
    else:
        with pytest.raises(RuntimeError, match=rf"on rank {me}: ranks \[{late}\] did not arrive"):
            dist.all_reduce(x, group=g)
    if me == late:
        dist.all_reduce(x, group=g)
    dist.barrier()
    dist.destroy_process_group(g)


@pytest.mark.mpi(min_size=3)
def test_rank_that_finished_a_rooted_collective_early_is_not_named(world):
    # non-roots of a reduce may finish as soon as their part is sent, then compute: they still arrived
    n, me = dist.get_world_size(), dist.get_rank()
    root, late = 1, n - 1
    g = dist.new_group(timeout=1.0)
    x = dtrain.full((4,), float(me))
    if me == root:
        with pytest.raises(RuntimeError, match=rf"on rank {root}: ranks \[{late}\] did not arrive"):
            dist.reduce(x, dst=root, group=g)
    elif me != late:
        dist.reduce(x, dst=root, group=g)
        time.sleep(3.0)  # busy: answers no question
    else:
        time.sleep(3.0)
        dist.reduce(x, dst=root, group=g)
    dist.barrier()
    dist.destroy_process_group(g)


@pytest.mark.mpi(min_size=2)
def test_a_root_ahead_of_its_peers_waits_a_second_at_most_and_is_checked_later(world):
    # the root's broadcast is done at once; it waits for the peers' fingerprints about a second, then goes on, and
    # the comparison (they agree) happens at the group's next collective
    from dtrain.distributed.distributed_c10d import _ROOTED_WAIT_S
    me = dist.get_rank()
    g = dist.new_group(timeout=30.0)
    x = dtrain.arange(6, dtype=dtrain.float32) if me == 0 else dtrain.zeros(6)
    dist.barrier()
    t0 = time.monotonic()
    if me != 0:
        time.sleep(_ROOTED_WAIT_S + 1.5)
    dist.broadcast(x, src=0, group=g)
    took = time.monotonic() - t0
    if me == 0:
        assert _ROOTED_WAIT_S - 0.05 < took < _ROOTED_WAIT_S + 1.0, took
        assert g._unchecked  # left for the next collective
    np.testing.assert_array_equal(x.numpy(), np.arange(6, dtype=np.float32))
    y = dtrain.ones(3)
    dist.all_reduce(y, group=g)
    assert not g._unchecked and g._broken is None
    np.testing.assert_array_equal(y.numpy(), np.full(3, float(dist.get_world_size())))
    dist.barrier()
    dist.destroy_process_group(g)


@pytest.mark.mpi(min_size=3)
def test_a_timeout_names_who_missed_that_collective_not_a_later_one(world):
    # rank `half` reaches collective #1 of the group but not #2; a timeout of #1 must not name it
    n, me = dist.get_world_size(), dist.get_rank()
    half, late = n - 2, n - 1
    g = dist.new_group(timeout=1.0 if me < half else 30.0)  # `half` must not time out itself
    x, y = dtrain.ones(2), dtrain.ones(3)
    if me < half:
        first = dist.all_reduce(x, group=g, async_op=True)
        second = dist.all_reduce(y, group=g, async_op=True)
        with pytest.raises(RuntimeError, match=rf"on rank {me}: ranks \[{late}\] did not arrive"):
            first.wait()
        with pytest.raises(RuntimeError, match=rf"ranks \[{half}, {late}\] did not arrive"):
            second.wait()
    elif me == half:
        dist.all_reduce(x, group=g, async_op=True)
    dist.barrier()
    if me == half:
        dist.all_reduce(y, group=g)
    if me == late:
        dist.all_reduce(x, group=g)
        dist.all_reduce(y, group=g)
    dist.barrier()
    dist.destroy_process_group(g)


@pytest.mark.mpi(min_size=2)
def test_async_work_times_out(world):
    me, late = dist.get_rank(), dist.get_world_size() - 1
    g = dist.new_group(timeout=1.0)
    x = dtrain.ones(2)
    if me != late:
        work = dist.all_reduce(x, group=g, async_op=True)
        with pytest.raises(RuntimeError, match=rf"ranks \[{late}\] did not arrive"):
            work.wait()
    dist.barrier()
    if me == late:
        dist.all_reduce(x, group=g)
    dist.barrier()
    dist.destroy_process_group(g)


@pytest.mark.mpi(min_size=2)
def test_debug_detail_reports_mismatched_shapes(world, monkeypatch):
    monkeypatch.setenv("DTRAIN_DISTRIBUTED_DEBUG", "DETAIL")
    g = dist.new_group(timeout=30)
    me = dist.get_rank()
    odd = dist.get_world_size() - 1
    x = dtrain.ones(5 if me == odd else 4)
    with pytest.raises(RuntimeError, match=rf"mismatch between collectives.*ranks \[{odd}\] differ.*"
                                           rf"rank {odd} is running all_reduce\(shape=\[5\]"):
        dist.all_reduce(x, group=g)
    # every rank raised before the collective ran: the group still works
    x = dtrain.ones(4, dtype=dtrain.float64)
    dist.all_reduce(x, group=g)
    np.testing.assert_array_equal(x.numpy(), np.full(4, float(dist.get_world_size())))
    y = dtrain.ones(2) if me == 0 else dtrain.ones(2, dtype=dtrain.float64)
    with pytest.raises(RuntimeError, match="dtype=torch.float64"):
        dist.broadcast(y, src=0, group=g)
    dist.destroy_process_group(g)


def test_timeout_from_env_and_argument(world, monkeypatch):
    import datetime
    monkeypatch.setenv("DTRAIN_DIST_TIMEOUT", "7.5")
    g = dist.new_group(timeout=None)
    h = dist.new_group(timeout=datetime.timedelta(seconds=3))
    assert (g._timeout, h._timeout) == (world._timeout, 3.0)  # groups inherit the world's unless given one
    monkeypatch.delenv("DTRAIN_DIST_TIMEOUT")
    assert dist.distributed_c10d._timeout_s(None) == 600.0  # torch's default: 10 minutes
    monkeypatch.setenv("DTRAIN_DIST_TIMEOUT", "7.5")
    assert dist.distributed_c10d._timeout_s(None) == 7.5
    dist.destroy_process_group(g)
    dist.destroy_process_group(h)
