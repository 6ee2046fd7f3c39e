"""torch.compiler: the switches scripts call around torch.compile. dtrain compiles nothing (a compiled model
runs eagerly), so nothing is ever being compiled and there is no cache to reset."""
from ._dynamo import list_backends, reset  # noqa: F401

__all__ = ["reset", "is_compiling", "is_dynamo_compiling", "is_exporting", "disable", "list_backends",
           "allow_in_graph", "assume_constant_result", "cudagraph_mark_step_begin"]


def is_compiling() -> bool:
    """True inside code torch is tracing; dtrain never traces."""
    return False


def is_dynamo_compiling() -> bool:
    return False


def is_exporting() -> bool:
    return False


def disable(fn=None, recursive=True, *, reason=None):
    """Exclude fn from compilation (decorator or call): in dtrain every function already runs eagerly."""
    if fn is None:
        return lambda f: disable(f, recursive, reason=reason)
    return fn


def allow_in_graph(fn):
    return fn


def assume_constant_result(fn):
    return fn


def cudagraph_mark_step_begin():
    """Marks a training step for torch's CUDA graphs; dtrain records none."""
