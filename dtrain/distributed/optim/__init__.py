"""dtrain.distributed.optim: optimizers for distributed training (ZeRO stage 1)."""
from .zero_redundancy_optimizer import ZeroRedundancyOptimizer  # noqa: F401

__all__ = ["ZeroRedundancyOptimizer"]
