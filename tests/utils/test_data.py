"""Datasets, samplers, collation and the single-process DataLoader, against torch.utils.data."""
import collections

import numpy as np
import pytest
import torch
import torch.utils.data as tdata

import dtrain
import dtrain.utils.data as ddata

Point = collections.namedtuple("Point", ["x", "y"])


def assert_same(a, b, path="batch"):
    """dtrain output `a` has torch output `b`'s structure, container types, dtypes and values."""
    if isinstance(b, torch.Tensor):
        assert isinstance(a, dtrain.Tensor), f"{path}: {type(a)} is not a tensor"
        assert str(a.dtype) == str(b.dtype), f"{path}: dtype {a.dtype} != torch's {b.dtype}"
        assert tuple(a.shape) == tuple(b.shape), f"{path}: shape {tuple(a.shape)} != {tuple(b.shape)}"
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=path)
    elif isinstance(b, dict):
        assert type(a) is type(b) and list(a) == list(b), f"{path}: {a!r} vs {b!r}"
        for k in b:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(b, (list, tuple)):
        assert type(a).__name__ == type(b).__name__ and len(a) == len(b), f"{path}: {type(a)} vs {type(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} != {b!r}"


class ListDataset:
    def __init__(self, items):
        self.items = items

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)


def _iterable(data_module, n):
    class R(data_module.IterableDataset):
        def __iter__(self):
            return iter(range(n))

        def __len__(self):
            return n
    return R()


# ------------------------------------------------------------------------------------------------ collate
SAMPLES = {
    "ints": [0, 1, 2, 3],
    "floats": [0.5, 1.5, -2.0],
    "bools": [True, False, True],
    "strs": ["a", "bc", "d"],
    "bytes": [b"a", b"b"],
    "np_arrays": [np.arange(3, dtype=np.float32) + i for i in range(4)],
    "np_int_arrays": [np.arange(6).reshape(2, 3) * i for i in range(3)],
    "np_scalars": [np.float32(1.5), np.float32(2.5)],
    "np_int_scalars": [np.int16(1), np.int16(7)],
    "dicts": [{"a": i, "b": float(i), "c": np.ones(2) * i} for i in range(3)],
    "namedtuples": [Point(i, np.array([i, i + 1])) for i in range(3)],
    "tuples": [(i, 2.0 * i, "s") for i in range(3)],
    "lists": [[i, i + 1] for i in range(4)],
    "nested": [{"p": [Point(i, float(i)), (i, i)], "q": "x"} for i in range(2)],
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_default_collate_matches_torch(name):
    batch = SAMPLES[name]
    assert_same(ddata.default_collate(batch), tdata.default_collate(batch))


def test_default_collate_tensors():
    arrays = [np.random.default_rng(i).standard_normal((2, 3)).astype(np.float32) for i in range(4)]
    ours = ddata.default_collate([dtrain.tensor(a) for a in arrays])
    theirs = tdata.default_collate([torch.tensor(a) for a in arrays])
    assert_same(ours, theirs)
    # samples that need a graph are stacked through autograd
    xs = [dtrain.tensor(a, requires_grad=True) for a in arrays]
    out = ddata.default_collate(xs)
    out.sum().backward()
    np.testing.assert_array_equal(xs[0].grad.numpy(), np.ones((2, 3), np.float32))


@pytest.mark.parametrize("batch, exc", [
    ([[1, 2], [3]], RuntimeError),                                 # ragged sequences
    ([np.array(["a"]), np.array(["b"])], TypeError),               # string arrays
    ([object(), object()], TypeError),                             # unknown type
])
def test_default_collate_errors(batch, exc):
    with pytest.raises(exc) as e_torch:
        tdata.default_collate(batch)
    with pytest.raises(exc) as e_ours:
        ddata.default_collate(batch)
    assert str(e_ours.value).replace("dtrain", "torch") == str(e_torch.value)


def test_default_collate_stack_shape_error():
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[3\] at entry 0 "
                                           r"and \[4\] at entry 1"):
        ddata.default_collate([dtrain.zeros(3), dtrain.zeros(4)])


