"""torch.optim.adamw: dtrain keeps AdamW beside Adam (in adam.py); this is the module path scripts import and saved
files name. torch's functional `adamw` is not provided."""
from .adam import AdamW

__all__ = ["AdamW"]
