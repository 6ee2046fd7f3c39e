"""Padding layers over F.pad, with torch's names and reprs."""
from .. import functional as F
from .module import Module

__all__ = ["ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
           "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
           "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d"]


class _PadNd(Module):
    _nd, _mode, _zero = 1, "constant", False

    def __init__(self, padding, value: float = 0.0):
        super().__init__()
        self.padding = tuple(padding) if isinstance(padding, (tuple, list)) else (int(padding),) * (2 * self._nd)
        self.value = value

    def forward(self, input):
        if self._mode == "constant":
            return F.pad(input, self.padding, "constant", self.value)
        return F.pad(input, self.padding, self._mode)

    def extra_repr(self) -> str:
        if self._mode == "constant" and not self._zero:
            return f"padding={self.padding}, value={self.value}"
        return f"{self.padding}"


def _make(name, nd, mode, zero=False):
    if mode == "constant" and not zero:
        def __init__(self, padding, value):
            _PadNd.__init__(self, padding, value)
    else:
        def __init__(self, padding):
            _PadNd.__init__(self, padding, 0.0)
    return type(name, (_PadNd,), {"_nd": nd, "_mode": mode, "_zero": zero, "__init__": __init__,
                                  "__module__": __name__})


for _nd in (1, 2, 3):
    globals()[f"ZeroPad{_nd}d"] = _make(f"ZeroPad{_nd}d", _nd, "constant", zero=True)
    globals()[f"ConstantPad{_nd}d"] = _make(f"ConstantPad{_nd}d", _nd, "constant")
    globals()[f"ReflectionPad{_nd}d"] = _make(f"ReflectionPad{_nd}d", _nd, "reflect")
    globals()[f"ReplicationPad{_nd}d"] = _make(f"ReplicationPad{_nd}d", _nd, "replicate")
    globals()[f"CircularPad{_nd}d"] = _make(f"CircularPad{_nd}d", _nd, "circular")