@pytest.mark.parametrize("data", [np.arange(3), np.float64(2.0), [np.ones(2), np.zeros(2)],
                                  (np.ones(1), 3), {"a": np.arange(2), "b": "s"}, Point(np.ones(1), 2),
                                  np.array(["x"]), 5, "s"])
def test_default_convert_matches_torch(data):
    assert_same(ddata.default_convert(data), tdata.default_convert(data))


# ------------------------------------------------------------------------------------------------ datasets
def test_tensor_dataset():
    x, y = np.arange(12.).reshape(6, 2), np.arange(6)
    d = ddata.TensorDataset(dtrain.tensor(x), dtrain.tensor(y))
    t = tdata.TensorDataset(torch.tensor(x), torch.tensor(y))
    assert len(d) == len(t) == 6
    assert_same(d[3], t[3])
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        ddata.TensorDataset(dtrain.zeros(3), dtrain.zeros(4))


def test_concat_subset_stack_chain():
    a, b = ListDataset(list(range(5))), ListDataset(list(range(10, 13)))
    for m in (ddata, tdata):
        c = m.ConcatDataset([a, b])
        assert len(c) == 8 and c.cumulative_sizes == [5, 8]
        assert [c[i] for i in range(8)] == [0, 1, 2, 3, 4, 10, 11, 12] and c[-1] == 12
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
        ddata.ConcatDataset([a, b])[-9]
    with pytest.raises(AssertionError, match="ConcatDataset does not support IterableDataset"):
        ddata.ConcatDataset([a, _iterable(ddata, 3)])
    s = ddata.Subset(a, [4, 0, 2])
    assert len(s) == 3 and [s[i] for i in range(3)] == [4, 0, 2] and s.__getitems__([0, 2]) == [4, 2]
    st = ddata.StackDataset(a, a)
    assert st[1] == (1, 1) and ddata.StackDataset(p=a, q=a)[2] == {"p": 2, "q": 2}
    with pytest.raises(ValueError, match="Size mismatch between datasets"):
        ddata.StackDataset(a, b)
    ch = ddata.ChainDataset([_iterable(ddata, 3), _iterable(ddata, 2)])
    assert list(ch) == list(tdata.ChainDataset([_iterable(tdata, 3), _iterable(tdata, 2)])) and len(ch) == 5
    sized = ddata.Subset(a, [0, 1])
    assert isinstance(sized + sized, ddata.ConcatDataset) and len(sized + sized) == 4
    assert isinstance(_iterable(ddata, 1) + _iterable(ddata, 1), ddata.ChainDataset)


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.34, 0.33, 0.33], [1, 2, 3, 4]])
def test_random_split(lengths):
    data = ListDataset(list(range(10)))
    ours = ddata.random_split(data, lengths, generator=dtrain.Generator().manual_seed(3))
    theirs = tdata.random_split(data, lengths, generator=torch.Generator().manual_seed(3))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert sorted(i for s in ours for i in s.indices) == list(range(10))
    again = ddata.random_split(data, lengths, generator=dtrain.Generator().manual_seed(3))
    assert [s.indices for s in ours] == [s.indices for s in again]
    other = ddata.random_split(data, lengths, generator=dtrain.Generator().manual_seed(4))
    assert [s.indices for s in ours] != [s.indices for s in other]


def test_random_split_errors():
    data = ListDataset(list(range(10)))
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset!"):
        ddata.random_split(data, [3, 3])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        assert len(ddata.random_split(data, [1.0, 0.0])[1]) == 0
    # the default generator is used (and advanced) when none is given
    dtrain.manual_seed(1)
    a = ddata.random_split(data, [5, 5])[0].indices
    dtrain.manual_seed(1)
    assert ddata.random_split(data, [5, 5])[0].indices == a


