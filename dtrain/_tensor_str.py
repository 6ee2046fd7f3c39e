"""repr of tensors in torch's exact format (precision 4, summarised past 1000 elements, 80-column lines).

A port of torch/_tensor_str.py onto host NumPy arrays: the same formatter decisions (int mode, scientific
mode, column width) and the same line breaking, so `repr(t)` matches torch's string for string."""
import contextlib
import math

import numpy as np

from . import _backend, _dtype

PRINT_OPTS = {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80, "sci_mode": None}
_DEFAULTS = dict(PRINT_OPTS)


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """torch.set_printoptions: precision, threshold, edgeitems, linewidth, profile ('default', 'short', 'full')."""
    if profile == "default":
        PRINT_OPTS.update(precision=4, threshold=1000, edgeitems=3, linewidth=80)
    elif profile == "short":
        PRINT_OPTS.update(precision=2, threshold=1000, edgeitems=2, linewidth=80)
    elif profile == "full":
        PRINT_OPTS.update(precision=4, threshold=math.inf, edgeitems=3, linewidth=80)
    for k, v in dict(precision=precision, threshold=threshold, edgeitems=edgeitems, linewidth=linewidth).items():
        if v is not None:
            PRINT_OPTS[k] = v
    PRINT_OPTS["sci_mode"] = sci_mode


def get_printoptions():
    return dict(PRINT_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs):
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


class _Formatter:
    """One format for every element of a tensor (or of its summarised edges), decided as torch decides it."""

    def __init__(self, values):
        self.floating = values.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        p = PRINT_OPTS["precision"]
        flat = values.reshape(-1)
        if not self.floating:
            for v in flat.tolist():
                self.max_width = max(self.max_width, len(f"{v}"))
            return
        vals = flat[np.isfinite(flat) & (flat != 0)]
        if vals.size == 0:
            return
        absv = np.abs(vals).astype(np.float64)
        mn, mx = absv.min(), absv.max()
        self.int_mode = bool(np.all(vals == np.ceil(vals)))
        sci = PRINT_OPTS["sci_mode"]
        self.sci_mode = bool(mx / mn > 1000.0 or mx > 1.0e8 or mn < 1.0e-4) if sci is None else sci
        pylist = vals.tolist()
        if self.sci_mode:
            self.max_width = max(self.max_width, max(len(f"{v:.{p}e}") for v in pylist))
        elif self.int_mode:
            # a trailing '.' marks a float tensor whose values are all integers
            self.max_width = max(self.max_width, max(len(f"{v:.0f}") + 1 for v in pylist))
        else:
            self.max_width = max(self.max_width, max(len(f"{v:.{p}f}") for v in pylist))

    def width(self):
        return self.max_width

    def format(self, value):
        p = PRINT_OPTS["precision"]
        if self.floating:
            if self.sci_mode:
                ret = f"{value:{self.max_width}.{p}e}"
            elif self.int_mode:
                ret = f"{value:.0f}"
                if not (math.isinf(value) or math.isnan(value)):
                    ret += "."
            else:
                ret = f"{value:.{p}f}"
        else:
            ret = f"{value}"
        return (self.max_width - len(ret)) * " " + ret


def _complex_str(val, f1, f2):
    real = f1.format(val.real)
    imag = (f2.format(val.imag) + "j").lstrip()
    return real + imag if imag[0] in "+-" else real + "+" + imag


