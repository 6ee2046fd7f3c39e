"""DistributedSampler: torch's padding and partitioning, and shuffles that partition the same permutation."""
import pytest
import torch.utils.data.distributed as tdist

import dtrain.utils.data as ddata
from dtrain.utils.data.distributed import DistributedSampler

CASES = [(n, r) for n in (1, 2, 5, 7, 10, 12) for r in (1, 2, 3, 4, 8)]


@pytest.mark.parametrize("n, replicas", CASES)
@pytest.mark.parametrize("drop_last", [False, True])
def test_unshuffled_indices_equal_torch(n, replicas, drop_last):
    data = list(range(n))
    if drop_last and n < replicas:
        # torch computes a zero length and then fails its own check in __iter__; so do we
        ours, theirs = (m(data, replicas, 0, shuffle=False, drop_last=True) for m in (DistributedSampler,
                                                                                      tdist.DistributedSampler))
        assert len(ours) == len(theirs) == 0
        return
    for rank in range(replicas):
        ours = DistributedSampler(data, num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
        theirs = tdist.DistributedSampler(data, num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs) == len(list(ours))
        assert (ours.num_samples, ours.total_size) == (theirs.num_samples, theirs.total_size)


def _shards(n, replicas, epoch, seed=0, drop_last=False):
    out = []
    for rank in range(replicas):
        s = DistributedSampler(list(range(n)), num_replicas=replicas, rank=rank, seed=seed, drop_last=drop_last)
        s.set_epoch(epoch)
        out.append(list(s))
    return out


@pytest.mark.parametrize("n, replicas", [(10, 3), (12, 4), (5, 8), (7, 2), (9, 1)])
def test_shuffled_partition(n, replicas):
    shards = _shards(n, replicas, epoch=0)
    per_rank = -(-n // replicas)
    assert all(len(s) == per_rank for s in shards)
    # interleave the shards back: one permutation of the data, padded by repeating its start
    merged = [shards[i % replicas][i // replicas] for i in range(per_rank * replicas)]
    assert sorted(merged[:n]) == list(range(n))
    padded = (merged[:n] * (per_rank * replicas // n + 1))[:per_rank * replicas]
    assert merged == padded
    # positions are disjoint across ranks: no sample is read twice except the padding
    assert len({i for s in shards for i in s}) == min(n, per_rank * replicas)
    # every rank draws the same permutation: recomputing gives the same shards, epochs differ, seeds differ
    assert _shards(n, replicas, epoch=0) == shards
    if n > 2:
        assert _shards(n, replicas, epoch=1) != shards
        assert _shards(n, replicas, epoch=0, seed=1) != shards


def test_shuffled_drop_last():
    shards = _shards(10, 3, epoch=2, drop_last=True)
    assert [len(s) for s in shards] == [3, 3, 3]
    flat = [i for s in shards for i in s]
    assert len(set(flat)) == 9  # the tail is dropped, nothing repeated


def test_with_dataloader():
    data = list(range(10))
    s = DistributedSampler(data, num_replicas=2, rank=1, shuffle=False)
    assert [b.tolist() for b in ddata.DataLoader(data, batch_size=2, sampler=s)] == [[1, 3], [5, 7], [9]]
    assert ddata.DistributedSampler is DistributedSampler


@pytest.mark.parametrize("rank", [-1, 3])
def test_invalid_rank(rank):
    with pytest.raises(ValueError) as theirs:
        tdist.DistributedSampler(range(4), num_replicas=3, rank=rank)
    with pytest.raises(ValueError) as ours:
        DistributedSampler(range(4), num_replicas=3, rank=rank)
    assert str(ours.value) == str(theirs.value)


def test_needs_process_group_when_unspecified():
    import dtrain.distributed as dist
    initialized = getattr(dist, "is_initialized", lambda: False)()
    if getattr(dist, "is_available", lambda: False)() and initialized:
        pytest.skip("a process group is initialised in this process")
    with pytest.raises((RuntimeError, ValueError), match="Requires distributed package to be available|"
                                                         "Default process group has not been initialized"):
        DistributedSampler(range(4))
