"""dtrain.compile: accepted so torch code keeps running; dtrain runs the model as it is (eagerly)."""
import functools


def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None, options=None,
            disable=False):
    """Return `model` itself (a Module) or a thin wrapper of it (a function): same results, no compilation.

    Works as `compile(fn)`, `@compile` and `@compile(mode=...)` like torch.compile."""
    if mode is not None and options is not None:
        raise RuntimeError("Either mode or options can be specified, but both can't be specified at the same time.")
    if model is None:
        def decorator(fn):
            return compile(fn, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode, options=options,
                           disable=disable)
        return decorator
    if not callable(model):
        raise RuntimeError("torch.compile() expects a callable, a Module, or None")
    from .nn import Module
    if isinstance(model, Module):
        return model  # one object: state_dict keys, parameters and hooks stay the module's own

    @functools.wraps(model)
    def compiled(*args, **kwargs):
        return model(*args, **kwargs)
    compiled._torchdynamo_orig_callable = model
    return compiled
