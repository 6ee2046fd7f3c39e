"""dtrain.cpu: `dtrain.cpu.amp.autocast` for torch code that spells it that way."""
from . import amp  # noqa: F401


def is_available():
    return True


def device_count():
    return 1
