"""Autocast's dispatch: which ops change precision inside `torch.autocast`, per device, and the one wrapper
that does it.

Each op that autocast treats is defined with `@autocast_op("name")` (torch's op name). When a thread has
autocast enabled for the device of the op's tensors, the wrapper casts the floating-point tensor arguments
(float64 ones are left alone, as in torch) by the op's policy on that device:

- "lower": to the region's dtype (bfloat16 or float16): the products, where the lower precision pays;
- "fp32": to float32: ops whose range or accuracy suffers in 16 bits (losses, exp/log, norms, ...);
- "fp32_dtype": ops with a `dtype=` argument (sum, softmax, cumsum, ...) get `dtype=float32` unless the
  caller gave one, so they accumulate and return in float32 (torch's "fp32_set_opt_dtype");
- "promote": to the widest floating dtype among the arguments (cat, stack, index_put, ...);

and then runs the op with autocast switched off inside it, as torch runs an op's kernel below its autocast
layer. A decorated op that a device does not list runs unchanged there, but still with autocast off inside:
several of dtrain's ops are composed of listed ones (dot and mv call matmul) where torch's are one kernel,
and their results must keep torch's dtypes. Casts are ordinary differentiable ops, so backward runs through
them and a float32 leaf gets a float32 gradient.

The lists are torch 2.13's (aten/src/ATen/autocast_mode.cpp), restricted to the ops dtrain has."""
import functools
import threading

from .. import _dtype

# ---------------------------------------------------------------------------------------------- the lists
_CPU_LOWER = ("conv1d conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d conv_transpose3d bmm mm "
              "linalg_vecdot baddbmm addmm addbmm linear matmul prelu scaled_dot_product_attention "
              "_addmm_activation einsum").split()
# NOTE: einsum is not in torch's CPU list, but torch's einsum is composed of bmm, so its result is the lower
# dtype all the same; dtrain's einsum is one op, so it is listed here to keep torch's dtype.
_CPU_FP32 = ("avg_pool3d binary_cross_entropy grid_sampler polar prod quantile nanquantile stft cdist trace "
             "view_as_complex cholesky cholesky_inverse cholesky_solve inverse lu_solve orgqr ormqr pinverse "
             "max_pool3d max_unpool2d max_unpool3d adaptive_avg_pool3d reflection_pad1d reflection_pad2d "
             "replication_pad1d replication_pad2d replication_pad3d mse_loss cosine_embedding_loss nll_loss "
             "nll_loss2d hinge_embedding_loss poisson_nll_loss smooth_l1_loss cross_entropy l1_loss huber_loss "
             "margin_ranking_loss soft_margin_loss triplet_margin_loss multi_margin_loss ctc_loss kl_div "
             "multilabel_margin_loss binary_cross_entropy_with_logits fft_fft fft_ifft fft_fft2 fft_ifft2 "
             "fft_fftn fft_ifftn fft_rfft fft_irfft fft_rfft2 fft_irfft2 fft_rfftn fft_irfftn fft_hfft fft_ihfft "
             "linalg_cond linalg_matrix_rank linalg_solve linalg_cholesky linalg_svdvals linalg_eigvals "
             "linalg_eigvalsh linalg_inv linalg_householder_product linalg_tensorinv linalg_tensorsolve geqrf "
             "qr svd triangular_solve fractional_max_pool2d fractional_max_pool3d adaptive_max_pool3d "
             "linalg_qr linalg_cholesky_ex linalg_svd linalg_eig linalg_eigh linalg_lstsq linalg_inv_ex").split()
_CPU_PROMOTE = "stack cat index_copy".split()

_CUDA_LOWER = ("_convolution conv1d conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d conv_transpose3d "
               "convolution prelu addmm addmv addr matmul einsum mm mv linalg_vecdot linear addbmm baddbmm bmm "
               "chain_matmul linalg_multi_dot lstm_cell gru_cell rnn_tanh_cell rnn_relu_cell "
               "scaled_dot_product_attention").split()
_CUDA_FP32 = ("acos asin cosh erfinv exp expm1 log log10 log2 log1p reciprocal rsqrt sinh tan pow softplus "
              "layer_norm group_norm rms_norm frobenius_norm nuclear_norm cosine_similarity poisson_nll_loss "
              "cosine_embedding_loss nll_loss nll_loss2d hinge_embedding_loss kl_div l1_loss smooth_l1_loss "
              "huber_loss mse_loss margin_ranking_loss multilabel_margin_loss soft_margin_loss "
              "triplet_margin_loss multi_margin_loss binary_cross_entropy_with_logits dist pdist cdist renorm "
              "logsumexp upsample_nearest1d upsample_nearest2d upsample_nearest3d upsample_linear1d "
              "upsample_bilinear2d upsample_trilinear3d upsample_bicubic2d interpolate grid_sampler "
              "fft_fft fft_ifft fft_fft2 fft_ifft2 fft_fftn fft_ifftn fft_rfft fft_irfft fft_rfft2 fft_irfft2 "
              "fft_rfftn fft_irfftn fft_hfft fft_ihfft").split()
