"""torch.optim.radam: dtrain keeps RAdam beside NAdam (in nadam.py); this is the module path scripts import and saved
files name. torch's functional `radam` is not provided."""
from .nadam import RAdam

__all__ = ["RAdam"]
