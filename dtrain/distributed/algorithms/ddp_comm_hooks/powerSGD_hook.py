"""PowerSGD gradient compression (Vogels et al., https://arxiv.org/abs/1905.13727) as DDP communication hooks.

Each gradient matrix M (n x m) is approximated as P Q^T with P (n x r) and Q (m x r): P = M Q is summed
across ranks and orthogonalised, Q = M^T P is summed, and M becomes P Q^T / world. Rank r sends (n + m) r
numbers instead of n m. Error feedback adds what compression lost last time to this step's gradient; warm
start begins each step's power iteration from the previous step's Q.

The initial Q is drawn from dtrain's generator, seeded from `state.rng` as torch seeds its own: the same on
every rank, but not torch's numbers."""
import logging
import math

import numpy as np

from .... import distributed as dist
from ...._backend import xp_of
from ...._tensor import _wrap
from ....futures import Future
from . import default_hooks as default

__all__ = ["PowerSGDState", "powerSGD_hook", "batched_powerSGD_hook"]

logger = logging.getLogger(__name__)


def _acc_dtype(a):
    """The dtype sums and products of `a` accumulate in: float32 for half precision, as torch's CPU kernels."""
    return np.float32 if a.dtype.itemsize < 4 else a.dtype


def _matmul(a, b, out):
    """out = a @ b, accumulated in float32 for half precision."""
    acc, xp = _acc_dtype(out), xp_of(out)
    if acc == out.dtype:
        xp.matmul(a, b, out=out)
    else:
        out[...] = xp.matmul(a.astype(acc), b.astype(acc))


def _orthogonalize(matrices, epsilon=0):
    """Orthonormalise the columns of each matrix of a batch (b, n, r), in place: Gram-Schmidt for rank <= 2
    and half precision, QR otherwise."""
    if not (matrices.ndim == 3 and matrices.shape[2] <= matrices.shape[1]):
        raise AssertionError(f"expected a batch of tall matrices, got shape {list(matrices.shape)}")
    if matrices.shape[2] <= 2 or matrices.dtype.itemsize < 4:
        _orthogonalize_gram_schmidt(matrices, epsilon)
    else:
        matrices[...] = xp_of(matrices).linalg.qr(matrices, mode="reduced")[0]


def _orthogonalize_gram_schmidt(matrices, epsilon=0):
    """Gram-Schmidt over the columns; with epsilon 0 the same as QR's Q up to rounding. A zero column
    becomes NaN unless epsilon > 0, as in torch."""
    xp, acc = xp_of(matrices), _acc_dtype(matrices)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(matrices.shape[2]):
            col = matrices[:, :, i:i + 1]
            c = col.astype(acc, copy=False)
            norm = xp.sqrt(xp.sum(c * c, axis=1, keepdims=True)).astype(col.dtype)
            col /= norm if epsilon == 0 else norm + epsilon
            if i + 1 < matrices.shape[2]:
                rest = matrices[:, :, i + 1:]
                dots = xp.sum(col * rest, axis=1, keepdims=True, dtype=acc).astype(col.dtype)
                rest -= dots * col


def _should_compress(num_rows, num_cols, matrix_approximation_rank, min_compression_rate):
    """(worth compressing, elements before, elements after) for an n x m matrix at the given rank."""
    uncompressed_size = num_rows * num_cols
    compressed_size = (num_rows + num_cols) * matrix_approximation_rank
    return compressed_size * min_compression_rate < uncompressed_size, uncompressed_size, compressed_size


def _report_compression_stats(bucket, state):
    if bucket.is_last() and state.iter >= state.next_stats_report:
        stats = state.compression_stats()
        logger.info("Compression stats: iter %s, total before compression %s, total after compression %s, "
                    "rate %s", state.iter, stats[1], stats[2], stats[0])
        state.next_stats_report = state.iter + state.compression_stats_logging_frequency


