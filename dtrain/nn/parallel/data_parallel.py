"""nn.DataParallel: single-process data parallelism over several devices, torch's scheme.

Each forward: scatter the batch along `dim` over `device_ids`, replicate the module onto every device, run the
replicas in threads (each with its device current, as torch's parallel_apply), gather the outputs on
`output_device`. The replicas' parameters are differentiable copies of the source parameters, so backward sends
every replica's gradient back to the source module, where they sum; the engine runs each node of that backward
with its own device current.
With no or one GPU it runs the module directly."""
import threading

from ... import _backend
from ..._device import device as _device
from ..._tensor import Tensor
from ...autograd import grad_mode
from ..modules.module import Module

__all__ = ["DataParallel"]


def _device_count():
    from ... import cuda
    try:
        return cuda.device_count() if cuda.is_available() else 0
    except (RuntimeError, AssertionError):
        return 0


def _as_device(d):
    if isinstance(d, int):
        return _device("cuda", d)
    return _device(d)


class DataParallel(Module):
    """Wraps `module`; parameters and state_dict keys carry the `module.` prefix like torch's."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        self.module = module
        self.dim = dim
        n = _device_count()
        if device_ids is None:
            device_ids = list(range(n)) if n else []
        self.device_ids = [_as_device(d) for d in device_ids]
        self.output_device = _as_device(output_device) if output_device is not None else (
            self.device_ids[0] if self.device_ids else None)
        self.src_device_obj = self.device_ids[0] if self.device_ids else None
        for p in module.parameters():
            if self.src_device_obj is not None and p.device != self.src_device_obj:
                raise RuntimeError(f"module must have its parameters and buffers on device {self.src_device_obj} "
                                   f"(device_ids[0]) but found one of them on device: {p.device}")

    def forward(self, *inputs, **kwargs):
        if len(self.device_ids) <= 1:
            return self.module(*inputs, **kwargs)
        ins, kws = scatter(inputs, kwargs, self.device_ids, self.dim)
        used = self.device_ids[:len(ins)]
        if len(used) == 1:
            return self.module(*ins[0], **kws[0])
        replicas = replicate(self.module, used)
        outputs = parallel_apply(replicas, ins, kws, used)
        return gather(outputs, self.output_device, self.dim)


def _chunks(t, n, dim):
    return t.chunk(n, dim) if t.shape[dim] else (t,)


def scatter(inputs, kwargs, devices, dim=0):
    """Split every tensor along `dim` (as evenly as chunk does) and move the pieces to `devices`."""
    n = len(devices)

    def split(obj):
        if isinstance(obj, Tensor):
            parts = _chunks(obj, n, dim)
            return [p.to(d) for p, d in zip(parts, devices)]
        if isinstance(obj, (list, tuple)) and obj:
            cols = [split(o) for o in obj]
            k = min(len(c) for c in cols)
            return [type(obj)(c[i] for c in cols) if not hasattr(obj, "_fields") else type(obj)(*[c[i] for c in cols])
                    for i in range(k)]
        if isinstance(obj, dict) and obj:
            cols = {key: split(v) for key, v in obj.items()}
            k = min(len(c) for c in cols.values())
            return [{key: c[i] for key, c in cols.items()} for i in range(k)]
        return [obj] * n

    ins = split(tuple(inputs)) if inputs else [()] * n
    kws = split(kwargs) if kwargs else [{}] * len(ins)
    k = min(len(ins), len(kws))
    return ins[:k], kws[:k]


def replicate(module, devices):
    """A copy of `module` per device whose parameters are differentiable copies of the originals."""
    replicas = []
    for d in devices:
        memo = {}
        replicas.append(_replicate_one(module, d, memo))
    return replicas


def _replicate_one(m, dev, memo):
    if id(m) in memo:
        return memo[id(m)]
    r = m.__class__.__new__(m.__class__)
    r.__dict__ = dict(m.__dict__)
    memo[id(m)] = r
    # parameters: `to` is differentiable, so gradients of the copy reach the original
    # parameters: `to` and `view_as` are differentiable, so gradients of the copy reach the original
    r._parameters = {k: None if p is None else (p.to(dev) if p.device != dev else _view(p))
                     for k, p in m._parameters.items()}
    r._buffers = {k: (None if b is None else b.to(dev)) for k, b in m._buffers.items()}
    r._modules = {k: (None if c is None else _replicate_one(c, dev, memo)) for k, c in m._modules.items()}
    r._is_replica = True
    return r


def _view(p):
    """A same-device replica parameter: a differentiable alias of the original (gradients flow back)."""
    return p.view_as(p) if p.requires_grad else p


def parallel_apply(modules, inputs, kwargs_tup=None, devices=None):
    """Run module i on inputs i in its own thread, with device i current there (by default the device of the
    replica's first input tensor, else of its first parameter) and the caller's grad mode; the first error is
    re-raised, naming the replica."""
    if len(modules) != len(inputs):
        raise AssertionError(f"The number of modules {len(modules)} is not equal to the number of inputs "
                             f"{len(inputs)}")
    kwargs_tup = kwargs_tup if kwargs_tup is not None else ({},) * len(modules)
    devices = [_as_device(d) for d in devices] if devices is not None else \
        [_device_of(m, i) for m, i in zip(modules, inputs)]
    results = [None] * len(modules)
    errors = [None] * len(modules)
    enabled = grad_mode.is_grad_enabled()

    def work(i):
        try:
            # a new thread starts on device 0: as torch's parallel_apply, select the replica's device first
            with _backend.on_device(devices[i]), grad_mode.set_grad_enabled(enabled):
                results[i] = modules[i](*inputs[i], **kwargs_tup[i])
        except BaseException as e:  # handed to the caller below, with the replica named
            errors[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(modules))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, e in enumerate(errors):
        if e is not None:
            raise type(e)(f"Caught {type(e).__name__} in replica {i}: {e}") from e
    return results


def _device_of(module, inputs):
    """The device a replica runs on: its first input tensor's (torch's get_a_var), else its first parameter's."""
    stack = [inputs]
    while stack:
        obj = stack.pop(0)
        if isinstance(obj, Tensor):
            return obj.device
        if isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
    p = next(iter(module.parameters()), None)
    return p.device if p is not None else _device("cpu")


def gather(outputs, target_device, dim=0):
    """Concatenate the replicas' outputs on `target_device` (differentiably)."""
    from ... import cat
    first = outputs[0]
    if isinstance(first, Tensor):
        if first.ndim == 0:
            return cat([o.to(target_device).view(1) for o in outputs], 0)
        return cat([o.to(target_device) for o in outputs], dim)
    if isinstance(first, dict):
        return type(first)((k, gather([o[k] for o in outputs], target_device, dim)) for k in first)
    if isinstance(first, (list, tuple)):
        res = [gather(list(col), target_device, dim) for col in zip(*outputs)]
        return type(first)(*res) if hasattr(first, "_fields") else type(first)(res)
    return first
