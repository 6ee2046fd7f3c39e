"""DataLoader with real worker processes: order, prefetching, persistence, seeding, errors, and clean shutdown."""
import multiprocessing
import os
import random
import signal
import time

import numpy as np
import pytest
import torch
import torch.utils.data as tdata

import dtrain
import dtrain.utils.data as ddata
from test_data import Point, assert_same

# 3 workers on a 2-core machine warns, as torch does (tested once below)
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")


def child_pids():
    """Live child processes of this one, from /proc (not only those multiprocessing knows about); the
    multiprocessing resource tracker, shared by every spawn-context user, is not ours to count."""
    me, pids = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == me and fields[0] != "Z" and b"resource_tracker" not in cmd:
            pids.add(int(entry))
    return pids


def assert_no_workers_left(before):
    deadline = time.monotonic() + 5
    while (child_pids() - before or multiprocessing.active_children()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not multiprocessing.active_children()
    assert child_pids() - before == set()


@pytest.fixture
def no_leaks():
    # no gc.collect(): workers must go when the last reference does, without waiting for a cycle collection
    before = child_pids()
    yield
    assert_no_workers_left(before)


def _xy(m, n=11):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return m.utils.data.TensorDataset(m.tensor(x), m.arange(n), m.tensor(x[:, 0] > 10))


class Items(ddata.Dataset):
    """A list of samples; `hook(i)` runs in the worker before sample i is returned."""

    def __init__(self, items, hook=None):
        self.items, self.hook = items, hook

    def __getitem__(self, i):
        if self.hook is not None:
            self.hook(i)
        return self.items[i]

    def __len__(self):
        return len(self.items)


class WhoAmI(ddata.Dataset):
    """Each sample says which process, worker and seeds produced it."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = ddata.get_worker_info()
        return {"i": i, "pid": os.getpid(), "id": info.id, "num_workers": info.num_workers, "seed": info.seed,
                "initial_seed": dtrain.initial_seed(), "rand": dtrain.rand(1).item(), "np": np.random.rand(),
                "py": random.random(), "same_dataset": info.dataset is self}


# ------------------------------------------------------------------------------------------------ results
@pytest.mark.parametrize("num_workers", [2, 3])
@pytest.mark.parametrize("kwargs", [{"batch_size": 3}, {"batch_size": 3, "drop_last": True}, {"batch_size": None},
                                    {"batch_sampler": [[4, 1], [0], [10, 9, 8, 7], [2, 3]]}])
def test_workers_match_torch_in_order(num_workers, kwargs, no_leaks):
    ours = ddata.DataLoader(_xy(dtrain), num_workers=num_workers, **kwargs)
    theirs = tdata.DataLoader(_xy(torch), **kwargs)
    got = list(ours)
    assert_same(got, list(theirs))
    assert len(ours) == len(theirs) == len(got)
    # batches arrive as arrays the caller owns (in-place ops work)
    assert all(t._data.flags.writeable for b in got for t in (b if isinstance(b, list) else [b]) if t.ndim)


def test_workers_collate_structures_and_raw_arrays(no_leaks):
    samples = [{"p": Point(i, np.full(2, i, np.int16)), "s": f"s{i}", "t": (float(i), [i, i])} for i in range(5)]
    assert_same(list(ddata.DataLoader(Items(samples), batch_size=2, num_workers=2)),
                list(tdata.DataLoader(samples, batch_size=2)))
    # a custom collate that keeps NumPy arrays: they arrive as arrays, not tensors
    arrays = [np.arange(3) * i for i in range(4)]
    out = list(ddata.DataLoader(Items(arrays), batch_size=2, num_workers=2, collate_fn=lambda b: b))
    assert all(type(a) is np.ndarray for b in out for a in b)
    np.testing.assert_array_equal(np.stack([a for b in out for a in b]), np.stack(arrays))


def test_workers_take_batches_round_robin(no_leaks):
    got = list(ddata.DataLoader(WhoAmI(), batch_size=2, num_workers=3))
    assert [b["i"].tolist() for b in got] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert [b["id"][0].item() for b in got] == [0, 1, 2, 0]
    assert all(b["num_workers"].tolist() == [3, 3] and b["same_dataset"].tolist() == [True, True] for b in got)
    assert len({b["pid"][0].item() for b in got} | {os.getpid()}) == 4


def _sharded_iterable(dm):
    class Sharded(dm.IterableDataset):
        def __iter__(self):
            info = dm.get_worker_info()
            return iter(range(info.id, 10, info.num_workers))
    return Sharded()


def _unsharded_iterable(dm):
    class Same(dm.IterableDataset):
        def __iter__(self):
            return iter(range(5))
    return Same()


@pytest.mark.parametrize("make", [_sharded_iterable, _unsharded_iterable])
@pytest.mark.parametrize("kwargs", [{"batch_size": 2}, {"batch_size": 3, "drop_last": True}, {"batch_size": None}])
def test_iterable_dataset_with_workers_matches_torch(make, kwargs, no_leaks):
    ours = list(ddata.DataLoader(make(ddata), num_workers=2, **kwargs))
    theirs = list(tdata.DataLoader(make(tdata), num_workers=2, **kwargs))
    assert_same(ours, theirs)


def test_spawn_context_matches_torch(no_leaks):
    ours = ddata.DataLoader(_xy(dtrain), batch_size=4, num_workers=1, multiprocessing_context="spawn")
    assert_same(list(ours), list(tdata.DataLoader(_xy(torch), batch_size=4)))


# ------------------------------------------------------------------------------------------------ prefetching
class Counting(ddata.Dataset):
    """Counts fetches in shared memory so the parent can see how far workers ran ahead."""

    def __init__(self, n):
        self.n, self.count = n, multiprocessing.get_context("fork").Value("i", 0)

    def __getitem__(self, i):
        with self.count.get_lock():
            self.count.value += 1
        return i

    def __len__(self):
        return self.n


def _settle(counter, expected):
    deadline = time.monotonic() + 5
    while counter.value < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # and nothing more arrives
    return counter.value


@pytest.mark.parametrize("num_workers, prefetch_factor", [(1, 1), (2, 2), (2, 3)])
def test_prefetch_factor_bounds_work_ahead(num_workers, prefetch_factor, no_leaks):
    data = Counting(40)
    loader = ddata.DataLoader(data, batch_size=1, num_workers=num_workers, prefetch_factor=prefetch_factor,
                              multiprocessing_context="fork")
    assert ddata.DataLoader(data, num_workers=2).prefetch_factor == 2  # the default, as torch
    it = iter(loader)
    ahead = num_workers * prefetch_factor
    assert _settle(data.count, ahead) == ahead
    assert next(it).item() == 0
    assert _settle(data.count, ahead + 1) == ahead + 1
    assert [b.item() for b in it] == list(range(1, 40))


# ------------------------------------------------------------------------------------------------ persistence
def test_persistent_workers_survive_epochs(no_leaks):
    loader = ddata.DataLoader(WhoAmI(), batch_size=2, num_workers=2, persistent_workers=True)
    epochs = [list(loader) for _ in range(3)]
    pids = [{p for b in e for p in b["pid"].tolist()} for e in epochs]
    assert pids[0] == pids[1] == pids[2] and len(pids[0]) == 2
    assert all([b["i"].tolist() for b in e] == [[0, 1], [2, 3], [4, 5], [6, 7]] for e in epochs)
    assert len(multiprocessing.active_children()) >= 2  # still there between epochs
    # an epoch abandoned half way: the next one starts from the beginning, stale batches are dropped
    it = iter(loader)
    next(it)
    assert [b["i"].tolist() for b in loader] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    del it, loader


def test_non_persistent_workers_are_new_each_epoch(no_leaks):
    loader = ddata.DataLoader(WhoAmI(), batch_size=4, num_workers=2)
    first, second = ({p for b in loader for p in b["pid"].tolist()} for _ in range(2))
    assert first.isdisjoint(second)


def test_persistent_workers_iterable_dataset(no_leaks):
    loader = ddata.DataLoader(_sharded_iterable(ddata), batch_size=2, num_workers=2, persistent_workers=True)
    expected = list(tdata.DataLoader(_sharded_iterable(tdata), batch_size=2, num_workers=2))
    for _ in range(2):
        assert_same(list(loader), expected)
    del loader


# ------------------------------------------------------------------------------------------------ seeds
def test_worker_seeds_are_distinct_and_reproducible(no_leaks):
    def run(seed, generator=None):
        dtrain.manual_seed(seed)
        return list(ddata.DataLoader(WhoAmI(), batch_size=2, num_workers=2, generator=generator))

    a, b, c = run(1), run(1), run(2)
    for key in ("seed", "initial_seed", "rand", "np", "py"):
        assert [x[key].tolist() for x in a] == [x[key].tolist() for x in b]
    assert [x["seed"].tolist() for x in a] != [x["seed"].tolist() for x in c]
    seeds = {x["id"][0].item(): x["seed"][0].item() for x in a}
    assert seeds[1] == seeds[0] + 1  # base_seed + worker_id, as torch
    assert all(x["initial_seed"].tolist() == x["seed"].tolist() for x in a)
    w0 = [x for x in a if x["id"][0].item() == 0]
    w1 = [x for x in a if x["id"][0].item() == 1]
    assert w0[0]["rand"][0].item() != w1[0]["rand"][0].item()
    # NumPy's global RNG is seeded with torch's hash of (base_seed, worker_id)
    from torch.utils.data._utils.worker import _generate_state
    expected_np = np.random.RandomState(_generate_state(seeds[0], 0)).rand()
    assert w0[0]["np"][0].item() == expected_np
    assert w0[0]["py"][0].item() == random.Random(seeds[0]).random()
    # the loader's generator, not the global one, decides the base seed when given
    g1 = run(5, dtrain.Generator().manual_seed(9))
    g2 = run(6, dtrain.Generator().manual_seed(9))
    assert [x["seed"].tolist() for x in g1] == [x["seed"].tolist() for x in g2]


def test_worker_init_fn_runs_in_each_worker_after_seeding(no_leaks):
    def init(worker_id):
        info = ddata.get_worker_info()
        assert info.id == worker_id
        info.dataset.items = [(worker_id, dtrain.initial_seed() - info.seed)] * len(info.dataset.items)

    got = list(ddata.DataLoader(Items([None] * 6), batch_size=None, num_workers=3, worker_init_fn=init))
    assert [tuple(g) for g in got] == [(0, 0), (1, 0), (2, 0), (0, 0), (1, 0), (2, 0)]


# ------------------------------------------------------------------------------------------------ errors
def _fail_at_3(i):
    if i == 3:
        raise ValueError(f"bad index {i}")


def test_worker_exception_reraised_with_traceback(no_leaks):
    from torch._utils import ExceptionWrapper  # torch's formatting of a worker's error, run in-process
    try:
        _fail_at_3(3)
    except ValueError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 1")
    with pytest.raises(ValueError) as e_torch:
        wrapped.reraise()
    data = list(range(8))
    it = iter(ddata.DataLoader(Items(data, _fail_at_3), batch_size=2, num_workers=2))
    assert next(it).tolist() == [0, 1]
    with pytest.raises(ValueError) as e_ours:
        next(it)
    msg = str(e_ours.value)
    assert msg.startswith("Caught ValueError in DataLoader worker process 1.\nOriginal Traceback (most recent call "
                          "last):\n")
    assert msg.splitlines()[:2] == str(e_torch.value).splitlines()[:2]
    assert 'raise ValueError(f"bad index {i}")' in msg and msg.rstrip().endswith("ValueError: bad index 3")
    # like torch, the iterator goes on after a failed batch
    assert [b.tolist() for b in it] == [[4, 5], [6, 7]]
    del e_torch, e_ours, it


def _key_error(i):
    raise KeyError("missing")


def test_worker_key_error_is_readable(no_leaks):
    with pytest.raises(KeyError) as e:
        next(iter(ddata.DataLoader(Items([0, 1], _key_error), num_workers=1)))
    assert "Caught KeyError in DataLoader worker process 0.\nOriginal Traceback" in str(e.value)
    assert "\\n" not in str(e.value)
    del e


def test_worker_init_fn_error_surfaces_with_first_batch(no_leaks):
    def init(worker_id):
        raise TypeError(f"init failed in {worker_id}")

    with pytest.raises(TypeError, match=r"Caught TypeError in DataLoader worker process 0\.(.|\n)*init failed in 0"):
        list(ddata.DataLoader(Items([0, 1, 2]), num_workers=1, worker_init_fn=init))


def test_error_leaves_no_processes_once_dropped(no_leaks):
    loader = ddata.DataLoader(Items(list(range(8)), _fail_at_3), batch_size=1, num_workers=2)
    with pytest.raises(ValueError):
        for _ in loader:
            pass
    # the exception has been handled and dropped: the iterator, and its workers, are gone
    assert_no_workers_left(set())


def _sleep_at_0(i):
    if i == 0:
        time.sleep(1.0)


def test_timeout(no_leaks):
    it = iter(ddata.DataLoader(Items([0, 1], _sleep_at_0), num_workers=1, timeout=0.2))
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"^DataLoader timed out after 0\.2 seconds$"):
        next(it)
    assert time.monotonic() - t0 < 0.9
    del it
    # a timeout long enough is no error
    assert [b.item() for b in ddata.DataLoader(Items([0, 1], _sleep_at_0), num_workers=1, timeout=3)] == [0, 1]


def _kill_self_at_2(i):
    if i == 2:
        os.kill(os.getpid(), signal.SIGKILL)


def _exit_at_1(i):
    if i == 1:
        os._exit(3)


def test_worker_killed_by_signal_raises(no_leaks):
    loader = ddata.DataLoader(Items(list(range(6)), _kill_self_at_2), batch_size=1, num_workers=2)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"^DataLoader worker \(pid \d+\) is killed by signal: Killed\. $"):
        list(loader)
    assert time.monotonic() - t0 < 3


def test_worker_exit_code_raises(no_leaks):
    loader = ddata.DataLoader(Items(list(range(4)), _exit_at_1), batch_size=1, num_workers=2)
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid \d+\) exited unexpectedly with exit code 3\."):
        list(loader)


# ------------------------------------------------------------------------------------------------ clean shutdown
def test_no_processes_after_full_epoch(no_leaks):
    it = iter(ddata.DataLoader(Items(list(range(6))), batch_size=2, num_workers=2))
    workers = list(multiprocessing.active_children())
    assert len(workers) >= 2
    assert [b.tolist() for b in it] == [[0, 1], [2, 3], [4, 5]]
    # the epoch's end shuts workers down even while the iterator object lives on
    assert_no_workers_left(set())
    assert all(w.exitcode == 0 for w in workers)


def test_no_processes_after_del_mid_epoch(no_leaks):
    it = iter(ddata.DataLoader(Items(list(range(100))), batch_size=2, num_workers=3))
    assert next(it).tolist() == [0, 1]
    assert len(multiprocessing.active_children()) >= 3
    del it
    assert_no_workers_left(set())


def test_no_processes_after_persistent_loader_dropped(no_leaks):
    loader = ddata.DataLoader(Items(list(range(4))), batch_size=2, num_workers=2, persistent_workers=True)
    assert [b.tolist() for b in loader] == [[0, 1], [2, 3]]
    assert len(multiprocessing.active_children()) >= 2
    del loader
    assert_no_workers_left(set())


def test_stuck_worker_is_terminated_on_del(no_leaks):
    def hang(i):
        if i == 1:
            time.sleep(60)

    it = iter(ddata.DataLoader(Items([0, 1, 2]), batch_size=None, num_workers=1))
    it = iter(ddata.DataLoader(Items([0, 1, 2], hang), batch_size=None, num_workers=1))
    assert next(it) == 0
    t0 = time.monotonic()
    del it
    assert time.monotonic() - t0 < 5


@pytest.mark.filterwarnings("default")
def test_too_many_workers_warns_like_torch():
    n = len(os.sched_getaffinity(0)) + 1
    with pytest.warns(UserWarning) as ours:
        ddata.DataLoader(Items([0]), num_workers=n)
    with pytest.warns(UserWarning) as theirs:
        tdata.DataLoader([0], num_workers=n)
    assert str(ours[0].message) == str(theirs[0].message)


def test_iterator_is_not_picklable():
    import pickle
    it = iter(ddata.DataLoader(Items([0, 1])))
    with pytest.raises(NotImplementedError):
        pickle.dumps(it)
