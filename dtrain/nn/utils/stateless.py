"""functional_call: run a module with some of its parameters and buffers replaced by given tensors
(torch.func.functional_call / torch.nn.utils.stateless.functional_call). The module is restored afterwards;
gradients flow to the given tensors, which is what meta-learning and per-sample-gradient code rely on."""
import contextlib
import warnings

__all__ = ["functional_call"]


def _owner(module, name):
    """(the submodule holding `name`, its last component)."""
    *path, attr = name.split(".")
    for part in path:
        sub = module._modules.get(part) if hasattr(module, "_modules") else None
        if sub is None:
            raise AttributeError(f"{module._get_name()} has no attribute `{part}`")
        module = sub
    return module, attr


def _untie(module, values):
    """With tie_weights, a value given for one name of a tensor the module holds under several names applies
    to all of them."""
    names_of = {}
    for name, t in list(module.named_parameters(remove_duplicate=False)) + \
            list(module.named_buffers(remove_duplicate=False)):
        names_of.setdefault(id(t), []).append(name)
    out = dict(values)
    for names in names_of.values():
        given = [n for n in names if n in values]
        if len(names) < 2 or not given:
            continue
        if len({id(values[n]) for n in given}) > 1:
            raise ValueError(f"functional_call got multiple values for keys {sorted(given)}, which are tied. "
                             "Consider using tie_weights=False")
        for n in names:
            out[n] = values[given[0]]
    return out


_ABSENT = object()


def _swap(module, name, value):
    """Put `value` under `name` (as a parameter, buffer or plain attribute, whichever it is); returns what was
    there (_ABSENT if nothing)."""
    owner, attr = _owner(module, name)
    for table in (owner._parameters, owner._buffers):
        if attr in table:
            old, table[attr] = table[attr], value
            return old
    old = owner.__dict__.get(attr, _ABSENT)
    if value is _ABSENT:
        owner.__dict__.pop(attr, None)
    else:
        owner.__dict__[attr] = value
    return old


@contextlib.contextmanager
def _reparametrize_module(module, values, tie_weights=False, strict=False):
    if tie_weights:
        values = _untie(module, values)
    if strict:
        known = {n for n, _ in module.named_parameters(remove_duplicate=False)} | \
            {n for n, _ in module.named_buffers(remove_duplicate=False)}
        unexpected = [k for k in values if k not in known]
        missing = sorted(k for k in known if k not in values)
        errors = ([f"Unexpected key(s): {', '.join(map(repr, unexpected))}."] if unexpected else []) + \
            ([f"Missing key(s): {', '.join(map(repr, missing))}."] if missing else [])
        if errors:
            raise RuntimeError("Error(s) in reparametrizing for {}:\n\t{}".format(module._get_name(),
                                                                                  "\n\t".join(errors)))
    saved = []
    try:
        for name, value in values.items():
            saved.append((name, _swap(module, name, value)))
        yield
    finally:
        for name, old in reversed(saved):
            _swap(module, name, old)


def functional_call(module, parameters_and_buffers, args=None, kwargs=None, *, tie_weights=True, strict=False):
    """The deprecated spelling of dtrain.func.functional_call, with torch's FutureWarning."""
    warnings.warn("`torch.nn.utils.stateless.functional_call` is deprecated as of PyTorch 2.0 and will be removed "
                  "in a future version of PyTorch. Please use `torch.func.functional_call` instead which is a "
                  "drop-in replacement.", FutureWarning, stacklevel=2)
    return _functional_call(module, parameters_and_buffers, args, kwargs, tie_weights=tie_weights, strict=strict)


def _functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *, tie_weights=True,
                     strict=False):
    """module(*args, **kwargs) with the named parameters and buffers replaced by the given tensors (one dict,
    or several with disjoint keys); names not given keep the module's own."""
    if isinstance(parameter_and_buffer_dicts, dict):
        values = parameter_and_buffer_dicts
    elif isinstance(parameter_and_buffer_dicts, (list, tuple)):
        if not all(isinstance(d, dict) for d in parameter_and_buffer_dicts):
            raise ValueError("Expected all elements of parameter_and_buffer_dicts to be dictionaries")
        seen, repeated = set(), []
        for d in parameter_and_buffer_dicts:
            for k in d:
                if k in seen and k not in repeated:
                    repeated.append(k)
                seen.add(k)
        if repeated:
            raise ValueError(f"{repeated} appeared in multiple dictionaries; behavior of functional call is "
                             "ambiguous")
        values = {k: v for d in parameter_and_buffer_dicts for k, v in d.items()}
    else:
        raise ValueError("Expected parameter_and_buffer_dicts to be a dict, or a list/tuple of dicts, but got "
                         f"{type(parameter_and_buffer_dicts)}")
    args = () if args is None else args if isinstance(args, tuple) else (args,)
    with _reparametrize_module(module, values, tie_weights=tie_weights, strict=strict):
        return module(*args, **(kwargs or {}))
