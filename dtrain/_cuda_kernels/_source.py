"""The CUDA C sources of the fused kernels, each complete on its own: `source(name, dtype)` is what NVRTC compiles.

Every source starts with the same header, instantiated for one dtype: `T` is the element type (float or double)
and `acc_t` the type the kernel computes and accumulates in (float for float32, double for float64: torch's
opmath). Rows are the last dim of a C-contiguous (rows, C) array; a row kernel runs one block per row (a
grid-stride loop over rows), its threads striding over the row's C values and combining partial sums and maxima
with warp shuffles and one shared-memory step (`block_sum`, `block_max`). Elementwise kernels are grid-stride
loops over n values. Pointer arguments that an option leaves unused (no weight, no bias, no amsgrad) are given
some other array of the right type and never read: CuPy passes no null pointers.
"""
import numpy as np

_HEADER = r"""
typedef %(T)s T;
typedef %(ACC)s acc_t;

__device__ __forceinline__ float op_exp(float v) { return expf(v); }
__device__ __forceinline__ double op_exp(double v) { return exp(v); }
__device__ __forceinline__ float op_log(float v) { return logf(v); }
__device__ __forceinline__ double op_log(double v) { return log(v); }
__device__ __forceinline__ float op_sqrt(float v) { return sqrtf(v); }
__device__ __forceinline__ double op_sqrt(double v) { return sqrt(v); }
__device__ __forceinline__ float op_rsqrt(float v) { return rsqrtf(v); }
__device__ __forceinline__ double op_rsqrt(double v) { return rsqrt(v); }
__device__ __forceinline__ float op_erf(float v) { return erff(v); }
__device__ __forceinline__ double op_erf(double v) { return erf(v); }
__device__ __forceinline__ float op_tanh(float v) { return tanhf(v); }
__device__ __forceinline__ double op_tanh(double v) { return tanh(v); }
__device__ __forceinline__ float op_fmax(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double op_fmax(double a, double b) { return fmax(a, b); }

// -inf in acc_t (no INFINITY macro without the host headers)
__device__ __forceinline__ acc_t neg_inf() { return (acc_t)(-__int_as_float(0x7f800000)); }

__device__ __forceinline__ acc_t warp_sum(acc_t v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ acc_t warp_max(acc_t v) {
    for (int o = 16; o > 0; o >>= 1) v = op_fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// The sum over the block (blockDim.x a multiple of 32, at most 1024), answered to every thread; `sh` holds 32
// values. The first barrier lets the block reuse `sh` right after a previous reduction.
__device__ __forceinline__ acc_t block_sum(acc_t v, acc_t* sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    return warp_sum(lane < (int)(blockDim.x >> 5) ? sh[lane] : (acc_t)0);
}

__device__ __forceinline__ acc_t block_max(acc_t v, acc_t* sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    return warp_max(lane < (int)(blockDim.x >> 5) ? sh[lane] : neg_inf());
}

// out[j] = log_softmax(in[j]) (take_log) or softmax(in[j]) over the row's C values, max subtracted first
__device__ __forceinline__ void softmax_row(const T* in, T* out, int C, int take_log, acc_t* sh) {
    acc_t m = neg_inf();
    for (int j = threadIdx.x; j < C; j += blockDim.x) m = op_fmax(m, (acc_t)in[j]);
    m = block_max(m, sh);
    acc_t s = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) s += op_exp((acc_t)in[j] - m);
    s = block_sum(s, sh);
    if (take_log) {
        const acc_t lse = m + op_log(s);
        for (int j = threadIdx.x; j < C; j += blockDim.x) out[j] = (T)((acc_t)in[j] - lse);
    } else {
        const acc_t r = (acc_t)1 / s;
        for (int j = threadIdx.x; j < C; j += blockDim.x) out[j] = (T)(op_exp((acc_t)in[j] - m) * r);
    }
}
"""

# the grid-stride loops, over n elements and over rows (one block each)
_EACH = "for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; " \
        "i += (long long)blockDim.x * gridDim.x)"
_ROWS = "for (long long r = blockIdx.x; r < rows; r += gridDim.x)"

