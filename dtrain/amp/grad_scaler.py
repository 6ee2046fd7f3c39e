"""GradScaler: dynamic loss scaling, as torch.amp.GradScaler, on the CPU and on CUDA.

float16 gradients underflow to zero below 6e-8; scaling the loss by S (65536 to start) scales every gradient by
S, so small ones survive. Before the optimizer step the gradients are divided by S again (`unscale_`); if any
of them is inf or NaN the scale was too large: the step is skipped and S shrinks (times `backoff_factor`).
After `growth_interval` clean steps in a row S grows (times `growth_factor`).

The scale, the growth tracker and the found-inf flags live on the gradients' device as small arrays, and the
non-finite check of a step is one flag per device, reduced there: the host reads each device's flag once,
in `step()`, never once per parameter.

Under torch.distributed with more than one rank, `step()` all-reduces the found-inf flag (max) over the
default group, so every rank skips the same steps and the replicas never drift apart (with DDP the gradients
are already averaged, so one rank's inf reaches all of them; the flag also covers an inf that appears on one
rank only, after the all-reduce or without DDP). Every rank must therefore call `step()` in the same
iterations, as data-parallel training does."""
import sys
import warnings
from collections import defaultdict

from .. import _backend, _dtype

_READY, _UNSCALED, _STEPPED = 0, 1, 2


def _fresh_state():
    return {"stage": _READY, "found_inf_per_device": {}}


