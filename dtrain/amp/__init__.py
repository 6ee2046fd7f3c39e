"""dtrain.amp: autocast and GradScaler with torch's signatures.

Autocast changes no dtypes yet (every op runs in its inputs' dtype), and the scaler only scales on CUDA,
so on the CPU both leave results exactly as without them."""
from .autocast_mode import autocast, get_autocast_dtype, is_autocast_available, custom_fwd, custom_bwd
from .grad_scaler import GradScaler

__all__ = ["autocast", "GradScaler", "get_autocast_dtype", "is_autocast_available", "custom_fwd", "custom_bwd"]