# ------------------------------------------------------------------------------------------------ samplers
def test_sequential_and_batch_sampler():
    for drop_last in (False, True):
        for bs in (1, 3, 4, 10, 11):
            ours = ddata.BatchSampler(ddata.SequentialSampler(range(10)), bs, drop_last)
            theirs = tdata.BatchSampler(tdata.SequentialSampler(range(10)), bs, drop_last)
            assert list(ours) == list(theirs) and len(ours) == len(theirs)


@pytest.mark.parametrize("args", [(0, False), (-1, False), (True, False), (2, 1), (2.0, False)])
def test_batch_sampler_errors(args):
    with pytest.raises(ValueError) as e_torch:
        tdata.BatchSampler(range(3), *args)
    with pytest.raises(ValueError) as e_ours:
        ddata.BatchSampler(range(3), *args)
    assert str(e_ours.value) == str(e_torch.value)


def test_random_sampler():
    data = range(10)
    order = list(ddata.RandomSampler(data, generator=dtrain.Generator().manual_seed(0)))
    assert sorted(order) == list(data)
    assert order == list(ddata.RandomSampler(data, generator=dtrain.Generator().manual_seed(0)))
    assert order != list(ddata.RandomSampler(data, generator=dtrain.Generator().manual_seed(1)))
    # num_samples beyond len: whole permutations then a partial one
    s = ddata.RandomSampler(data, num_samples=25, generator=dtrain.Generator().manual_seed(0))
    idx = list(s)
    assert len(s) == len(idx) == 25 and sorted(idx[:10]) == sorted(idx[10:20]) == list(data)
    assert len(set(idx[20:])) == 5
    # with replacement: in range, repeats allowed, reproducible
    r = list(ddata.RandomSampler(data, replacement=True, num_samples=70, generator=dtrain.Generator().manual_seed(2)))
    assert len(r) == 70 and all(0 <= i < 10 for i in r) and len(set(r)) < 70
    assert r == list(ddata.RandomSampler(data, True, 70, generator=dtrain.Generator().manual_seed(2)))
    # without a generator: seeded from the default generator
    dtrain.manual_seed(5)
    a = list(ddata.RandomSampler(data))
    dtrain.manual_seed(5)
    assert list(ddata.RandomSampler(data)) == a


@pytest.mark.parametrize("kwargs, exc", [({"replacement": 1}, TypeError), ({"num_samples": 0}, ValueError),
                                         ({"num_samples": 2.5}, ValueError)])
def test_random_sampler_errors(kwargs, exc):
    with pytest.raises(exc) as e_torch:
        tdata.RandomSampler(range(3), **kwargs)
    with pytest.raises(exc) as e_ours:
        ddata.RandomSampler(range(3), **kwargs)
    assert str(e_ours.value) == str(e_torch.value)


def test_subset_random_and_weighted_samplers():
    s = ddata.SubsetRandomSampler([7, 3, 9, 1], generator=dtrain.Generator().manual_seed(0))
    assert len(s) == 4 and sorted(s) == [1, 3, 7, 9]
    w = ddata.WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 200, generator=dtrain.Generator().manual_seed(0))
    draws = list(w)
    assert len(w) == 200 and set(draws) == {1, 3}
    assert 0.65 < draws.count(3) / 200 < 0.85  # p = 0.75
    nr = list(ddata.WeightedRandomSampler([1, 1, 1, 1, 1], 5, replacement=False))
    assert sorted(nr) == [0, 1, 2, 3, 4]
    for args in [([1.0, 2.0], 0), ([1.0, 2.0], 2, 1), ([[1.0], [2.0]], 2)]:
        with pytest.raises(ValueError) as e_torch:
            tdata.WeightedRandomSampler(*args)
        with pytest.raises(ValueError) as e_ours:
            ddata.WeightedRandomSampler(*args)
        assert str(e_ours.value) == str(e_torch.value)


