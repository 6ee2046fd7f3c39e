"""The numba kernels behind `dtrain._cpu_kernels` (imported only when numba is installed and enabled).

Each public function takes NumPy arrays of one float dtype (float32 or float64), makes them contiguous, and
returns new arrays; the op beside its NumPy path decides when to call it. Rows are the last dim (a (..., C)
array is n rows of C), shared out among the threads with prange.

The kernels live by concept in `_activation`, `_norm`, `_layers`, `_attention` and `_adam`; `_jit` says how they are compiled
(threads, serial and parallel builds, error model, precision)."""
from ._activation import (cross_entropy, cross_entropy_backward, gelu, gelu_backward, gelu_tanh,  # noqa: F401
                          gelu_tanh_backward, log_softmax, log_softmax_backward, relu_backward, sigmoid_backward,
                          softmax, softmax_backward, tanh_backward)
from ._adam import adam  # noqa: F401
from ._attention import masked_softmax, masked_softmax_backward  # noqa: F401
from ._conv import conv2d_direct, conv2d_direct_backward, planes_to_rows, rows_to_planes  # noqa: F401
from ._jit import use_threads  # noqa: F401
from ._layers import col2im2d, embedding_backward, im2col2d  # noqa: F401
from ._pool import max_pool2d, max_pool2d_backward  # noqa: F401
from ._norm import layer_norm, layer_norm_backward, rms_norm, rms_norm_backward  # noqa: F401
