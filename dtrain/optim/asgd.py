"""torch.optim.asgd: dtrain keeps ASGD beside Rprop (in rprop.py); this is the module path scripts import and saved
files name. torch's functional `asgd` is not provided."""
from .rprop import ASGD

__all__ = ["ASGD"]
