"""dtrain.Tensor: one array of its device's module (numpy or cupy) plus autograd state."""
import numpy as np

from . import _backend, _dtype, _memory_format
from ._device import CPU, META, device as _device_cls, resolve
from .autograd import graph as _graph
from .autograd import grad_mode as _grad_mode


class _Version:
    """Version counter shared by a tensor and its views; in-place ops bump it."""
    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


class Size(tuple):
    """torch.Size: a tuple of ints printed as `torch.Size([2, 3])`."""
    __slots__ = ()

    def __repr__(self):
        return f"torch.Size([{', '.join(str(s) for s in self)}])"

    def __getitem__(self, i):
        r = tuple.__getitem__(self, i)
        return Size(r) if isinstance(i, slice) else r

    def __add__(self, other):
        return Size(tuple.__add__(self, tuple(other)))

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n


_new = object.__new__


def _wrap(array, device):
    """A new tensor owning `array` (no copy, no graph)."""
    t = _new(Tensor)
    if type(array) is not np.ndarray and isinstance(array, np.generic):
        array = np.asarray(array)  # NumPy reductions return scalars; a tensor always owns an array
    t._data = array
    t._device = device
    t._requires_grad = False
    t.grad = t._grad_fn = t._base = t._view_info = t._accum = t._hooks = t._post_acc_hooks = None
    t._output_nr = 0
    t._vc = _Version()
    t._retains_grad = False
    return t


