"""dtrain.nn: modules, parameters, initialisation and utilities, mirroring torch.nn."""
from . import functional, init, utils  # noqa: F401
from .parameter import Buffer, Parameter, UninitializedParameter  # noqa: F401
from .modules import *  # noqa: F401,F403
from .parallel import DataParallel  # noqa: F401