class GradScaler:
    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True):
        self._device = str(device)
        self._enabled = bool(enabled)
        if self._device.split(":")[0] not in ("cpu", "cuda"):
            raise RuntimeError(f"GradScaler: unsupported device '{self._device}' (dtrain has cpu and cuda)")
        if self._enabled and self._device.startswith("cuda") and not _backend.cuda_available():
            warnings.warn("torch.cuda.amp.GradScaler is enabled, but CUDA is not available.  Disabling.")
            self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise AssertionError("The growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise AssertionError("The backoff factor must be < 1.0.")
        self._init_scale = init_scale
        self._scale = None  # a 0-d float32 tensor on the device, made by the first scale()
        self._growth_factor = growth_factor
        self._backoff_factor = backoff_factor
        self._growth_interval = growth_interval
        self._init_growth_tracker = 0
        self._growth_tracker = None  # a 0-d int32 tensor beside the scale
        self._per_optimizer_states = defaultdict(_fresh_state)

    # ------------------------------------------------------------------------------------------ scaling
    def _lazy_init_scale_growth_tracker(self, dev):
        from .._ops.creation import full
        self._scale = full((), self._init_scale, dtype=_dtype.float32, device=dev)
        self._growth_tracker = full((), self._init_growth_tracker, dtype=_dtype.int32, device=dev)

    def scale(self, outputs):
        """`outputs` times the scale: a tensor, or a list/tuple (nested) or other iterable of them."""
        if not self._enabled:
            return outputs
        from .._tensor import Tensor
        if isinstance(outputs, Tensor):
            if self._scale is None:
                self._lazy_init_scale_growth_tracker(outputs.device)
            # a 0-d float32 tensor, as torch's: a 0-d bfloat16 loss comes back float32, a larger one stays
            return outputs * self._scale.to(outputs.device)

        def apply(v):
            if isinstance(v, Tensor):
                return self.scale(v)
            if isinstance(v, (list, tuple)):
                return type(v)(apply(x) for x in v)
            if hasattr(v, "__iter__"):
                return map(apply, v)
            raise ValueError("outputs must be a Tensor or an iterable of Tensors")
        return apply(outputs)

    def _unscale_grads_(self, optimizer, inv_scale, allow_fp16):
        """Multiply every gradient by `inv_scale` (a 0-d float32 tensor) in place; one found-inf flag (a 0-d
        float32 tensor on the device, 1.0 where some gradient held an inf or NaN before unscaling) per device."""
        from .._ops.creation import zeros
        by_device = defaultdict(list)
        for group in optimizer.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if not allow_fp16 and g.dtype is _dtype.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                by_device[g.device].append(g)
        found = {}
        for dev, grads in by_device.items():
            # the check is on the scaled values, as torch's kernel does it, and stays on the device: the
            # host reads the flag once per device, in step()
            flag = zeros((), dtype=_dtype.float32, device=dev)
            with _backend.on_device(flag._device):  # CuPy launches a kernel on the current device only
                _backend.non_finite_check_and_unscale_([g._data for g in grads], flag._data,
                                                       inv_scale.to(dev)._data)
            for g in grads:
                g._vc.value += 1
            found[dev] = flag
        return found

    def unscale_(self, optimizer):
        """Divide `optimizer`'s gradients by the scale, in place (call it before clipping them)."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] is _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        # 1/scale in double, then float32, as torch computes it, on the scale's device (no host read)
        inv_scale = self._scale.double().reciprocal().float()
        state["found_inf_per_device"] = self._unscale_grads_(optimizer, inv_scale, False)
        state["stage"] = _UNSCALED

    def _synced_found_inf(self, state):
        """Whether any device of this optimizer (on any rank, under torch.distributed) saw an inf/NaN."""
        flags = state["found_inf_per_device"]
        found = sum(float(v.item()) for v in flags.values())  # one host read per device
        dist = sys.modules.get("dtrain.distributed")  # a program that never imported it has no process group
        if dist is not None and dist.is_initialized() and dist.get_world_size() > 1:
            from .._ops.creation import tensor
            t = tensor(found, dtype=_dtype.float32)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            if float(t.item()) != found:  # another rank's gradients overflowed: record it for update()
                for flag in flags.values():
                    flag.fill_(float(t.item()))
            found = float(t.item())
        return found

    def step(self, optimizer, *args, **kwargs):
        """`optimizer.step(*args, **kwargs)` unless the unscaled gradients hold an inf or NaN (then None)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is _READY:
            self.unscale_(optimizer)
        if len(state["found_inf_per_device"]) == 0:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        retval = None
        if not self._synced_found_inf(state):
            retval = optimizer.step(*args, **kwargs)
        state["stage"] = _STEPPED
        return retval

    def update(self, new_scale=None):
        """Back off after a step that found an inf/NaN, grow after `growth_interval` clean steps; or set
        `new_scale` (a float or a 1-element float32 tensor)."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("update")
        from .._tensor import Tensor
        if new_scale is not None:
            if isinstance(new_scale, float):
                self._scale.fill_(new_scale)
            else:
                reason = ("new_scale should be a float or a 1-element torch.cuda.FloatTensor or "
                          "torch.FloatTensor with requires_grad=False.")
                if not (isinstance(new_scale, Tensor) and new_scale.device.type == self._device.split(":")[0]
                        and new_scale.numel() == 1 and not new_scale.requires_grad
                        and new_scale.dtype is _dtype.float32):
                    raise AssertionError(reason)
                self._scale.copy_(new_scale.reshape(()))
        else:
            found = [f for s in self._per_optimizer_states.values() for f in s["found_inf_per_device"].values()]
            if len(found) == 0:
                raise AssertionError("No inf checks were recorded prior to update.")
            # every device's flag, brought to the scale's device (a device-to-device copy, not a host read)
            combined = found[0].to(self._scale.device)
            for f in found[1:]:
                combined = combined + f.to(self._scale.device)
            with _backend.on_device(self._scale._device):  # raw array code on the scale's device
                self._update_scale(combined._data)
        self._per_optimizer_states = defaultdict(_fresh_state)

    def _update_scale(self, found_inf):
        """torch's _amp_update_scale_, on the device's arrays (no host read): back off on inf, else count
        the clean step and grow at the interval (unless growing overflows float32)."""
        xp = self._scale._device.xp
        scale, tracker = self._scale._data, self._growth_tracker._data
        bad = found_inf > 0
        successful = tracker + 1
        grow = xp.logical_and(~bad, successful == self._growth_interval)
        grown = (scale * xp.float32(self._growth_factor)).astype(xp.float32)
        with _ignore_overflow(xp):
            new_scale = xp.where(bad, scale * xp.float32(self._backoff_factor),
                                 xp.where(grow & xp.isfinite(grown), grown, scale))
        new_tracker = xp.where(bad | grow, 0, successful)
        scale[...] = new_scale
        tracker[...] = new_tracker
        self._scale._vc.value += 1
        self._growth_tracker._vc.value += 1

    def _check_scale_growth_tracker(self, funcname):
        fix = "This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration."
        if self._scale is None:
            raise AssertionError(f"Attempted {funcname} but _scale is None.  " + fix)
        if self._growth_tracker is None:
            raise AssertionError(f"Attempted {funcname} but _growth_tracker is None.  " + fix)

    # ------------------------------------------------------------------------------------------ settings
    def get_scale(self) -> float:
        if not self._enabled:
            return 1.0
        return float(self._init_scale) if self._scale is None else float(self._scale.item())

    def get_growth_factor(self):
        return self._growth_factor

    def set_growth_factor(self, new_factor):
        self._growth_factor = new_factor

    def get_backoff_factor(self):
        return self._backoff_factor

    def set_backoff_factor(self, new_factor):
        self._backoff_factor = new_factor

    def get_growth_interval(self):
        return self._growth_interval

    def set_growth_interval(self, new_interval):
        self._growth_interval = new_interval

    def _get_growth_tracker(self):
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else int(self._growth_tracker.item())

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self):
        """scale, growth_factor, backoff_factor, growth_interval and _growth_tracker (torch's keys); {} when
        disabled."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._init_scale = state_dict["scale"]
        if self._scale is not None:
            self._scale.fill_(state_dict["scale"])
        self._growth_factor = state_dict["growth_factor"]
        self._backoff_factor = state_dict["backoff_factor"]
        self._growth_interval = state_dict["growth_interval"]
        self._init_growth_tracker = state_dict["_growth_tracker"]
        if self._growth_tracker is not None:
            self._growth_tracker.fill_(state_dict["_growth_tracker"])

    def __getstate__(self):
        state = self.__dict__.copy()
        if self._enabled:
            if len(self._per_optimizer_states) != 0:
                raise AssertionError("A GradScaler instance may only be pickled at the beginning of an iteration, "
                                     "or at the end after scaler.update().")
            state["_init_scale"] = self.get_scale()
            state["_init_growth_tracker"] = self._get_growth_tracker()
            state["_scale"] = None
            state["_growth_tracker"] = None
        state["_per_optimizer_states"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._per_optimizer_states = defaultdict(_fresh_state)


def _ignore_overflow(xp):
    """NumPy warns when a grown scale overflows float32; torch keeps the old scale silently, and so do we (the
    NumPy error state is harmless where the arrays are CuPy's)."""
    import numpy as np
    return np.errstate(over="ignore", invalid="ignore")