# NOTE: grid_sampler and the fft ops are not in torch's CUDA fp32 list: CUDA has float16 kernels for them.
# dtrain has none (NumPy's and CuPy's FFTs have no float16 or bfloat16), so they run in float32 here.
_CUDA_FP32_DTYPE = "prod softmax log_softmax cumprod cumsum linalg_vector_norm linalg_matrix_norm sum norm".split()
_CUDA_PROMOTE = ("addcdiv addcmul atan2 bilinear cross dot vdot index_put tensordot scatter_add cat "
                 "stack").split()
_CUDA_BANNED = ("binary_cross_entropy",)

POLICIES = {
    "cpu": {**{n: "lower" for n in _CPU_LOWER}, **{n: "fp32" for n in _CPU_FP32},
            **{n: "promote" for n in _CPU_PROMOTE}},
    "cuda": {**{n: "lower" for n in _CUDA_LOWER}, **{n: "fp32" for n in _CUDA_FP32},
             **{n: "fp32_dtype" for n in _CUDA_FP32_DTYPE}, **{n: "promote" for n in _CUDA_PROMOTE},
             **{n: "banned" for n in _CUDA_BANNED}},
}
# ops that dtrain composes from listed ones where torch has one kernel (adaptive_avg_pool2d is two matmuls
# here): listed nowhere, but wrapped all the same so that autocast stays off inside them
for _name in ("adaptive_avg_pool2d", "bilinear", "tensordot", "dot", "vdot", "mv", "addmv", "addr", "cross",
              "linalg_solve", "linalg_inv", "cdist", "dist", "chain_matmul", "linalg_multi_dot"):
    for _table in POLICIES.values():
        _table.setdefault(_name, "native")

# CUDA's grid_sampler promotes (its kernels take float16); dtrain's has no 16-bit path, see the NOTE above
POLICIES["cuda"]["grid_sampler"] = "fp32"

# the ops of the lists above that no dtrain function carries, and why
ABSENT = {
    "_addmm_activation": "an internal fusion of torch's (addmm + GELU) with no public name",
    "conv_tbc": "dtrain has no torch.conv_tbc (nor the top-level torch.conv1d family)",
    "_convolution": "torch's internal entry of every convolution; dtrain's conv functions are listed by name",
    "convolution": "as _convolution",
    "nll_loss2d": "dtrain's nll_loss takes the 2-D case itself, under the same policy (nll_loss)",
    "frobenius_norm": "reached through norm('fro'), listed as norm",
    "nuclear_norm": "reached through norm('nuc'), listed as norm",
    **{f"upsample_{m}": "reached through interpolate, listed as interpolate"
       for m in ("nearest1d", "nearest2d", "nearest3d", "linear1d", "bilinear2d", "trilinear3d", "bicubic2d")},
}

DEFAULT_DTYPES = {"cpu": _dtype.bfloat16, "cuda": _dtype.float16}


# ---------------------------------------------------------------------------------------------- the state
class _State(threading.local):
    """Autocast's per-thread state, as torch keeps it (a new thread starts with autocast off)."""

    def __init__(self):
        self.enabled = {"cpu": False, "cuda": False}
        self.dtype = dict(DEFAULT_DTYPES)
        self.cache_enabled = True
        self.nesting = 0
        self.cache = {}  # id(float32 leaf) -> (leaf, its cast): casts of parameters, reused within a region
        self.active = False  # some device enabled, and not inside an autocast op: the wrappers' one test

    def refresh(self):
        self.active = self.enabled["cpu"] or self.enabled["cuda"]


state = _State()


def _device_type(d):
    if d not in state.enabled:
        raise RuntimeError(f"unsupported autocast device_type '{d}'")
    return d


# ---------------------------------------------------------------------------------------------- the casts
def _eligible(t, dev):
    # floating point on the region's device; float64 is never cast (torch's is_eligible)
    return t._device.type == dev and t._data.dtype.kind in "fV" and t._data.dtype.itemsize < 8