class Tensor:
    # _base: the root tensor whose memory a view shares (never a view itself); _view_info: for a view,
    # [the version its history was set at, how it was made] (autograd/graph.make_view)
    __slots__ = ("_data", "_device", "_requires_grad", "grad", "_grad_fn", "_output_nr", "_vc", "_base",
                 "_view_info", "_accum", "_hooks", "_post_acc_hooks", "_retains_grad", "__dict__", "__weakref__")
    __array_priority__ = 1000  # numpy scalars and arrays on the left defer to our reflected operators

    def __new__(cls, *args, **kwargs):
        # torch.Tensor(2, 3) makes an uninitialised float tensor; torch.Tensor([1, 2]) copies data
        from ._ops.creation import tensor, empty
        if len(args) == 1 and not isinstance(args[0], int):
            src = tensor(args[0], dtype=_dtype.get_default_dtype() if not isinstance(args[0], Tensor) else None,
                         device=kwargs.get("device"))
        else:
            src = empty(*args, device=kwargs.get("device"))
        t = _new(cls)
        t.__setstate_from(src)
        return t

    def __init__(self, *args, **kwargs):
        pass

    def __setstate_from(self, src):
        for k in ("_data", "_device", "_requires_grad", "grad", "_grad_fn", "_output_nr", "_vc", "_base",
                  "_view_info", "_accum", "_hooks", "_post_acc_hooks", "_retains_grad"):
            setattr(self, k, getattr(src, k))

    # ---------------------------------------------------------------- metadata
    @property
    def shape(self):
        return Size(self._data.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._data.shape)
        if self._data.ndim == 0:
            raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
        return self._data.shape[self._wrap_dim(dim)]

    def _wrap_dim(self, dim, ndim=None):
        n = self._data.ndim if ndim is None else ndim
        lo, hi = (-1, 0) if n == 0 else (-n, n - 1)
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        if dim < lo or dim > hi:
            raise IndexError(f"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})")
        return dim % n if n else 0

    def dim(self):
        return self._data.ndim

    ndimension = dim

    @property
    def ndim(self):
        return self._data.ndim

    def numel(self):
        return self._data.size

    nelement = numel

    def element_size(self):
        return self._data.itemsize

    @property
    def itemsize(self):
        return self._data.itemsize

    @property
    def nbytes(self):
        return self._data.nbytes

    @property
    def dtype(self):
        return _dtype._FROM_NP[self._data.dtype]

    @property
    def device(self):
        return self._device

    @property
    def is_cuda(self):
        return self._device.type == "cuda"

    @property
    def is_meta(self):
        return self._device is META

    @property
    def is_cpu(self):
        return self._device is CPU

    def get_device(self):
        return self._device.index if self._device.type == "cuda" else -1

    def is_floating_point(self):
        return self._data.dtype.kind == "f" or self.dtype is _dtype.bfloat16

    def is_complex(self):
        return self._data.dtype.kind == "c"

    def stride(self, dim=None):
        a = self._data
        st = tuple(s // a.itemsize for s in a.strides)
        if a.size == 0 and a.ndim and not any(st):
            # NumPy gives a new empty array all-zero strides; torch's are contiguous, a dim of 0 counted as 1
            out, acc = [], 1
            for n in reversed(a.shape):
                out.append(acc)
                acc *= max(n, 1)
            st = tuple(reversed(out))
        if dim is not None and a.ndim == 0:
            raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
        return st if dim is None else st[self._wrap_dim(dim)]

    def _is_view(self):
        return self._base is not None

    def is_contiguous(self, memory_format=None):
        if memory_format is not None:
            fmt = _memory_format.check(memory_format, "is_contiguous", None)
            if fmt is _memory_format.channels_last or fmt is _memory_format.channels_last_3d:
                a = self._data
                return _memory_format.is_contiguous(fmt, a.shape, tuple(s // a.itemsize for s in a.strides))
        return bool(self._data.flags.c_contiguous)

    def data_ptr(self):
        return _backend.data_ptr(self._data)

    def storage_offset(self):
        a = self._data
        if a.base is None:
            return 0
        return (_backend.data_ptr(a) - _backend.data_ptr(_backend.owner(a))) // a.itemsize

    def type_name(self):
        return {"float32": "torch.FloatTensor", "float64": "torch.DoubleTensor", "float16": "torch.HalfTensor",
                "int64": "torch.LongTensor", "int32": "torch.IntTensor", "bool": "torch.BoolTensor",
                "uint8": "torch.ByteTensor", "int8": "torch.CharTensor", "int16": "torch.ShortTensor",
                "bfloat16": "torch.BFloat16Tensor"}.get(self.dtype.name, "torch.Tensor")

    def type(self, dtype=None):
        if dtype is None:
            n = self.type_name()
            return n.replace("torch.", "torch.cuda.") if self.is_cuda else n
        if isinstance(dtype, str):
            dtype = {v: k for k, v in _TYPE_NAMES.items()}[dtype.replace("torch.cuda.", "torch.")]
        return self.to(dtype)

    def _shape_str(self):
        return ", ".join(str(s) for s in self._data.shape)

    # ---------------------------------------------------------------- autograd state
    @property
    def grad_fn(self):
        if self._base is not None and self._view_info[0] != self._vc.value:
            _graph._refresh_view(self)  # its base or a sibling view was written in place since
        return self._grad_fn

    @grad_fn.setter
    def grad_fn(self, node):
        self._grad_fn = node

    @property
    def requires_grad(self):
        # a view requires grad when its base does, even one made under no_grad or before the base did
        return self._requires_grad or (self._base is not None and self._base._requires_grad)

    @requires_grad.setter
    def requires_grad(self, flag):
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad=True):
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use a "
                               "computed variable in a subgraph that doesn't require differentiation use "
                               "var_no_grad = var.detach().")
        if requires_grad and self._data.dtype.kind not in "fc" and self.dtype is not _dtype.bfloat16:
            raise RuntimeError("only Tensors of floating point and complex dtype can require gradients")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def retains_grad(self):
        return bool(self._retains_grad)

    @property
    def output_nr(self):
        return self._output_nr

    @property
    def _version(self):
        # torch's t._version: how many in-place writes the memory has seen (the counter object, shared by
        # views, detach() and .data's owner, is _vc)
        return self._vc.value

    _version_value = _version

    def _grad_accumulator(self):
        acc = self._accum() if self._accum is not None else None
        if acc is None:
            acc = _graph.AccumulateGrad(self)
            import weakref
            self._accum = weakref.ref(acc)
        return acc

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        from .autograd import backward
        backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    def detach(self):
        # shares storage and the version counter, but is no autograd view: in-place ops on it are allowed
        t = _wrap(self._data, self._device)
        t._vc = self._vc
        return t

    def detach_(self):
        if self._base is not None:
            raise RuntimeError("Can't detach views in-place. Use detach() instead. If you are using "
                               "DistributedDataParallel (DDP) for training, and gradient_as_bucket_view is set as "
                               "True, gradients are views of DDP buckets, and hence detach_() cannot be called on "
                               "these gradients. To fix this error, please refer to the Optimizer.zero_grad() "
                               "function in torch/optim/optimizer.py as the solution.")
        if self._grad_fn is not None:
            # a node made before now that saved this non-leaf refuses it (graph._check_versions: the mark is the
            # graph's sequence number); a saved leaf is still fine, and so is a node made after the detach
            self.__dict__["_detached_inplace"] = next(_graph._seq)
        self._grad_fn = None
        self._requires_grad = False
        return self

    @property
    def data(self):
        t = _wrap(self._data, self._device)
        t._vc = _Version()  # torch: .data does not share the version counter
        return t

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be a Tensor, not {type(value).__name__}")
        self._data, self._device = value._data, value._device

    def retain_grad(self):
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        # a leaf keeps its .grad anyway; torch asks its stored node here, without regenerating a stale view's
        # (a view made under no_grad of a base written since is a leaf to retain_grad, no error)
        if self._grad_fn is None:
            return
        if self._retains_grad:
            return
        import weakref
        ref = weakref.ref(self)

        def keep(g):
            t = ref()
            if t is not None:
                if t.grad is None:
                    t.grad = _wrap(g._data.copy(), g._device)
                else:
                    t.grad = _wrap(t.grad._data + g._data, g._device)
        # (handle, hook): an in-place write moves the hook to the tensor's new node (inplace.set_history)
        self._retains_grad = (self.grad_fn._tensor_hook(self._output_nr, keep), keep)

    def register_hook(self, hook):
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            return self.grad_fn._tensor_hook(self._output_nr, hook)
        if self._hooks is None:
            self._hooks = {}
        h = _graph.RemovableHandle(self._hooks)
        self._hooks[h._key] = hook
        return h

    def register_post_accumulate_grad_hook(self, hook):
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._post_acc_hooks is None:
            self._post_acc_hooks = {}
        h = _graph.RemovableHandle(self._post_acc_hooks)
        self._post_acc_hooks[h._key] = hook
        return h

    # ---------------------------------------------------------------- conversion
    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        if self._device is META:
            raise RuntimeError("Tensor.item() cannot be called on meta tensors")
        return self._data.reshape(()).item() if self._device is CPU else self._data.reshape(()).get().item()

    def tolist(self):
        if self._device is META:
            raise NotImplementedError("Cannot copy out of meta tensor; no data!")
        return _backend.to_numpy(self._data).tolist()

    def numpy(self, *, force=False):
        if force:
            return _backend.to_numpy(self._data)
        if self._device.type != "cpu":
            raise TypeError(f"can't convert {self._device} device type tensor to numpy. Use Tensor.cpu() to copy the "
                            "tensor to host memory first.")
        if self.requires_grad and _grad_mode._state.enabled:  # under no_grad torch hands the array out
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        if self._device is META:
            raise NotImplementedError("Cannot copy out of meta tensor; no data!")
        if self.requires_grad and _grad_mode._state.enabled:  # torch's __array__ is numpy(), which refuses
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        a = _backend.to_numpy(self._data) if self._device.type != "cpu" else self._data
        if dtype is not None and a.dtype != np.dtype(dtype):
            return a.astype(dtype)
        return a.copy() if copy and a is self._data else a

    def __dlpack__(self, *args, **kwargs):
        if self._requires_grad:
            raise RuntimeError("Can't export tensors that require gradient, use tensor.detach()")
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def to(self, *args, **kwargs):
        """to(device=None, dtype=None, non_blocking=False, copy=False, *, memory_format=torch.preserve_format),
        to(dtype, non_blocking=False, copy=False, *, memory_format=...), to(other, non_blocking=False, copy=False,
        *, memory_format=...); returns self when nothing changes and copy is False."""
        dev, dt, flags = _parse_to(args, kwargs)
        fmt = _memory_format.check(kwargs.get("memory_format"), "to", _memory_format.preserve_format)
        from ._ops.conversion import to_device_dtype
        return to_device_dtype(self, resolve(dev) if dev is not None else None, dt, flags[1], fmt)

    def cpu(self, memory_format=None):
        return self.to(CPU, memory_format=memory_format)

    def cuda(self, device=None, non_blocking=False, memory_format=None):
        return self.to(_device_cls("cuda", device) if isinstance(device, int) else (device or "cuda"),
                       memory_format=memory_format)

    def float(self, memory_format=None):
        return self.to(_dtype.float32, memory_format=memory_format)

    def double(self, memory_format=None):
        return self.to(_dtype.float64, memory_format=memory_format)

    def half(self, memory_format=None):
        return self.to(_dtype.float16, memory_format=memory_format)

    def bfloat16(self, memory_format=None):
        return self.to(_dtype.bfloat16, memory_format=memory_format)

    def int(self, memory_format=None):
        return self.to(_dtype.int32, memory_format=memory_format)

    def long(self, memory_format=None):
        return self.to(_dtype.int64, memory_format=memory_format)

    def short(self, memory_format=None):
        return self.to(_dtype.int16, memory_format=memory_format)

    def char(self, memory_format=None):
        return self.to(_dtype.int8, memory_format=memory_format)

    def byte(self, memory_format=None):
        return self.to(_dtype.uint8, memory_format=memory_format)

    def bool(self, memory_format=None):
        return self.to(_dtype.bool, memory_format=memory_format)

    # ---------------------------------------------------------------- python protocol
    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {'no values' if self._data.size == 0 else 'more than one value'} "
                               "is ambiguous")
        return bool(self.item())

    def _python_scalar(self):
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return self.item()

    def __float__(self):
        return float(self._python_scalar())

    def __int__(self):
        return int(self._python_scalar())

    def __complex__(self):
        return complex(self._python_scalar())

    def __index__(self):
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __hash__(self):
        return id(self)

    def __contains__(self, element):
        if isinstance(element, (Tensor, int, float, bool, complex, np.generic)):
            return bool((self == element).any().item())
        raise RuntimeError(f"Tensor.__contains__ only supports Tensor or scalar, but you passed in a "
                           f"{type(element)}.")

    def is_nonzero(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {'no values' if self._data.size == 0 else 'more than one value'} "
                               "is ambiguous")
        return bool(self.item())

    def is_same_size(self, other):
        return self._data.shape == other._data.shape

    def is_signed(self):
        return self.dtype.is_signed

    def is_inference(self):
        return False

    def dim_order(self):
        """The dims from outermost to innermost in memory (largest stride first), as torch reports them."""
        st = self.stride()
        return tuple(sorted(range(self._data.ndim), key=lambda d: -st[d]))

    def is_set_to(self, tensor):
        return (self._data.__array_interface__ == tensor._data.__array_interface__ if self._device is CPU else
                self.data_ptr() == tensor.data_ptr() and self.shape == tensor.shape and self.stride() == tensor.stride())

    def pin_memory(self, device=None):
        """Returns self: host arrays are not page-locked here (CuPy copies from ordinary memory). Without CUDA it
        raises as torch's."""
        if not _backend.cuda_available():
            raise RuntimeError("Cannot access accelerator device when none is available.")
        return self

    def is_pinned(self, device=None):
        return False

    def share_memory_(self):
        """Returns self: dtrain's worker processes receive tensors by pickling, not through shared storage."""
        return self

    def is_shared(self):
        return False

    layout = property(lambda self: strided)
    is_sparse = is_quantized = is_mkldnn = is_nested = property(lambda self: False)

    def to_sparse(self, sparse_dim=None, *, layout=None, blocksize=None, dense_dim=None):
        """The nonzero entries as a sparse COO tensor (dtrain.sparse)."""
        from .sparse._coo import to_sparse
        return to_sparse(self, sparse_dim, layout=layout, blocksize=blocksize, dense_dim=dense_dim)

    def new(self, *args, **kwargs):
        """Legacy constructor: new(*sizes) is uninitialised memory, new(data) copies data; self's dtype and device."""
        from ._ops.creation import empty, tensor
        dev = kwargs.get("device", self._device)
        if not args:
            return empty(0, dtype=self.dtype, device=dev)
        if not isinstance(args[0], (int, np.integer, Size)):
            return tensor(args[0], dtype=self.dtype, device=dev)
        return empty(*args, dtype=self.dtype, device=dev)

    def apply_(self, callable):
        """Apply a Python function to every element in place (CPU tensors only, slow: as in torch)."""
        if self._device is not CPU:
            raise TypeError("apply_ is only implemented on CPU tensors")
        flat = self._data.reshape(-1)
        vals = [callable(v) for v in flat.tolist()]
        self._data[...] = np.asarray(vals, dtype=self._data.dtype).reshape(self._data.shape)
        self._vc.value += 1
        return self

    def map_(self, tensor, callable):
        """self[i] = callable(self[i], tensor[i]) in place, tensor broadcast to self (CPU tensors only)."""
        if self._device is not CPU:
            raise TypeError("map_ is only implemented on CPU tensors")
        other = np.broadcast_to(tensor._data, self._data.shape)
        vals = [callable(a, b) for a, b in zip(self._data.reshape(-1).tolist(), other.reshape(-1).tolist())]
        self._data[...] = np.asarray(vals, dtype=self._data.dtype).reshape(self._data.shape)
        self._vc.value += 1
        return self

    def __repr__(self, *, tensor_contents=None):
        from ._tensor_str import _str
        return _str(self)

    __str__ = __repr__

    def __format__(self, spec):
        if self._data.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    def __deepcopy__(self, memo):
        if not self.is_leaf:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                               "protocol at the moment.  If you were attempting to deepcopy a module, this may be "
                               "because of a torch.nn.utils.weight_norm usage, see "
                               "https://github.com/pytorch/pytorch/pull/103001")
        if id(self) in memo:
            return memo[id(self)]
        t = _new(type(self))
        with _backend.on_device(self._device):  # CuPy's copy() lands on the current device, not the array's
            t.__setstate_from(_wrap(self._data.copy(), self._device))
        t._requires_grad = self._requires_grad
        if self.grad is not None:
            t.grad = self.grad.__deepcopy__(memo)
        if hasattr(self, "__dict__"):
            import copy
            t.__dict__.update(copy.deepcopy(self.__dict__, memo))
        memo[id(self)] = t
        return t

    def __reduce_ex__(self, proto):
        # plain pickling (multiprocessing, cloudpickle) goes through host memory
        return (_rebuild, (type(self), _backend.to_numpy(self._data), str(self._device), self._requires_grad,
                           getattr(self, "__dict__", None) or None))

    def __getstate__(self):
        return None

    def __setstate__(self, state):
        pass


