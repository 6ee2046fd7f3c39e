"""repr of tensors in torch's format (precision 4, summarised past 1000 elements, 80-column lines)."""
import math

import numpy as np

from . import _backend, _dtype

PRINT_OPTS = {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80, "sci_mode": None}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
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


class _Formatter:
    """Decides one format for all elements, as torch's _Formatter does."""

    def __init__(self, values, floating):
        self.floating = floating
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        p = PRINT_OPTS["precision"]
        if not floating:
            for v in values.reshape(-1):
                self.max_width = max(self.max_width, len(str(v)))
            return
        finite = values[np.isfinite(values)] if values.size else values
        nonzero = np.abs(finite[finite != 0]).astype(np.float64)
        if values.size == 0:
            return
        if nonzero.size == 0:
            self.max_width = max(len(_fmt_special(v)) if not np.isfinite(v) else 2 for v in values.reshape(-1))
            # all zeros (or inf/nan): int mode
            for v in values.reshape(-1):
                self.max_width = max(self.max_width, len(self._format_int(v)))
            return
        mn, mx = nonzero.min(), nonzero.max()
        if np.all(finite == np.ceil(finite)):
            self.int_mode = True
            if mx / mn > 1000.0 or mx > 1.0e8:
                self.sci_mode = True
                for v in values.reshape(-1):
                    self.max_width = max(self.max_width, len(f"{v:.{p}e}"))
            else:
                for v in values.reshape(-1):
                    self.max_width = max(self.max_width, len(self._format_int(v)))
        else:
            self.int_mode = False
            if mx / mn > 1000.0 or mx > 1.0e8 or mn < 1.0e-4:
                self.sci_mode = True
                for v in values.reshape(-1):
                    self.max_width = max(self.max_width, len(f"{v:.{p}e}"))
            else:
                for v in values.reshape(-1):
                    self.max_width = max(self.max_width, len(f"{v:.{p}f}"))
        if PRINT_OPTS["sci_mode"] is not None:
            self.sci_mode = PRINT_OPTS["sci_mode"]
            if self.sci_mode:
                self.max_width = max(len(f"{v:.{p}e}") for v in values.reshape(-1))

    def _format_int(self, v):
        if not np.isfinite(v):
            return _fmt_special(v)
        return f"{v:.0f}."

    def width(self):
        return self.max_width

    def format(self, v):
        p = PRINT_OPTS["precision"]
        if self.floating:
            if not np.isfinite(v):
                s = _fmt_special(v)
            elif self.sci_mode:
                s = f"{v:{self.max_width}.{p}e}"
            elif self.int_mode:
                s = f"{v:.0f}."
            else:
                s = f"{v:.{p}f}"
        else:
            s = str(v)
        return " " * (self.max_width - len(s)) + s


def _fmt_special(v):
    return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")


def _summarize(a, edge):
    """The elements that get printed (edges of every long dim)."""
    if a.ndim == 0:
        return a.reshape(-1)
    if a.shape[0] > 2 * edge:
        parts = [_summarize(x, edge) for x in list(a[:edge]) + list(a[-edge:])]
    else:
        parts = [_summarize(x, edge) for x in a]
    return np.concatenate(parts) if parts else np.zeros(0, a.dtype)


def _tensor_body(a, fmt, indent, summarize):
    edge = PRINT_OPTS["edgeitems"]
    if a.ndim == 0:
        return fmt.format(a.item() if not fmt.floating else float(a))
    if a.ndim == 1:
        elem_w = fmt.width() + 2
        per_line = max(math.floor((PRINT_OPTS["linewidth"] - indent) / elem_w), 1)
        if summarize and a.shape[0] > 2 * edge:
            items = [_item(fmt, x) for x in a[:edge]] + ["..."] + [_item(fmt, x) for x in a[-edge:]]
        else:
            items = [_item(fmt, x) for x in a]
        lines = [items[i:i + per_line] for i in range(0, len(items), per_line)]
        body = (",\n" + " " * (indent + 1)).join(", ".join(line) for line in lines)
        return "[" + body + "]"
    if summarize and a.shape[0] > 2 * edge:
        rows = [_tensor_body(x, fmt, indent + 1, summarize) for x in a[:edge]] + ["..."] + \
               [_tensor_body(x, fmt, indent + 1, summarize) for x in a[-edge:]]
    else:
        rows = [_tensor_body(x, fmt, indent + 1, summarize) for x in a]
    sep = "," + "\n" * (a.ndim - 1) + " " * (indent + 1)
    return "[" + sep.join(rows) + "]"


def _item(fmt, x):
    return fmt.format(x.item() if not fmt.floating else float(x) if x.dtype.kind != "c" else x)


def _str(t):
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    dt = t.dtype
    dev = t._device
    if dev.type == "cuda":
        suffixes.append(f"device='{dev}'")
    if dev.type == "meta":
        suffixes.append("device='meta'")
        suffixes.append(f"size={tuple(t.shape)}")
        if dt is not _dtype.get_default_dtype():
            suffixes.append(f"dtype={dt}")
        body = "..."
    else:
        a = _backend.to_numpy(t._data)
        if dt is _dtype.bfloat16 or dt is _dtype.float16:
            a = a.astype(np.float32)
        summarize = a.size > PRINT_OPTS["threshold"]
        if a.size == 0:
            body = "[]"
            if a.shape != (0,):
                suffixes.append(f"size={tuple(a.shape)}")
        else:
            vals = _summarize(a, PRINT_OPTS["edgeitems"]) if summarize else a.reshape(-1)
            floating = a.dtype.kind == "f"
            if a.dtype.kind == "b":
                vals = vals.astype(object)
                fmt = _Formatter(np.array([str(bool(v)) for v in vals]), False)
            else:
                fmt = _Formatter(vals, floating)
            body = _tensor_body(a.astype(object) if a.dtype.kind == "b" else a, fmt, indent, summarize)
        show_dtype = dt not in (_dtype.get_default_dtype(), _dtype.int64, _dtype.bool) or (
            a.size == 0 and dt is not _dtype.get_default_dtype() and dt is not _dtype.int64)
        if dt is _dtype.bool and a.size == 0:
            show_dtype = True
        if show_dtype:
            suffixes.append(f"dtype={dt}")
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t._requires_grad:
        suffixes.append("requires_grad=True")
    s = prefix + body
    for suf in suffixes:
        s += ", " + suf
    cls = type(t).__name__
    if cls == "Parameter":
        return "Parameter containing:\n" + s + ")"
    return s + ")"