def _cast(t, dt):
    from .._ops.conversion import to_device_dtype
    if t._data.dtype == dt.np:
        return t
    if (state.cache_enabled and t._requires_grad and t.grad_fn is None and t._base is None
            and t._data.dtype.itemsize == 4 and dt is not _dtype.float32):
        # a parameter used by several ops of the region (a weight shared across time steps, say) is cast
        # once; the cache holds the leaf too, so its id cannot be reused while the entry lives
        hit = state.cache.get(id(t))
        if hit is not None and hit[1]._data.dtype == dt.np:
            return hit[1]
        c = to_device_dtype(t, None, dt, False)
        state.cache[id(t)] = (t, c)
        return c
    return to_device_dtype(t, None, dt, False)


def _map(args, fn):
    from .._tensor import Tensor
    out = []
    for a in args:
        if isinstance(a, Tensor):
            a = fn(a)
        elif isinstance(a, (list, tuple)) and a and any(isinstance(x, Tensor) for x in a):
            a = type(a)(fn(x) if isinstance(x, Tensor) else x for x in a)
        out.append(a)
    return out


def _tensors(args, kwargs):
    from .._tensor import Tensor
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from (x for x in a if isinstance(x, Tensor))


def _run(fn, name, policies, args, kwargs, composite=False):
    first = next(_tensors(args, kwargs), None)
    if first is None:
        return fn(*args, **kwargs)
    dev = first._device.type
    policy = policies.get(dev)
    if not state.enabled.get(dev, False) or (policy is None and composite):
        return fn(*args, **kwargs)
    if policy == "banned":
        raise RuntimeError(
            f"torch.nn.functional.{name} and torch.nn.{name.title().replace('_', '')}Loss are unsafe to autocast.\n"
            "Many models use a sigmoid layer right before the binary cross entropy layer.\n"
            "In this case, combine the two layers using torch.nn.functional.binary_cross_entropy_with_logits\n"
            "or torch.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are\n"
            "safe to autocast.")
    if kwargs.get("out") is not None:
        policy = None  # out= variants have no autocast kernel in torch: they run in their inputs' dtypes
    if policy is not None and policy != "native":
        args, kwargs = _cast_args(policy, dev, args, kwargs)
    state.active = False  # the op's own inner ops run as torch's kernels do: below autocast
    try:
        return fn(*args, **kwargs)
    finally:
        state.refresh()


def target_dtype(policy, region_dtype, dtypes):
    """The dtype that `policy` casts eligible tensors to, given the region's dtype and the eligible tensors'
    dtypes in argument order; None where the tensors stay as they are."""
    if policy == "lower":
        return region_dtype
    if policy in ("fp32", "fp32_dtype"):
        return _dtype.float32 if policy == "fp32" or dtypes else None
    if policy == "promote":  # the widest eligible dtype, starting from the region's
        dt = region_dtype
        for d in dtypes:
            dt = _dtype.promote_types(dt, d)
        return dt
    return None


def _cast_args(policy, dev, args, kwargs):
    eligible = [t.dtype for t in _tensors(args, kwargs) if _eligible(t, dev)]
    if policy == "fp32_dtype":
        # only an eligible first tensor asks for float32, and a dtype the caller gave wins
        first = next(_tensors(args, kwargs))
        if kwargs.get("dtype") is None and _eligible(first, dev):
            kwargs = dict(kwargs, dtype=_dtype.float32)
        return args, kwargs
    if policy == "promote":
        for d in eligible:
            if d is not _dtype.float32 and d is not state.dtype[dev]:
                # torch's message: a float16 tensor in a bfloat16 region (or the reverse) has no promotion rule
                raise RuntimeError("Unexpected floating ScalarType in at::autocast::prioritize")
    dt = target_dtype(policy, state.dtype[dev], eligible)

    def cast(t):
        return _cast(t, dt) if _eligible(t, dev) else t
    return _map(args, cast), {k: (_map([v], cast)[0]) for k, v in kwargs.items()}


def autocast_op(name, composite=False):
    """Decorate the function that implements torch's op `name` (a torch function, Tensor method or
    nn.functional function) so that autocast regions apply their per-device policy to it. With `composite`,
    a device that does not list the op runs it as its parts run (autocast stays on inside), as torch does
    with ops it composes of others (the RNN cells on the CPU)."""
    policies = {dev: table.get(name) for dev, table in POLICIES.items()}

    def deco(fn):
        if not any(policies.values()):
            return fn  # listed nowhere: nothing to do, not even a test

        @functools.wraps(fn)
        def op(*args, **kwargs):
            if not state.active:  # the one test every call pays outside autocast
                return fn(*args, **kwargs)
            return _run(fn, name, policies, args, kwargs, composite)
        op.__wrapped__ = fn
        op._autocast_name = name  # what the tests check the lists against
        return op
    return deco