_TO_KWARGS = frozenset(("device", "dtype", "non_blocking", "copy", "memory_format"))


def _parse_to(args, kwargs):
    """Tensor.to's overloads: (device, dtype, non_blocking, copy), (dtype, non_blocking, copy) and (other,
    non_blocking, copy), each also by keyword; memory_format is keyword-only. Gives device, dtype and the two
    flags; anything else is torch's TypeError, not ignored."""
    for k in kwargs:
        if k not in _TO_KWARGS:
            raise TypeError(f"to() got an unexpected keyword argument '{k}'")
    dev, dt = kwargs.get("device"), kwargs.get("dtype")
    flags = [kwargs.get("non_blocking", False), kwargs.get("copy", False)]
    rest = list(args)
    if rest and isinstance(rest[0], Tensor):
        dev, dt = rest[0]._device, rest[0].dtype
        rest.pop(0)
    elif rest and isinstance(rest[0], _dtype.dtype):
        dt = rest.pop(0)
    elif rest and (rest[0] is None or isinstance(rest[0], (str, _device_cls, int))) and \
            not isinstance(rest[0], bool):
        dev = rest.pop(0)
        if rest and (rest[0] is None or isinstance(rest[0], _dtype.dtype)):
            dt = rest.pop(0)
    if len(rest) > 2 or not all(isinstance(a, bool) for a in rest):
        got = ", ".join(type(a).__name__ for a in args)
        raise TypeError(f"to() received an invalid combination of arguments - got ({got})")
    flags[:len(rest)] = rest
    return dev, dt, flags


