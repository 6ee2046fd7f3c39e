"""CUDA source kernels on the emulated backend: they cannot run, so each runs an array-level reference.

    @dtrain._emulate.reference("my_kernel")      # the kernel's `name`
    def my_kernel(x, y, n):                       # the kernel's arguments, as the kernel call passes them
        y[...] = x * 2

The reference is also what a real-GPU test compares the kernel against. A kernel without a registered
reference raises NotImplementedError naming it when called (being defined is fine: a module may define
kernels it never calls on this device).
"""
_references = {}


def reference(name):
    """Registers `fn` as the array-level implementation of the CUDA kernel called `name`."""
    def register(fn):
        _references[name] = fn
        return fn
    return register


def get_reference(name, kind="CUDA kernel"):
    """The array-level implementation registered for kernel `name` (NotImplementedError naming it if none)."""
    fn = _references.get(name)
    if fn is None:
        raise NotImplementedError(f"{kind} {name!r} cannot run on emulated CUDA devices: register an array-level "
                                  f"reference with dtrain._emulate.reference({name!r})")
    return fn


def _run(kind, name, args, kwargs):
    return get_reference(name, kind)(*args, **kwargs)


class RawKernel:
    """cupy.RawKernel(code, name, ...); kernel(grid, block, args, shared_mem=0) runs the reference on `args`."""

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=False):
        self.code, self.name, self.options = code, name, options

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None):
        return _run("cupy.RawKernel", self.name, tuple(args), {})

    def compile(self, log_stream=None):
        pass


class RawModule:
    """cupy.RawModule: get_function(name) is a RawKernel of that name."""

    def __init__(self, *, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        self.code, self.options = code, options

    def get_function(self, name):
        return RawKernel(self.code, name, self.options)


class ElementwiseKernel:
    """cupy.ElementwiseKernel(in_params, out_params, operation, name, ...); a call runs the reference with the
    call's arguments (inputs, then any outputs given) and returns what it returns."""

    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True, preamble="",
                 no_return=False, return_tuple=False, loop_prep="", after_loop="", options=()):
        self.in_params, self.out_params, self.operation, self.name = in_params, out_params, operation, name

    def __call__(self, *args, size=None, block_size=None, stream=None):
        return _run("cupy.ElementwiseKernel", self.name, args, {})


class ReductionKernel:
    """cupy.ReductionKernel(in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name, ...);
    a call runs the reference with the call's arguments and keywords (axis, keepdims)."""

    def __init__(self, in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name="reduce_kernel",
                 reduce_type=None, reduce_dims=True, preamble="", options=()):
        self.in_params, self.out_params, self.name = in_params, out_params, name

    def __call__(self, *args, out=None, axis=None, keepdims=False, stream=None):
        kw = {"axis": axis, "keepdims": keepdims}
        if out is not None:
            kw["out"] = out
        return _run("cupy.ReductionKernel", self.name, args, kw)