class PowerSGDState:
    """The hyperparameters and the per-bucket state (errors, P and Q memories, iteration) of PowerSGD.

    `matrix_approximation_rank` and `start_powerSGD_iter` are the ones to tune. Vanilla all-reduce runs for
    the first `start_powerSGD_iter` iterations; a matrix is compressed only when
    (n + m) * rank * min_compression_rate < n * m. `batch_tensors_with_same_shape` compresses same-shaped
    gradients of a bucket in one batched product."""

    __slots__ = ["process_group", "matrix_approximation_rank", "start_powerSGD_iter", "min_compression_rate",
                 "orthogonalization_epsilon", "use_error_feedback", "warm_start", "batch_tensors_with_same_shape",
                 "rng", "error_dict", "p_memory_dict", "q_memory_dict", "iter", "total_numel_before_compression",
                 "total_numel_after_compression", "compression_stats_logging_frequency", "next_stats_report"]

    def __init__(self, process_group, matrix_approximation_rank=1, start_powerSGD_iter=1_000,
                 min_compression_rate=2, use_error_feedback=True, warm_start=True, orthogonalization_epsilon=0,
                 random_seed=0, compression_stats_logging_frequency=10_000,
                 batch_tensors_with_same_shape: bool = False):
        logger.info("PowerSGD config: matrix_approximation_rank = %s; start_powerSGD_iter = %s; "
                    "min_compression_rate = %s; orthogonalization_epsilon = %s; use_error_feedback = %s; "
                    "warm_start = %s; random_seed = %s; compression_stats_logging_frequency = %s; "
                    "batch_tensors_with_same_shape = %s", matrix_approximation_rank, start_powerSGD_iter,
                    min_compression_rate, orthogonalization_epsilon, use_error_feedback, warm_start, random_seed,
                    compression_stats_logging_frequency, batch_tensors_with_same_shape)
        self.process_group = process_group
        self.matrix_approximation_rank = matrix_approximation_rank
        # error feedback and warm start remember tensors per bucket: torch rebuilds its buckets after the
        # first iteration, so these begin only after it (dtrain keeps its buckets, but accepts what torch does)
        if (use_error_feedback or warm_start) and start_powerSGD_iter <= 1:
            raise ValueError("Expect `start_powerSGD_iter` > 1 if `use_error_feedback` or `warm_start` is enabled, "
                             "because PowerSGD can only be applied after the first two iterations in DDP.")
        self.start_powerSGD_iter = start_powerSGD_iter
        self.min_compression_rate = min_compression_rate
        self.use_error_feedback = use_error_feedback
        self.warm_start = warm_start
        self.orthogonalization_epsilon = orthogonalization_epsilon
        # seeds for the random Qs: a new one per use, the same sequence on every rank
        self.rng = np.random.RandomState(random_seed)
        self.error_dict = {}
        self.p_memory_dict = {}
        self.q_memory_dict = {}
        self.iter = 0
        self.total_numel_before_compression = 0
        self.total_numel_after_compression = 0
        self.compression_stats_logging_frequency = max(1, compression_stats_logging_frequency)
        self.next_stats_report = 0
        self.batch_tensors_with_same_shape = batch_tensors_with_same_shape

    def __getstate__(self):
        """Every slot but `process_group`, which cannot be pickled."""
        logger.warning("NOTE: Process group is not serializable and excluded from a saved state.")
        return {slot: getattr(self, slot) for slot in self.__slots__ if slot != "process_group"}

    def __setstate__(self, state):
        """Restore the slots; `process_group` becomes the default group."""
        self.process_group = dist.group.WORLD
        logger.warning("NOTE: Process group will be set to a default group (i.e. the world size). If a different "
                       "group is desired, please set `self.process_group` after PowerSGD state is loaded.")
        for slot, value in state.items():
            setattr(self, slot, value)

    def maybe_increase_iter(self, bucket):
        """Count an iteration when the last bucket (index 0) of a backward pass goes through the hook."""
        if bucket.is_last():
            self.iter += 1
        if self.iter == self.start_powerSGD_iter:
            logger.info("Start to apply PowerSGD after %s iterations.", self.iter)

    def compression_stats(self):
        """(compress_rate, numel_before_compression, numel_after_compression) accumulated so far."""
        before, after = self.total_numel_before_compression, self.total_numel_after_compression
        return (before / after if after > 0 else 0), before, after


def _group(state):
    return state.process_group if state.process_group is not None else dist.group.WORLD


def _all_reduce(array, device, group):
    """Start the sum of `array` across the group; a function that waits for it."""
    work = dist.all_reduce(_wrap(array, device), group=group, async_op=True)
    return work.wait if work is not None else (lambda: None)