# ------------------------------------------------------------------------------------------------ DataLoader
def _map_data(m):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3)).astype(np.float32)
    return m.utils.data.TensorDataset(m.tensor(x), m.arange(10))


@pytest.mark.parametrize("kwargs", [{}, {"batch_size": 3}, {"batch_size": 3, "drop_last": True},
                                    {"batch_size": 5}, {"batch_size": None}, {"batch_size": 4, "shuffle": False}])
def test_dataloader_map_matches_torch(kwargs):
    ours = ddata.DataLoader(_map_data(dtrain), **kwargs)
    theirs = tdata.DataLoader(_map_data(torch), **kwargs)
    assert len(ours) == len(theirs)
    assert_same(list(ours), list(theirs))


def test_dataloader_batch_sampler_and_sampler_match_torch():
    batches = [[3, 1], [0, 9, 8], [5]]
    assert_same(list(ddata.DataLoader(_map_data(dtrain), batch_sampler=batches)),
                list(tdata.DataLoader(_map_data(torch), batch_sampler=batches)))
    order = [9, 2, 4, 4, 0]
    assert_same(list(ddata.DataLoader(_map_data(dtrain), sampler=order, batch_size=2)),
                list(tdata.DataLoader(_map_data(torch), sampler=order, batch_size=2)))
    assert len(ddata.DataLoader(_map_data(dtrain), batch_sampler=batches)) == 3


@pytest.mark.parametrize("name", ["dicts", "namedtuples", "tuples", "strs", "np_arrays", "nested"])
def test_dataloader_collate_structures_match_torch(name):
    data = ListDataset(SAMPLES[name])
    assert_same(list(ddata.DataLoader(data, batch_size=2)), list(tdata.DataLoader(data, batch_size=2)))
    assert_same(list(ddata.DataLoader(data, batch_size=None)), list(tdata.DataLoader(data, batch_size=None)))


def test_dataloader_iterable_matches_torch():
    for kwargs in ({"batch_size": 3}, {"batch_size": 3, "drop_last": True}, {"batch_size": None}):
        ours, theirs = ddata.DataLoader(_iterable(ddata, 8), **kwargs), tdata.DataLoader(_iterable(tdata, 8), **kwargs)
        assert len(ours) == len(theirs)
        assert_same(list(ours), list(theirs))


def test_dataloader_iterable_length_warning():
    class Liar(ddata.IterableDataset):
        def __iter__(self):
            return iter(range(5))

        def __len__(self):
            return 3

    loader = ddata.DataLoader(Liar(), batch_size=None)
    assert len(loader) == 3
    with pytest.warns(UserWarning, match=r"was reported to be 3\(when accessing len\(dataloader\)\), but [45] samples"):
        assert list(loader) == list(range(5))  # default_convert leaves ints alone


def test_dataloader_shuffle_reproducible():
    data = ListDataset(list(range(20)))
    a = [b.tolist() for b in ddata.DataLoader(data, batch_size=4, shuffle=True,
                                              generator=dtrain.Generator().manual_seed(7))]
    b = [b.tolist() for b in ddata.DataLoader(data, batch_size=4, shuffle=True,
                                              generator=dtrain.Generator().manual_seed(7))]
    assert a == b and sorted(sum(a, [])) == list(range(20)) and sum(a, []) != list(range(20))
    dtrain.manual_seed(3)
    loader = ddata.DataLoader(data, batch_size=4, shuffle=True)
    e1, e2 = [sum((b.tolist() for b in loader), []) for _ in range(2)]
    assert e1 != e2  # reshuffled each epoch
    dtrain.manual_seed(3)
    assert sum((b.tolist() for b in loader), []) == e1


