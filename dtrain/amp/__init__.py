"""dtrain.amp: automatic mixed precision, as torch.amp.

`autocast` runs the ops torch lists in bfloat16/float16 or float32 inside a region (the lists and the
dispatch are in _dispatch.py); `GradScaler` scales the loss so that float16 gradients do not underflow, and
skips the steps whose gradients overflowed."""
from .autocast_mode import autocast, custom_bwd, custom_fwd, get_autocast_dtype, is_autocast_available
from .grad_scaler import GradScaler

__all__ = ["autocast", "GradScaler", "get_autocast_dtype", "is_autocast_available", "custom_fwd", "custom_bwd"]
