"""How a sparse COO tensor prints: torch's `tensor(indices=..., values=..., size=..., nnz=..., layout=...)`."""
from .. import _dtype
from .._tensor_str import PRINT_OPTS, _host_array, _tensor_str
from .._tensor import _wrap


def _part(prefix, a, indent):
    body = _tensor_str(_host_array(_wrap(a, None)), indent + len(prefix))
    return prefix + body + (f", size={tuple(a.shape)}" if a.size == 0 else "") + ")"


def _current_cuda(dev):
    return dev.xp.cuda.runtime.getDevice() if dev.type == "cuda" else dev.index


def sparse_repr(t):
    c = t._data
    indent = len("tensor(")
    default = _dtype.get_default_dtype()
    dt = t.dtype
    suffixes = [f"size={tuple(c.shape)}", f"nnz={c.nnz}"]
    if t._device.type != "cpu" or t._device.index != _current_cuda(t._device):
        suffixes.insert(0, f"device='{t._device}'")  # torch's rule: off the default device, or not the current GPU
    if dt not in (default, _dtype.complex128 if default is _dtype.float64 else _dtype.complex64, _dtype.int64,
                  _dtype.bool):
        suffixes.append(f"dtype={dt}")
    suffixes.append("layout=torch.sparse_coo")
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t._requires_grad:
        suffixes.append("requires_grad=True")
    out = "tensor(" + _part("indices=tensor(", c.indices, indent) + ",\n" + " " * indent + \
        _part("values=tensor(", c.values, indent)
    # the first suffix always starts a new line (torch's force_newline for sparse tensors), the rest wrap
    out += ",\n" + " " * indent + suffixes[0]
    last = indent + len(suffixes[0])
    for s in suffixes[1:]:
        if last + len(s) + 2 > PRINT_OPTS["linewidth"]:
            out += ",\n" + " " * indent + s
            last = indent + len(s)
        else:
            out += ", " + s
            last += len(s) + 2
    return out + ")"
