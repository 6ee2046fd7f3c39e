"""OptimizedModule: what torch.compile(module) returns, at torch's module path (torch._dynamo.eval_frame).

It holds the model as its one child `_orig_mod`, so state_dict keys carry the `_orig_mod.` prefix exactly as a
compiled model's do in torch (checkpoints of compiled models cross both ways), and it forwards every other
attribute read and write to the model. Calling it calls the model: dtrain runs it eagerly."""
from ..nn.modules.module import Module


class _EagerContext:
    """Stands where torch keeps its dynamo context: the arguments compile was given; wrapping a function
    returns it as it is (dtrain runs everything eagerly)."""

    def __init__(self, backend="inductor", mode=None, options=None, dynamic=None, fullgraph=False):
        self.backend, self.mode, self.options, self.dynamic, self.fullgraph = backend, mode, options, dynamic, fullgraph

    def __call__(self, fn):
        return fn


class OptimizedModule(Module):
    """Wraps a module that torch.compile was given; `_orig_mod` is the module itself."""

    # the names that live on the wrapper; every other attribute is the wrapped module's (as in torch)
    _opt_mod_attributes = {"_orig_mod", "dynamo_ctx", "_torchdynamo_orig_callable", "get_compiler_config",
                           "forward", "_forward", "__dict__", "_super_module_initialized"}

    def __init__(self, mod: Module, dynamo_ctx=None) -> None:
        # attribute reads during Module.__init__ go to _orig_mod, so it must exist first
        object.__setattr__(self, "_orig_mod", mod)
        self._super_module_initialized = False
        super().__init__()
        self._super_module_initialized = True
        del self.__dict__["_orig_mod"]
        self._orig_mod = mod  # now a registered child: parameters, buffers and state_dict keys under `_orig_mod.`
        self.dynamo_ctx = dynamo_ctx if dynamo_ctx is not None else _EagerContext()
        self.forward = self.dynamo_ctx(mod.__call__)

    # training is the wrapped module's (Module.__init__ writes the default into __dict__; this property wins)
    @property
    def training(self) -> bool:
        return self._orig_mod.training

    @training.setter
    def training(self, value: bool) -> None:
        if self.__dict__.get("_super_module_initialized"):
            self._orig_mod.training = value

    def __getattr__(self, name):
        if name == "_orig_mod":
            return self.__dict__["_modules"]["_orig_mod"]
        return getattr(self._orig_mod, name)

    def __setattr__(self, name, value):
        if hasattr(type(self), name) or name in OptimizedModule._opt_mod_attributes:
            if name == "training":  # Module.__setattr__ writes __dict__ directly; the property must see it
                return object.__setattr__(self, name, value)
            return super().__setattr__(name, value)
        return setattr(self._orig_mod, name, value)

    def __delattr__(self, name):
        if hasattr(type(self), name) or name in OptimizedModule._opt_mod_attributes:
            return super().__delattr__(name)
        return delattr(self._orig_mod, name)

    def __len__(self):
        if hasattr(type(self._orig_mod), "__len__"):
            return len(self._orig_mod)
        raise TypeError(f"{type(self._orig_mod).__name__} does not support len()")

    def __dir__(self):
        own = self._orig_mod.__dir__()
        return own + [a for a in super().__dir__() if a not in own]

    def __reduce__(self):
        return (self.__class__, (self._orig_mod, self.dynamo_ctx))
