"""dtrain.compile: torch.compile's wrapper and argument checks; the model itself runs eagerly.

A module comes back as torch's OptimizedModule (`_orig_mod` is the model, state_dict keys carry `_orig_mod.`),
so checkpoints of compiled models have the same keys in both; a function comes back as a function. What torch
rejects (an unknown mode or backend, mode together with options) is rejected with torch's error. Arguments that
only steer torch's code generation (mode, options, dynamic, a backend's choice of kernels) have nothing to steer
here: each warns once that it has no effect, rather than being taken and dropped unseen."""
import functools
import warnings

_MODES = ("default", "lite", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")
_warned = set()


def _warn_once(key, what):
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"torch.compile: {what} has no effect in dtrain, which runs the model eagerly (no graph "
                      f"capture, no generated kernels); results are those of the uncompiled model.", UserWarning,
                      stacklevel=4)


def _check(backend, mode, options, dynamic, recompile_limit, shapes_spec):
    from ._dynamo import _BACKENDS
    from ._dynamo.exc import InvalidBackend
    if mode is not None and options is not None:
        raise RuntimeError("Either mode or options can be specified, but both can't be specified at the same time.")
    if mode is not None and mode not in _MODES:
        raise RuntimeError(f"Unrecognized mode={mode}, should be one of: {', '.join(_MODES)}")
    if isinstance(backend, str):
        if backend not in _BACKENDS:
            raise InvalidBackend(backend)
        if backend not in ("inductor", "eager", "aot_eager"):  # those two are eager already
            _warn_once(("backend", backend), f"backend={backend!r}")
    elif backend is not None:
        _warn_once("callable backend", f"a custom backend ({getattr(backend, '__name__', type(backend).__name__)}: "
                                       "never called, as dtrain captures no graph to hand it)")
    if mode not in (None, "default"):
        _warn_once(("mode", mode), f"mode={mode!r}")
    if options:
        _warn_once("options", f"options={sorted(options)}")
    if dynamic is not None:
        _warn_once("dynamic", f"dynamic={dynamic}")
    if recompile_limit is not None or shapes_spec is not None:
        _warn_once("recompile", "recompile_limit / shapes_spec")


def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None, options=None, name=None,
            disable=False, recompile_limit=None, isolate_recompiles=False, shapes_spec=None):
    """torch.compile: an OptimizedModule for a module, a wrapper for a function; the code runs eagerly.

    Works as `compile(fn)`, `@compile` and `@compile(mode=...)`. `fullgraph`, `name` and `isolate_recompiles`
    hold trivially (dtrain never breaks a graph, never recompiles); see the module docstring for the rest."""
    if model is None:
        def decorator(fn):
            if fn is None:
                raise RuntimeError("Model can't be None")
            return compile(fn, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode, options=options,
                           name=name, disable=disable, recompile_limit=recompile_limit,
                           isolate_recompiles=isolate_recompiles, shapes_spec=shapes_spec)
        return decorator
    _check(backend, mode, options, dynamic, recompile_limit, shapes_spec)
    if not callable(model):
        raise AssertionError(f"A callable function is expected, but {type(model)} is provided.")
    if disable:
        return model  # as torch: compilation disabled hands back the model itself
    from ._dynamo.eval_frame import OptimizedModule, _EagerContext
    from .nn import Module
    ctx = _EagerContext(backend, mode, options, dynamic, fullgraph)
    if isinstance(model, Module):
        return OptimizedModule(model, ctx)

    @functools.wraps(model)
    def compiled(*args, **kwargs):
        return model(*args, **kwargs)
    compiled._torchdynamo_orig_callable = model
    return compiled
