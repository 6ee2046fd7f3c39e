"""Every collective against a NumPy reference, for any world size (plain pytest: 1; mpiexec -n N: N).

One base class of cases; subclasses pick the backend, the device and the group (MLX's layout).
Run multi-rank with: mpiexec -n 3 python -m pytest --with-mpi tests/distributed/test_collectives.py
"""
import numpy as np
import pytest

import dtrain
import dtrain.distributed as dist

from _dist_reference import DTYPES, OPS, data, host, reduce_ref, tensor


class _CollectiveCases:
    backend = "mpi"
    device = "cpu"
    subgroup = False

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _group(cls, world):
        n = dist.get_world_size()
        if cls.subgroup:
            # every rank calls new_group; the last rank stays out when there is more than one
            cls.ranks = list(range(n - 1)) if n > 1 else [0]
            cls.group = dist.new_group(cls.ranks, backend=cls.backend)
        elif cls.backend != "mpi":
            cls.ranks, cls.group = list(range(n)), dist.new_group(backend=cls.backend)
        else:
            cls.ranks, cls.group = list(range(n)), None
        yield
        if cls.group is not None and cls.group != dist.GroupMember.NON_GROUP_MEMBER:
            dist.destroy_process_group(cls.group)

    @pytest.fixture(autouse=True)
    def _member(self, _group):
        if dist.get_rank() not in self.ranks:
            assert dist.get_rank(self.group) == -1
            assert dist.all_reduce(tensor(np.ones(2), self.device), group=self.group) is None
            pytest.skip("not a member of the group")

    # ------------------------------------------------------------ helpers
    @property
    def me(self):
        return dist.get_rank()

    @property
    def n(self):
        return len(self.ranks)

    def t(self, array):
        return tensor(array, self.device)

    def finish(self, work, async_op):
        if async_op:
            assert isinstance(work, dist.Work)
            assert work.wait() is True
            assert work.is_completed()
        else:
            assert work is None

    # ------------------------------------------------------------ groups
    def test_ranks(self):
        assert dist.get_world_size(self.group) == self.n
        assert dist.get_rank(self.group) == self.ranks.index(self.me)
        assert dist.get_process_group_ranks(self.group or dist.group.WORLD) == self.ranks
        g = self.group or dist.group.WORLD
        assert dist.get_global_rank(g, dist.get_rank(self.group)) == self.me
        assert dist.get_group_rank(g, self.me) == dist.get_rank(self.group)

    # ------------------------------------------------------------ reductions
    @pytest.mark.parametrize("op", OPS)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_all_reduce(self, dtype, op):
        if op == "AVG" and "int" in dtype:
            with pytest.raises(RuntimeError, match="AVG"):
                dist.all_reduce(self.t(data(self.me, (3, 4), dtype)), op=dist.ReduceOp.AVG, group=self.group)
            return
        x = self.t(data(self.me, (3, 4), dtype))
        dist.all_reduce(x, op=getattr(dist.ReduceOp, op), group=self.group)
        ref = reduce_ref([data(r, (3, 4), dtype) for r in self.ranks], op)
        assert x.dtype == getattr(dtrain, dtype)
        np.testing.assert_allclose(host(x), ref, rtol=1e-3)

    @pytest.mark.parametrize("async_op", [False, True])
    def test_all_reduce_async_and_noncontiguous(self, async_op):
        base = data(self.me, (4, 6), "float64")
        x = self.t(base.copy())
        view = x.t()[1:5]  # a strided view: reduced in a contiguous buffer, then written back
        work = dist.all_reduce(view, group=self.group, async_op=async_op)
        self.finish(work, async_op)
        ref = base.copy()
        ref.T[1:5] = reduce_ref([data(r, (4, 6), "float64").T[1:5] for r in self.ranks], "SUM")
        np.testing.assert_array_equal(host(x), ref)
        if async_op:
            assert work.result()[0] is view

    @pytest.mark.parametrize("dtype,op", [("float64", "SUM"), ("float32", "AVG"), ("int64", "MAX")])
    def test_all_reduce_large_in_pieces(self, dtype, op):
        # over 8 MB an all_reduce goes in 4 MB pieces; this size leaves a short last piece
        shape = (3, (9 << 20) // np.dtype(dtype).itemsize // 3 + 7)
        x = self.t(data(self.me, shape, dtype))
        dist.all_reduce(x, op=getattr(dist.ReduceOp, op), group=self.group)
        np.testing.assert_allclose(host(x), reduce_ref([data(r, shape, dtype) for r in self.ranks], op), rtol=1e-6)

    def test_large_async_all_reduces_around_a_blocking_one(self):
        # large async calls in flight while a blocking one goes in pieces on the same communicator
        shapes = [(5 << 20) // 4 + 3, 17, (9 << 20) // 4, 1 << 10, (3 << 20) // 4 * 4 + 1]
        xs = [self.t(data(self.me, (n,), "float32", salt=i)) for i, n in enumerate(shapes)]
        works = []
        for i, x in enumerate(xs):
            works.append(dist.all_reduce(x, group=self.group, async_op=True))
            if i == 2:
                y = self.t(data(self.me, ((9 << 20) // 4,), "float32", salt="blocking"))
                dist.all_reduce(y, op=dist.ReduceOp.MAX, group=self.group)
                np.testing.assert_array_equal(
                    host(y), reduce_ref([data(r, ((9 << 20) // 4,), "float32", salt="blocking")
                                         for r in self.ranks], "MAX"))
        for w in reversed(works):
            w.wait()
        for i, (x, n) in enumerate(zip(xs, shapes)):
            np.testing.assert_array_equal(host(x), reduce_ref([data(r, (n,), "float32", salt=i)
                                                               for r in self.ranks], "SUM"))

    def test_all_reduce_bool(self):
        x = self.t(data(self.me, (8,), "int64") > 0)
        dist.all_reduce(x, group=self.group)
        np.testing.assert_array_equal(host(x), np.any([data(r, (8,), "int64") > 0 for r in self.ranks], 0))

    def test_many_async_in_flight(self):
        xs = [self.t(data(self.me, (5,), "float32", salt=i)) for i in range(20)]
        works = [dist.all_reduce(x, group=self.group, async_op=True) for x in xs]
        for w in works:
            w.wait()
        for i, x in enumerate(xs):
            ref = reduce_ref([data(r, (5,), "float32", salt=i) for r in self.ranks], "SUM")
            np.testing.assert_array_equal(host(x), ref)

    @pytest.mark.parametrize("op", ["SUM", "MAX", "AVG"])
    @pytest.mark.parametrize("dtype", ["float32", "int64"])
    def test_reduce(self, dtype, op):
        if op == "AVG" and dtype == "int64":
            return
        dst = self.ranks[-1]
        x = self.t(data(self.me, (2, 3), dtype))
        dist.reduce(x, dst=dst, op=getattr(dist.ReduceOp, op), group=self.group)
        if self.me == dst:
            np.testing.assert_allclose(host(x), reduce_ref([data(r, (2, 3), dtype) for r in self.ranks], op))

    @pytest.mark.parametrize("op", OPS)
    @pytest.mark.parametrize("async_op", [False, True])
    def test_reduce_scatter_tensor(self, op, async_op):
        out = self.t(np.zeros((2, 3), "float64"))
        inp = self.t(data(self.me, (2 * self.n, 3), "float64"))
        work = dist.reduce_scatter_tensor(out, inp, op=getattr(dist.ReduceOp, op), group=self.group,
                                          async_op=async_op)
        self.finish(work, async_op)
        i = self.ranks.index(self.me)
        ref = reduce_ref([data(r, (2 * self.n, 3), "float64") for r in self.ranks], op)[2 * i:2 * i + 2]
        np.testing.assert_allclose(host(out), ref)

    @pytest.mark.parametrize("dtype", ["float32", "int32"])
    def test_reduce_scatter_list(self, dtype):
        out = self.t(np.zeros(4, dtype))
        inputs = [self.t(data(self.me, (4,), dtype, salt=j)) for j in range(self.n)]
        dist.reduce_scatter(out, inputs, group=self.group)
        i = self.ranks.index(self.me)
        np.testing.assert_array_equal(host(out), reduce_ref([data(r, (4,), dtype, salt=i) for r in self.ranks], "SUM"))

    # ------------------------------------------------------------ data movement
    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("async_op", [False, True])
    def test_broadcast(self, dtype, async_op):
        src = self.ranks[-1]
        x = self.t(data(self.me, (3, 2), dtype))
        self.finish(dist.broadcast(x, src=src, group=self.group, async_op=async_op), async_op)
        np.testing.assert_array_equal(host(x), data(src, (3, 2), dtype))

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_all_gather(self, dtype):
        outs = [self.t(np.zeros((2, 2), dtype)) for _ in self.ranks]
        dist.all_gather(outs, self.t(data(self.me, (2, 2), dtype)), group=self.group)
        for o, r in zip(outs, self.ranks):
            np.testing.assert_array_equal(host(o), data(r, (2, 2), dtype))

    @pytest.mark.parametrize("async_op", [False, True])
    def test_all_gather_into_tensor(self, async_op):
        out = self.t(np.zeros((self.n * 2, 3), "float32"))
        work = dist.all_gather_into_tensor(out, self.t(data(self.me, (2, 3), "float32")), group=self.group,
                                           async_op=async_op)
        self.finish(work, async_op)
        np.testing.assert_array_equal(host(out), np.concatenate([data(r, (2, 3), "float32") for r in self.ranks]))
        stacked = self.t(np.zeros((self.n, 2, 3), "float32"))
        dist.all_gather_into_tensor(stacked, self.t(data(self.me, (2, 3), "float32")), group=self.group)
        np.testing.assert_array_equal(host(stacked), np.stack([data(r, (2, 3), "float32") for r in self.ranks]))

    @pytest.mark.parametrize("dtype", ["float64", "int64"])
    def test_gather(self, dtype):
        dst = self.ranks[0]
        outs = [self.t(np.zeros(3, dtype)) for _ in self.ranks] if self.me == dst else None
        dist.gather(self.t(data(self.me, (3,), dtype)), outs, dst=dst, group=self.group)
        if self.me == dst:
            for o, r in zip(outs, self.ranks):
                np.testing.assert_array_equal(host(o), data(r, (3,), dtype))

    @pytest.mark.parametrize("dtype", ["float32", "int32"])
    def test_scatter(self, dtype):
        src = self.ranks[-1]
        ins = [self.t(data(src, (2, 2), dtype, salt=j)) for j in range(self.n)] if self.me == src else None
        out = self.t(np.zeros((2, 2), dtype))
        dist.scatter(out, ins, src=src, group=self.group)
        np.testing.assert_array_equal(host(out), data(src, (2, 2), dtype, salt=self.ranks.index(self.me)))

    def test_all_to_all(self):
        i = self.ranks.index(self.me)
        # rank i sends j+1 elements to rank j, so every block has its own size
        ins = [self.t(data(self.me, (j + 1,), "float32", salt=f"to{j}")) for j in range(self.n)]
        outs = [self.t(np.zeros(i + 1, "float32")) for _ in range(self.n)]
        dist.all_to_all(outs, ins, group=self.group)
        for o, r in zip(outs, self.ranks):
            np.testing.assert_array_equal(host(o), data(r, (i + 1,), "float32", salt=f"to{i}"))

    @pytest.mark.parametrize("uneven", [False, True])
    def test_all_to_all_single(self, uneven):
        n, i = self.n, self.ranks.index(self.me)
        if uneven:  # rank i sends (i + j) % 3 + 1 rows to rank j
            in_splits = [(i + j) % 3 + 1 for j in range(n)]
            out_splits = [(j + i) % 3 + 1 for j in range(n)]
        else:
            in_splits = out_splits = [2] * n
        inp = self.t(data(self.me, (sum(in_splits), 2), "int64"))
        out = self.t(np.zeros((sum(out_splits), 2), "int64"))
        dist.all_to_all_single(out, inp, out_splits if uneven else None, in_splits if uneven else None,
                               group=self.group)
        blocks = []
        for j, r in enumerate(self.ranks):
            their_splits = [(j + k) % 3 + 1 for k in range(n)] if uneven else [2] * n
            start = sum(their_splits[:i])
            blocks.append(data(r, (sum(their_splits), 2), "int64")[start:start + their_splits[i]])
        np.testing.assert_array_equal(host(out), np.concatenate(blocks))

    def test_barrier(self):
        assert dist.barrier(group=self.group) is None
        w = dist.barrier(group=self.group, async_op=True)
        assert w.wait() is True

    # ------------------------------------------------------------ point to point
    @pytest.mark.mpi(min_size=2)
    @pytest.mark.parametrize("any_source", [False, True])
    def test_send_recv_ring(self, any_source):
        n, i = self.n, self.ranks.index(self.me)
        if n < 2:
            pytest.skip("needs two ranks in the group")
        nxt, prv = self.ranks[(i + 1) % n], self.ranks[(i - 1) % n]
        got = self.t(np.zeros(5, "float64"))
        if any_source and self.backend == "nccl":  # NCCL has no any-source receive (torch's backend refuses too)
            with pytest.raises(RuntimeError, match="recv from any source is not supported by NCCL"):
                dist.recv(got, None, group=self.group)
            return
        if i % 2 == 0:
            dist.send(self.t(data(self.me, (5,), "float64")), nxt, group=self.group)
            sender = dist.recv(got, None if any_source else prv, group=self.group)
        else:
            sender = dist.recv(got, None if any_source else prv, group=self.group)
            dist.send(self.t(data(self.me, (5,), "float64")), nxt, group=self.group)
        assert sender == prv
        np.testing.assert_array_equal(host(got), data(prv, (5,), "float64"))

    @pytest.mark.mpi(min_size=2)
    def test_batch_isend_irecv(self):
        n, i = self.n, self.ranks.index(self.me)
        if n < 2:
            pytest.skip("needs two ranks in the group")
        nxt, prv = self.ranks[(i + 1) % n], self.ranks[(i - 1) % n]
        got = self.t(np.zeros((2, 2), "float32"))
        ops = [dist.P2POp(dist.irecv, got, prv, group=self.group),
               dist.P2POp(dist.isend, self.t(data(self.me, (2, 2), "float32")), nxt, group=self.group)]
        for w in dist.batch_isend_irecv(ops):
            w.wait()
        np.testing.assert_array_equal(host(got), data(prv, (2, 2), "float32"))

    # ------------------------------------------------------------ objects
    def test_object_collectives(self):
        i = self.ranks.index(self.me)
        mine = {"rank": self.me, "payload": list(range(i * 3)), "fn": (lambda v: v + i)}
        gathered = [None] * self.n
        dist.all_gather_object(gathered, mine, group=self.group)
        assert [g["rank"] for g in gathered] == self.ranks
        assert [g["fn"](1) for g in gathered] == [k + 1 for k in range(self.n)]  # closures travel (cloudpickle)

        objs = [("hello", self.ranks[-1]), {"x": 1.5}] if self.me == self.ranks[-1] else [None, None]
        dist.broadcast_object_list(objs, src=self.ranks[-1], group=self.group)
        assert objs == [("hello", self.ranks[-1]), {"x": 1.5}]

        dst = self.ranks[0]
        into = [None] * self.n if self.me == dst else None
        dist.gather_object(("g", self.me), into, dst=dst, group=self.group)
        if self.me == dst:
            assert into == [("g", r) for r in self.ranks]

        out = [None]
        src = self.ranks[-1]
        dist.scatter_object_list(out, ["s" * (k + 1) for k in range(self.n)] if self.me == src else None,
                                 src=src, group=self.group)
        assert out == ["s" * (i + 1)]

    @pytest.mark.mpi(min_size=2)
    def test_send_recv_object_list(self):
        if self.n < 2:
            pytest.skip("needs two ranks in the group")
        a, b = self.ranks[0], self.ranks[1]
        if self.me == a:
            dist.send_object_list([{"k": [1, 2]}, "v"], dst=b, group=self.group)
        elif self.me == b:
            got = [None, None]
            assert dist.recv_object_list(got, src=None, group=self.group) == a
            assert got == [{"k": [1, 2]}, "v"]

    # ------------------------------------------------------------ argument errors
    def test_wrong_sizes_raise(self):
        with pytest.raises(RuntimeError, match=f"list of {self.n} tensors"):
            dist.all_gather([self.t(np.zeros(2))] * (self.n + 1), self.t(np.zeros(2)), group=self.group)
        with pytest.raises(RuntimeError, match=r"shape \[3\]"):
            dist.all_gather_into_tensor(self.t(np.zeros(3 * self.n + 1)), self.t(np.zeros(3)), group=self.group)
        with pytest.raises(RuntimeError, match="reduce_scatter_tensor"):
            dist.reduce_scatter_tensor(self.t(np.zeros(2)), self.t(np.zeros(2 * self.n + 1)), group=self.group)
        with pytest.raises(TypeError, match="Expected parameter `tensor` of type torch.Tensor"):
            dist.all_reduce(np.zeros(3), group=self.group)
        if self.me == self.ranks[0]:
            with pytest.raises(RuntimeError, match="scatter"):
                dist.scatter(self.t(np.zeros(2)), [self.t(np.zeros(3))] * self.n, src=self.me, group=self.group)
        with pytest.raises(ValueError, match="not part of group"):
            dist.broadcast(self.t(np.zeros(2)), src=dist.get_world_size() + 5, group=self.group)


class TestMPI(_CollectiveCases):
    pass


class TestMPISubgroup(_CollectiveCases):
    subgroup = True


@pytest.mark.cuda
class TestMPICupy(_CollectiveCases):
    """CuPy arrays over MPI, staged through the host."""
    device = "cuda"


@pytest.mark.cuda
class TestNCCL(_CollectiveCases):
    backend = "nccl"
    device = "cuda"