class layout:
    """torch.layout: strided (dense) or sparse_coo (dtrain.sparse)."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"torch.{self.name}"

    def __reduce__(self):
        return (_layout_by_name, (self.name,))


strided = layout("strided")
sparse_coo = layout("sparse_coo")


def _layout_by_name(name):
    return sparse_coo if name == "sparse_coo" else strided


_TYPE_NAMES = {_dtype.float32: "torch.FloatTensor", _dtype.float64: "torch.DoubleTensor",
               _dtype.float16: "torch.HalfTensor", _dtype.int64: "torch.LongTensor", _dtype.int32: "torch.IntTensor",
               _dtype.bool: "torch.BoolTensor", _dtype.uint8: "torch.ByteTensor", _dtype.int8: "torch.CharTensor",
               _dtype.int16: "torch.ShortTensor"}


def _rebuild(cls, array, dev, requires_grad, d=None):
    dev = resolve(_device_cls(dev))
    if dev.type != "cuda":
        arr = array
    else:
        with _backend.on_device(dev):  # on its own device, whichever one the unpickling thread has current
            arr = dev.xp.asarray(array)
    t = _wrap(arr, dev)
    if cls is not Tensor:
        u = _new(cls)
        u._Tensor__setstate_from(t)
        t = u
    t._requires_grad = requires_grad
    if d:
        t.__dict__.update(d)
    return t


def is_tensor(obj):
    return isinstance(obj, Tensor)