def _random_fill(state, qs, device, dtype):
    """Fill the Qs with standard normals from a generator seeded by `state.rng` (the same on every rank)."""
    from .... import Generator, randn
    gen = Generator()
    gen.manual_seed(int(state.rng.randint(1_000_000_000)))
    for q in qs:
        q[...] = device.xp.asarray(randn(*q.shape, generator=gen, dtype=dtype)._data)


def _start_error_feedback(state, index, data, device):
    """Add the bucket's remembered compression error to `data`; a copy of the result, for the next error."""
    if index in state.error_dict:
        data += state.error_dict[index]._data
    else:
        logger.info("A zero tensor of length %s that represents local error is created.", data.size)
        state.error_dict[index] = _wrap(device.xp.zeros(data.size, data.dtype), device)
    return data.copy()


def _begin(state, bucket):
    """(group, world size, the bucket's buffer, a Future or None): the Future of a vanilla all-reduce for the
    first `state.start_powerSGD_iter` iterations, after which it is None and the hook compresses."""
    group = _group(state)
    input_tensor = bucket.buffer()
    vanilla = None
    if state.iter < state.start_powerSGD_iter:
        state.maybe_increase_iter(bucket)
        vanilla = default._allreduce_fut(group, input_tensor)
    return group, dist.get_world_size(group), input_tensor, vanilla


def powerSGD_hook(state: PowerSGDState, bucket: dist.GradBucket) -> Future:
    """Compress each gradient matrix of the bucket to rank `state.matrix_approximation_rank` (PowerSGD).

    Vectors, and matrices too small to gain `min_compression_rate`, are all-reduced as they are, in one
    message. The matrices: P = M Q (Q random and orthogonalised, or the last step's with warm start) is
    summed and orthogonalised, Q = M^T P summed, M = P Q^T / world. All Ps go in one message, all Qs in
    another. Vanilla all-reduce for the first `state.start_powerSGD_iter` iterations."""
    group, world, input_tensor, vanilla = _begin(state, bucket)
    if vanilla is not None:
        return vanilla
    device, dtype, data = input_tensor._device, input_tensor.dtype, input_tensor._data
    xp = device.xp
    index = bucket.index()
    data_cp = _start_error_feedback(state, index, data, device) if state.use_error_feedback else None

    # I. split the gradients: matrices worth compressing, and the rest
    to_compress, uncompressed = [], []
    total_ps = total_qs = 0
    for grad in bucket.gradients():  # views of the buffer, in its order
        tensor = grad._data
        matrix = tensor.reshape(tensor.shape[0], -1)
        n, m = matrix.shape
        rank = min(n, m, state.matrix_approximation_rank)
        worth, before, after = _should_compress(n, m, rank, state.min_compression_rate)
        state.total_numel_before_compression += before
        if worth:
            to_compress.append(matrix)
            total_ps += n * rank
            total_qs += m * rank
            state.total_numel_after_compression += after
        else:
            uncompressed.append(tensor)
            state.total_numel_after_compression += before
    _report_compression_stats(bucket, state)

    # II. the rest goes in one contiguous message
    rest = xp.concatenate([t.reshape(-1) for t in uncompressed]) if uncompressed else xp.zeros(0, data.dtype)

    # III. P and Q memories: one contiguous array each per bucket, kept across steps for warm start
    need_randomize_qs = not state.warm_start or index not in state.p_memory_dict
    if need_randomize_qs:
        if state.warm_start:
            logger.info("Allocating contiguous memory of length %s for Ps, and of length %s for Qs, respectively.",
                        total_ps, total_qs)
        state.p_memory_dict[index] = _wrap(xp.empty(total_ps, data.dtype), device)
        state.q_memory_dict[index] = _wrap(xp.empty(total_qs, data.dtype), device)
    p_mem, q_mem = state.p_memory_dict[index]._data, state.q_memory_dict[index]._data

    by_shape = {}
    for matrix in to_compress:
        by_shape.setdefault(matrix.shape, []).append(matrix)
    batches, stacked = [], []  # stacked: (batch, the bucket views it was copied from)
    for same in by_shape.values():
        if state.batch_tensors_with_same_shape and len(same) > 1:
            batch = xp.stack(same)
            stacked.append((batch, same))
            batches.append(batch)
        else:
            batches += [t[None] for t in same]
    ps, qs = [], []
    po = qo = 0
    for batch in batches:
        b, n, m = batch.shape
        rank = min(n, m, state.matrix_approximation_rank)
        ps.append(p_mem[po:po + b * n * rank].reshape(b, n, rank))
        qs.append(q_mem[qo:qo + b * m * rank].reshape(b, m, rank))
        po += b * n * rank
        qo += b * m * rank

    if need_randomize_qs:
        _random_fill(state, qs, device, dtype)
    for q in qs:
        _orthogonalize(q, state.orthogonalization_epsilon)
    for batch, q, p in zip(batches, qs, ps):
        _matmul(batch, q, p)
    # torch starts the Ps' sum once the rest's is done; starting both now only adds overlap
    wait_rest = _all_reduce(rest, device, group)
    wait_ps = _all_reduce(p_mem, device, group)

    def finish():
        wait_rest()
        rest[...] /= world
        o = 0
        for t in uncompressed:
            t[...] = rest[o:o + t.size].reshape(t.shape)
            o += t.size
        wait_ps()
        for p in ps:
            _orthogonalize(p, state.orthogonalization_epsilon)
        for batch, p, q in zip(batches, ps, qs):
            _matmul(batch.transpose(0, 2, 1), p, q)
        _all_reduce(q_mem, device, group)()
        q_mem[...] /= world
        for p, q, batch in zip(ps, qs, batches):
            _matmul(p, q.transpose(0, 2, 1), batch)
        for batch, views in stacked:
            for view, decompressed in zip(views, batch):
                view[...] = decompressed
        if data_cp is not None:
            state.error_dict[index] = _wrap(data_cp - data, device)
        if not state.warm_start:
            state.p_memory_dict.clear()
            state.q_memory_dict.clear()
        state.maybe_increase_iter(bucket)
        return input_tensor
    return default._LazyFuture(finish)