def _vector_str(a, indent, summarize, f1, f2):
    width = f1.width() + 2 + (f2.width() + 1 if f2 is not None else 0)
    per_line = max(1, math.floor((PRINT_OPTS["linewidth"] - indent) / width))
    fmt = (lambda v: _complex_str(v, f1, f2)) if f2 is not None else f1.format
    edge = PRINT_OPTS["edgeitems"]
    if summarize and not edge:
        data = ["..."]
    elif summarize and a.shape[0] > 2 * edge:
        data = [fmt(v) for v in a[:edge].tolist()] + [" ..."] + [fmt(v) for v in a[-edge:].tolist()]
    else:
        data = [fmt(v) for v in a.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _tensor_str_with_formatter(a, indent, summarize, f1, f2=None):
    if a.ndim == 0:
        v = a.item()
        return _complex_str(v, f1, f2) if f2 is not None else f1.format(v)
    if a.ndim == 1:
        return _vector_str(a, indent, summarize, f1, f2)
    edge = PRINT_OPTS["edgeitems"]
    if summarize and a.shape[0] > 2 * edge:
        rows = [_tensor_str_with_formatter(a[i], indent + 1, summarize, f1, f2) for i in range(edge)] + ["..."] + \
               [_tensor_str_with_formatter(a[i], indent + 1, summarize, f1, f2)
                for i in range(a.shape[0] - edge, a.shape[0])]
    else:
        rows = [_tensor_str_with_formatter(a[i], indent + 1, summarize, f1, f2) for i in range(a.shape[0])]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(rows) + "]"


def _summarized_data(a):
    """The elements that get printed: the edges of every long dim (what the formatter sizes itself on)."""
    edge = PRINT_OPTS["edgeitems"]
    if a.ndim == 0:
        return a
    if a.ndim == 1:
        return np.concatenate((a[:edge], a[-edge:])) if a.shape[0] > 2 * edge else a
    if not edge:
        return a[(slice(0, 0),) * a.ndim]
    rows = list(a[:edge]) + list(a[-edge:]) if a.shape[0] > 2 * edge else list(a)
    return np.stack([_summarized_data(r) for r in rows])


def _tensor_str(a, indent):
    if a.size == 0:
        return "[]"
    summarize = a.size > PRINT_OPTS["threshold"]
    if a.dtype.kind == "c":
        re, im = a.real, a.imag
        f1 = _Formatter(_summarized_data(re) if summarize else re)
        f2 = _Formatter(_summarized_data(im) if summarize else im)
        return _tensor_str_with_formatter(a, indent, summarize, f1, f2)
    return _tensor_str_with_formatter(a, indent, summarize, _Formatter(_summarized_data(a) if summarize else a))


def _add_suffixes(tensor_str, suffixes, indent):
    out = [tensor_str]
    last_line_len = len(tensor_str) - tensor_str.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > PRINT_OPTS["linewidth"]:
            out.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            out.append(", " + suffix)
            last_line_len += len(suffix) + 2
    out.append(")")
    return "".join(out)


def _host_array(t):
    a = _backend.to_numpy(t._data)
    if a.dtype.kind not in "biufc":  # bfloat16 (ml_dtypes): print through float32, as its values are exact there
        a = a.astype(np.float32)
    return a


def _str(t):
    cls = type(t)
    plain = cls.__name__ in ("Tensor", "Parameter", "Buffer") and cls.__module__.startswith("dtrain")
    prefix = "tensor(" if plain else f"{cls.__name__}("
    indent = len(prefix)
    suffixes = []
    dev = t._device
    if dev.type != "cpu":
        suffixes.append(f"device='{dev}'")
    dt = t.dtype
    default = _dtype.get_default_dtype()
    has_default_dtype = dt in (default, _dtype.complex128 if default is _dtype.float64 else _dtype.complex64,
                               _dtype.int64, _dtype.bool)
    if dev.type == "meta":
        suffixes.append(f"size={tuple(t.shape)}")
        if dt is not default:
            suffixes.append(f"dtype={dt}")
        body = "..."
    elif t._data.size == 0:
        # an empty tensor has no elements to show its dtype or shape by: both are printed
        if t._data.ndim != 1:
            suffixes.append(f"size={tuple(t.shape)}")
        if dt is not default:
            suffixes.append(f"dtype={dt}")
        body = "[]"
    else:
        if not PRINT_OPTS["edgeitems"]:
            suffixes.append(f"size={tuple(t.shape)}")
        if not has_default_dtype:
            suffixes.append(f"dtype={dt}")
        body = _tensor_str(_host_array(t), indent)
    if t.grad_fn is not None:
        # torch prints the node's class name: CopySlices, not its name() torch::autograd::CopySlices
        suffixes.append(f"grad_fn=<{t.grad_fn.name().rpartition('::')[2]}>")
    elif t._requires_grad:
        suffixes.append("requires_grad=True")
    s = _add_suffixes(prefix + body, suffixes, indent)
    if any(c.__name__ == "Parameter" and c.__module__.startswith("dtrain") for c in cls.__mro__):
        return "Parameter containing:\n" + s
    return s
