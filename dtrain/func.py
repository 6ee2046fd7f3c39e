"""dtrain.func (torch.func): functional_call. The transforms (grad, vmap, jacrev, ...) are not there yet."""
from .nn.utils.stateless import _functional_call

__all__ = ["functional_call"]


def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *, tie_weights=True,
                    strict=False):
    """module(*args, **kwargs) with the named parameters and buffers replaced by the given tensors (one dict,
    or several with disjoint keys); names not given keep the module's own. The module is restored afterwards,
    and gradients flow to the given tensors."""
    return _functional_call(module, parameter_and_buffer_dicts, args, kwargs, tie_weights=tie_weights,
                            strict=strict)