def batched_powerSGD_hook(state: PowerSGDState, bucket: dist.GradBucket) -> Future:
    """PowerSGD over the whole bucket at once: the flat gradient, zero-padded to a square, is one matrix.

    Faster than `powerSGD_hook`, and usually much less accurate unless the rank is 1. Vanilla all-reduce
    for the first `state.start_powerSGD_iter` iterations. (torch 2.13's version trips its own shape assertion
    on the first compressed step; this one treats the square as a batch of one and runs.)"""
    group, world, input_tensor, vanilla = _begin(state, bucket)
    if vanilla is not None:
        return vanilla
    device, dtype, data = input_tensor._device, input_tensor.dtype, input_tensor._data
    xp = device.xp
    total_length = data.size
    state.total_numel_before_compression += total_length
    side = math.ceil(math.sqrt(total_length))
    state.total_numel_after_compression += side * state.matrix_approximation_rank * 2
    # torch grows the bucket tensor in place; dtrain's buffer is a slice of DDP's flat array, so the padded
    # square is a copy when padding is needed
    square = data
    if side * side != total_length:
        square = xp.zeros(side * side, data.dtype)
        square[:total_length] = data
    _report_compression_stats(bucket, state)

    index = bucket.index()
    square_cp = _start_error_feedback(state, index, square, device) if state.use_error_feedback else None
    matrix = square.reshape(side, side)

    rank = state.matrix_approximation_rank
    if not state.warm_start or index not in state.p_memory_dict:
        if state.warm_start:
            logger.info("Initializing low-rank tensors P and Q, each of which has a shape of %s x %s.", side, rank)
        state.p_memory_dict[index] = _wrap(xp.empty((side, rank), data.dtype), device)
        state.q_memory_dict[index] = _wrap(xp.empty((side, rank), data.dtype), device)
        _random_fill(state, [state.q_memory_dict[index]._data], device, dtype)
    p, q = state.p_memory_dict[index]._data, state.q_memory_dict[index]._data
    _orthogonalize(q[None])
    _matmul(matrix, q, p)
    wait_p = _all_reduce(p, device, group)

    def finish():
        wait_p()
        _orthogonalize(p[None])
        _matmul(matrix.T, p, q)
        _all_reduce(q, device, group)()
        q[...] /= world
        _matmul(p, q.T, matrix)
        if square_cp is not None:
            state.error_dict[index] = _wrap(square_cp - square, device)
        if not state.warm_start:
            state.p_memory_dict.clear()
            state.q_memory_dict.clear()
        if square is not data:
            data[...] = square[:total_length]
        state.maybe_increase_iter(bucket)
        return input_tensor
    return default._LazyFuture(finish)