def _raises_like_torch(exc, iterable=False, **kwargs):
    def make(m, dm):
        dataset = _iterable(dm, 4) if iterable else _map_data(m)
        return dm.DataLoader(dataset, **kwargs)
    with pytest.raises(exc) as e_torch:
        make(torch, tdata)
    with pytest.raises(exc) as e_ours:
        make(dtrain, ddata)
    return str(e_ours.value), str(e_torch.value)


@pytest.mark.parametrize("kwargs, exc", [
    ({"sampler": [0, 1], "shuffle": True}, ValueError),
    ({"batch_sampler": [[0]], "batch_size": 2}, ValueError),
    ({"batch_sampler": [[0]], "shuffle": True}, ValueError),
    ({"batch_sampler": [[0]], "drop_last": True}, ValueError),
    ({"batch_size": None, "drop_last": True}, ValueError),
    ({"num_workers": -1}, ValueError),
    ({"timeout": -1}, ValueError),
    ({"prefetch_factor": 2}, ValueError),
    ({"num_workers": 1, "prefetch_factor": -1}, ValueError),
    ({"persistent_workers": True}, ValueError),
    ({"multiprocessing_context": "fork"}, ValueError),
    ({"num_workers": 1, "multiprocessing_context": "nope"}, ValueError),
    ({"num_workers": 1, "multiprocessing_context": 3}, TypeError),
    ({"batch_size": 0}, ValueError),
])
def test_dataloader_argument_errors(kwargs, exc):
    ours, theirs = _raises_like_torch(exc, **kwargs)
    assert ours == theirs


@pytest.mark.parametrize("kwargs", [{"shuffle": True}, {"sampler": [0]}, {"batch_sampler": [[0]]}])
def test_dataloader_iterable_argument_errors(kwargs):
    ours, theirs = _raises_like_torch(ValueError, iterable=True, **kwargs)
    assert ours.split(", but got")[0] == theirs.split(", but got")[0]


def test_dataloader_attributes_frozen():
    loader = ddata.DataLoader(_map_data(dtrain), batch_size=2)
    with pytest.raises(ValueError, match="batch_size attribute should not be set after DataLoader is initialized"):
        loader.batch_size = 3
    loader.num_workers = 0  # not frozen, like torch


def test_dataloader_default_collate_and_convert_choice():
    data = ListDataset([np.arange(2), np.arange(2) + 1])
    assert ddata.DataLoader(data).collate_fn is ddata.default_collate
    assert ddata.DataLoader(data, batch_size=None).collate_fn is ddata.default_convert
    assert_same(list(ddata.DataLoader(data, batch_size=None)), list(tdata.DataLoader(data, batch_size=None)))


def test_dataloader_dataset_error_propagates_in_main_process():
    class Bad(ddata.Dataset):
        def __getitem__(self, i):
            raise KeyError(i)

        def __len__(self):
            return 2

    with pytest.raises(KeyError):
        next(iter(ddata.DataLoader(Bad())))


def test_pin_memory_without_accelerator_warns():
    if dtrain.cuda.is_available():
        pytest.skip("only warns without an accelerator")
    with pytest.warns(UserWarning, match="'pin_memory' argument is set as true but no accelerator is found"):
        batches = list(ddata.DataLoader(_map_data(dtrain), batch_size=5, pin_memory=True))
    assert_same(batches, list(tdata.DataLoader(_map_data(torch), batch_size=5)))


def test_worker_info_is_none_in_main_process():
    assert ddata.get_worker_info() is None is tdata.get_worker_info()


def test_exports_match_torch_names():
    for name in ddata.__all__:
        assert hasattr(tdata, name), name


def test_dataloader_accepts_torch_keywords():
    ours = ddata.DataLoader(_map_data(dtrain), batch_size=4, in_order=False, pin_memory_device="")
    assert_same(list(ours), list(tdata.DataLoader(_map_data(torch), batch_size=4, in_order=False)))
    assert ours.in_order is False and ours.pin_memory_device == ""