_KERNELS = {
    # ---- GELU: the backward recomputes Φ (or the tanh) from x, cheaper on a GPU than a saved array ----------
    "dtrain_gelu_forward": r"""
extern "C" __global__ void dtrain_gelu_forward(const T* x, T* y, long long n) {
    EACH {
        const acc_t v = x[i];
        y[i] = (T)(v * (acc_t)0.5 * ((acc_t)1 + op_erf(v * (acc_t)0.70710678118654752440)));
    }
}""",
    "dtrain_gelu_backward": r"""
extern "C" __global__ void dtrain_gelu_backward(const T* g, const T* x, T* gx, long long n) {
    EACH {
        const acc_t v = x[i];
        const acc_t cdf = (acc_t)0.5 * ((acc_t)1 + op_erf(v * (acc_t)0.70710678118654752440));
        const acc_t pdf = op_exp((acc_t)-0.5 * v * v) * (acc_t)0.39894228040143267794;
        gx[i] = (T)((acc_t)g[i] * (cdf + v * pdf));
    }
}""",
    "dtrain_gelu_tanh_forward": r"""
extern "C" __global__ void dtrain_gelu_tanh_forward(const T* x, T* y, long long n) {
    EACH {
        const acc_t v = x[i];
        const acc_t t = op_tanh((acc_t)0.79788456080286535588 * (v + (acc_t)0.044715 * v * v * v));
        y[i] = (T)((acc_t)0.5 * v * ((acc_t)1 + t));
    }
}""",
    "dtrain_gelu_tanh_backward": r"""
extern "C" __global__ void dtrain_gelu_tanh_backward(const T* g, const T* x, T* gx, long long n) {
    EACH {
        const acc_t v = x[i], k = (acc_t)0.79788456080286535588;
        const acc_t t = op_tanh(k * (v + (acc_t)0.044715 * v * v * v));
        const acc_t d = (acc_t)0.5 * ((acc_t)1 + t)
                      + (acc_t)0.5 * v * ((acc_t)1 - t * t) * k * ((acc_t)1 + (acc_t)(3 * 0.044715) * v * v);
        gx[i] = (T)((acc_t)g[i] * d);
    }
}""",
    # ---- softmax and log_softmax over the last dim: a block per row --------------------------------------------
    "dtrain_softmax_forward": r"""
extern "C" __global__ void dtrain_softmax_forward(const T* x, T* y, long long rows, int C) {
    __shared__ acc_t sh[32];
    ROWS softmax_row(x + r * C, y + r * C, C, 0, sh);
}""",
    "dtrain_log_softmax_forward": r"""
extern "C" __global__ void dtrain_log_softmax_forward(const T* x, T* z, long long rows, int C) {
    __shared__ acc_t sh[32];
    ROWS softmax_row(x + r * C, z + r * C, C, 1, sh);
}""",
    "dtrain_softmax_backward": r"""
// gx = y * (g - sum(g * y))
extern "C" __global__ void dtrain_softmax_backward(const T* g, const T* y, T* gx, long long rows, int C) {
    __shared__ acc_t sh[32];
    ROWS {
        const T *gr = g + r * C, *yr = y + r * C;
        acc_t s = 0;
        for (int j = threadIdx.x; j < C; j += blockDim.x) s += (acc_t)gr[j] * (acc_t)yr[j];
        s = block_sum(s, sh);
        for (int j = threadIdx.x; j < C; j += blockDim.x) gx[r * C + j] = (T)((acc_t)yr[j] * ((acc_t)gr[j] - s));
    }
}""",
    "dtrain_log_softmax_backward": r"""
// gx = g - exp(z) * sum(g)
extern "C" __global__ void dtrain_log_softmax_backward(const T* g, const T* z, T* gx, long long rows, int C) {
    __shared__ acc_t sh[32];
    ROWS {
        const T *gr = g + r * C, *zr = z + r * C;
        acc_t s = 0;
        for (int j = threadIdx.x; j < C; j += blockDim.x) s += (acc_t)gr[j];
        s = block_sum(s, sh);
        for (int j = threadIdx.x; j < C; j += blockDim.x) gx[r * C + j] = (T)((acc_t)gr[j] - op_exp((acc_t)zr[j]) * s);
    }
}""",
    # ---- layer norm and RMS norm over the last dim: a block per row; mean and rstd saved in acc_t ------------
    "dtrain_layer_norm_forward": r"""
extern "C" __global__ void dtrain_layer_norm_forward(const T* x, const T* w, const T* b, T* y, acc_t* mean,
                                                     acc_t* rstd, long long rows, int C, acc_t eps, int has_w,
                                                     int has_b) {
    __shared__ acc_t sh[32];
    ROWS {
        const T* xr = x + r * C;
        acc_t s = 0;
        for (int j = threadIdx.x; j < C; j += blockDim.x) s += (acc_t)xr[j];
        const acc_t mu = block_sum(s, sh) / (acc_t)C;
        acc_t q = 0;  // the variance from the centred values: two passes over the row, no cancellation
        for (int j = threadIdx.x; j < C; j += blockDim.x) { const acc_t d = (acc_t)xr[j] - mu; q += d * d; }
        const acc_t rs = op_rsqrt(block_sum(q, sh) / (acc_t)C + eps);
        for (int j = threadIdx.x; j < C; j += blockDim.x) {
            acc_t v = ((acc_t)xr[j] - mu) * rs;
            if (has_w) v *= (acc_t)w[j];
            if (has_b) v += (acc_t)b[j];
            y[r * C + j] = (T)v;
        }
        if (threadIdx.x == 0) { mean[r] = mu; rstd[r] = rs; }
    }
}""",
    "dtrain_layer_norm_backward": r"""
// gx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)), gxhat = g * w
extern "C" __global__ void dtrain_layer_norm_backward(const T* g, const T* x, const acc_t* mean, const acc_t* rstd,
                                                      const T* w, T* gx, long long rows, int C, int has_w) {
    __shared__ acc_t sh[32];
    ROWS {
        const T *gr = g + r * C, *xr = x + r * C;
        const acc_t mu = mean[r], rs = rstd[r];
        acc_t s1 = 0, s2 = 0;
        for (int j = threadIdx.x; j < C; j += blockDim.x) {
            const acc_t gh = has_w ? (acc_t)gr[j] * (acc_t)w[j] : (acc_t)gr[j];
            s1 += gh;
            s2 += gh * ((acc_t)xr[j] - mu) * rs;
        }
        const acc_t m1 = block_sum(s1, sh) / (acc_t)C, m2 = block_sum(s2, sh) / (acc_t)C;
        for (int j = threadIdx.x; j < C; j += blockDim.x) {
            const acc_t gh = has_w ? (acc_t)gr[j] * (acc_t)w[j] : (acc_t)gr[j];
            gx[r * C + j] = (T)(rs * (gh - m1 - ((acc_t)xr[j] - mu) * rs * m2));
        }
    }
}""",
    "dtrain_rms_norm_forward": r"""
extern "C" __global__ void dtrain_rms_norm_forward(const T* x, const T* w, T* y, acc_t* rstd, long long rows, int C,
                                                   acc_t eps, int has_w) {
    __shared__ acc_t sh[32];
    ROWS {
        const T* xr = x + r * C;
        acc_t q = 0;
        for (int j = threadIdx.x; j < C; j += blockDim.x) { const acc_t v = xr[j]; q += v * v; }
        const acc_t rs = op_rsqrt(block_sum(q, sh) / (acc_t)C + eps);
        for (int j = threadIdx.x; j < C; j += blockDim.x) {
            const acc_t v = (acc_t)xr[j] * rs;
            y[r * C + j] = (T)(has_w ? v * (acc_t)w[j] : v);
        }
        if (threadIdx.x == 0) rstd[r] = rs;
    }
}""",
    "dtrain_rms_norm_backward": r"""
// gx = rstd * (gxhat - xhat * mean(gxhat * xhat)), gxhat = g * w, xhat = x * rstd
extern "C" __global__ void dtrain_rms_norm_backward(const T* g, const T* x, const acc_t* rstd, const T* w, T* gx,
                                                    long long rows, int C, int has_w) {
    __shared__ acc_t sh[32];
    ROWS {
        const T *gr = g + r * C, *xr = x + r * C;
        const acc_t rs = rstd[r];
        acc_t s = 0;
        for (int j = threadIdx.x; j < C; j += blockDim.x) {
            const acc_t gh = has_w ? (acc_t)gr[j] * (acc_t)w[j] : (acc_t)gr[j];
            s += gh * (acc_t)xr[j] * rs;
        }
        const acc_t m = block_sum(s, sh) / (acc_t)C;
        for (int j = threadIdx.x; j < C; j += blockDim.x) {
            const acc_t gh = has_w ? (acc_t)gr[j] * (acc_t)w[j] : (acc_t)gr[j];
            gx[r * C + j] = (T)(rs * (gh - (acc_t)xr[j] * rs * m));
        }
    }
}""",
    "dtrain_norm_affine_backward": r"""
// The weight and bias gradients of a layer or RMS norm, sums over rows (a column reduction): a block of 32x8
// threads takes 32 columns (read coalesced) of one chunk of `per_chunk` rows, its 8 row lanes summed in shared
// memory; part_w[chunk, j] = sum g * xhat and part_b[chunk, j] = sum g over the chunk's rows, the chunks
// summed by the caller. xhat = (x - mean) * rstd, or x * rstd without a mean (RMS norm).
extern "C" __global__ void dtrain_norm_affine_backward(const T* g, const T* x, const acc_t* mean, const acc_t* rstd,
                                                       acc_t* part_w, acc_t* part_b, long long rows, int C,
                                                       long long per_chunk, int has_mean, int want_b) {
    __shared__ acc_t sw[8][33], sb[8][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long long j = blockIdx.x * 32LL + tx;
    const long long r0 = blockIdx.y * per_chunk;
    const long long r1 = r0 + per_chunk < rows ? r0 + per_chunk : rows;
    acc_t aw = 0, ab = 0;
    if (j < C) {
        for (long long r = r0 + ty; r < r1; r += 8) {
            const acc_t gv = g[r * C + j];
            const acc_t xh = ((acc_t)x[r * C + j] - (has_mean ? mean[r] : (acc_t)0)) * rstd[r];
            aw += gv * xh;
            ab += gv;
        }
    }
    sw[ty][tx] = aw;
    sb[ty][tx] = ab;
    __syncthreads();
    if (ty == 0 && j < C) {
        for (int k = 1; k < 8; ++k) { aw += sw[k][tx]; ab += sb[k][tx]; }
        part_w[blockIdx.y * (long long)C + j] = aw;
        if (want_b) part_b[blockIdx.y * (long long)C + j] = ab;
    }
}""",
    # ---- cross-entropy with class indices: log_softmax + nll (+ label smoothing) in one pass ---------------
    "dtrain_cross_entropy_forward": r"""
// per row: z = log_softmax(x) (kept for the backward, as torch keeps it); loss = -(1-ls) w_t z_t - ls/C sum_k w_k
// z_k, w_t = the target's weight; both 0 where the target is ignore_index
extern "C" __global__ void dtrain_cross_entropy_forward(const T* x, const long long* t, const T* w, T* z, acc_t* loss,
                                                        acc_t* w_t, long long rows, int C, long long ignore_index,
                                                        acc_t ls, int has_w) {
    __shared__ acc_t sh[32];
    ROWS {
        T* zr = z + r * C;
        softmax_row(x + r * C, zr, C, 1, sh);
        __syncthreads();  // zr written by the whole block, read below by other threads
        acc_t sm = 0;
        if (ls != (acc_t)0) {
            for (int j = threadIdx.x; j < C; j += blockDim.x) sm += (has_w ? (acc_t)w[j] : (acc_t)1) * (acc_t)zr[j];
            sm = block_sum(sm, sh);
        }
        if (threadIdx.x == 0) {
            const long long ti = t[r];
            if (ti == ignore_index) {
                loss[r] = 0;
                w_t[r] = 0;
            } else {
                const acc_t wi = has_w ? (acc_t)w[ti] : (acc_t)1;
                w_t[r] = wi;
                loss[r] = -((acc_t)1 - ls) * wi * (acc_t)zr[ti] - ls / (acc_t)C * sm;
            }
        }
    }
}""",
    "dtrain_cross_entropy_backward": r"""
// d loss_r / d x_rk = (1-ls) w_t (p_k - [k = t]) + ls/C (wsum p_k - w_k), p = exp(z), times the row's scale;
// 0 where ignored. wsum: the weights' sum (a device scalar), or C without weights.
extern "C" __global__ void dtrain_cross_entropy_backward(const T* z, const long long* t, const T* w,
                                                         const acc_t* w_t, const acc_t* wsum, const acc_t* scale,
                                                         T* gx, long long rows, int C, long long ignore_index,
                                                         acc_t ls, int has_w) {
    ROWS {
        const long long ti = t[r];
        const T* zr = z + r * C;
        T* gr = gx + r * C;
        if (ti == ignore_index) {
            for (int j = threadIdx.x; j < C; j += blockDim.x) gr[j] = (T)0;
            continue;
        }
        const acc_t a = ((acc_t)1 - ls) * w_t[r], b = ls / (acc_t)C, s = scale[r];
        const acc_t ws = has_w ? wsum[0] : (acc_t)C;
        for (int j = threadIdx.x; j < C; j += blockDim.x) {
            const acc_t p = op_exp((acc_t)zr[j]);
            acc_t v = a * p + b * (ws * p - (has_w ? (acc_t)w[j] : (acc_t)1));
            if (j == ti) v -= a;
            gr[j] = (T)(s * v);
        }
    }
}""",
    # ---- Adam / AdamW: one elementwise pass over parameter, gradient and state ---------------------------------
    "dtrain_adam": r"""
// torch's single-tensor Adam, one element at a time: weight decay (L2 into the gradient, or decoupled: p *= 1 -
// lr wd), m.lerp_(g, 1 - beta1), v = beta2 v + (1 - beta2) g g, vmax = max(vmax, v) with amsgrad,
// p += -step_size m / (sqrt(v) / bc2_sqrt + eps). The scalars come rounded from double (1 - beta2 too: in float
// it would be 1.3e-5 off for beta2 = 0.999), and the source is compiled without contracting to FMAs
// (`_kernels`), so the step rounds as the array-level path and torch's single-tensor kernels do.
extern "C" __global__ void dtrain_adam(T* p, const T* g, T* m, T* v, T* vmax, long long n, int amsgrad,
                                       int maximize, int decoupled, int decay, acc_t wd, acc_t w1, acc_t beta2,
                                       acc_t one_minus_beta2, acc_t bc2_sqrt, acc_t eps, acc_t neg_step_size) {
    EACH {
        acc_t pi = p[i], gi = g[i];
        if (maximize) gi = -gi;
        if (decay) {
            if (decoupled) pi = pi * wd;  // wd here is 1 - lr * weight_decay
            else gi = gi + wd * pi;
        }
        const acc_t mi = (acc_t)m[i] + w1 * (gi - (acc_t)m[i]);
        acc_t vi = beta2 * (acc_t)v[i] + one_minus_beta2 * gi * gi;
        m[i] = (T)mi;
        v[i] = (T)vi;
        if (amsgrad) {
            const acc_t old = vmax[i];
            vi = (vi > old || vi != vi) ? vi : old;  // a NaN on either side wins, as torch's maximum
            vmax[i] = (T)vi;
        }
        p[i] = (T)(pi + (mi * neg_step_size) / (op_sqrt(vi) / bc2_sqrt + eps));
    }
}""",
}

NAMES = tuple(_KERNELS)
_TYPES = {np.dtype(np.float32): ("float", "float"), np.dtype(np.float64): ("double", "double")}
DTYPES = tuple(_TYPES)


def source(name, dtype):
    """The complete CUDA C source of kernel `name` for arrays of `dtype` (float32 or float64)."""
    t, acc = _TYPES[np.dtype(dtype)]
    body = _KERNELS[name].replace("EACH", _EACH).replace("ROWS", _ROWS)
    return _HEADER % {"T": t, "ACC": acc} + body


def options(name):
    """NVRTC options of kernel `name`: C++17; the Adam step without FMA contraction (see its source)."""
    return ("--std=c++17", "--fmad=false") if name == "dtrain_adam" else ("--std=c++17",)


def module_source(dtype):
    """Every kernel in one source for `dtype` (the header once): what a test compiles for the host."""
    t, acc = _TYPES[np.dtype(dtype)]
    return _HEADER % {"T": t, "ACC": acc} + "\n".join(
        _KERNELS[n].replace("EACH", _EACH).replace("ROWS", _ROWS) for n in NAMES)
