"""dtrain dtypes: torch's names and promotion rules over NumPy dtypes."""
import builtins as _b

import numpy as np

_builtin_bool, _builtin_int, _builtin_complex = _b.bool, _b.int, _b.complex

try:  # bfloat16 comes from ml_dtypes where it is installed (CuPy's own route to it)
    import ml_dtypes as _ml
    _bf16 = np.dtype(_ml.bfloat16)
except ImportError:
    _bf16 = None


class dtype:
    __slots__ = ("name", "np", "is_floating_point", "is_complex", "is_signed", "itemsize", "_kind", "_rank")

    def __init__(self, name, np_dtype, kind, rank):
        self.name, self.np = name, np_dtype
        self._kind, self._rank = kind, rank  # kind: 0 bool, 1 int, 2 float, 3 complex
        self.is_floating_point = kind == 2
        self.is_complex = kind == 3
        self.is_signed = name not in ("bool", "uint8")
        self.itemsize = np_dtype.itemsize if np_dtype is not None else 2

    def __repr__(self):
        return f"torch.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))

    def to_real(self):
        return {"complex64": float32, "complex128": float64}.get(self.name, self)

    def to_complex(self):
        return {"float64": complex128, "float16": complex64}.get(self.name, complex64 if self._kind <= 2 else self)


bool = dtype("bool", np.dtype(np.bool_), 0, 0)
uint8 = dtype("uint8", np.dtype(np.uint8), 1, 1)
int8 = dtype("int8", np.dtype(np.int8), 1, 1)
int16 = dtype("int16", np.dtype(np.int16), 1, 2)
int32 = dtype("int32", np.dtype(np.int32), 1, 3)
int64 = dtype("int64", np.dtype(np.int64), 1, 4)
float16 = dtype("float16", np.dtype(np.float16), 2, 1)
bfloat16 = dtype("bfloat16", _bf16, 2, 1)
float32 = dtype("float32", np.dtype(np.float32), 2, 2)
float64 = dtype("float64", np.dtype(np.float64), 2, 3)
complex64 = dtype("complex64", np.dtype(np.complex64), 3, 1)
complex128 = dtype("complex128", np.dtype(np.complex128), 3, 2)

half, float, double = float16, float32, float64
short, int, long = int16, int32, int64
cfloat, cdouble = complex64, complex128

_ALL = [bool, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64, complex64, complex128]
_NAMES = {d.name: d for d in _ALL}
_FROM_NP = {d.np: d for d in _ALL if d.np is not None}


# the names torch's kernels use in messages ("... not implemented for 'Long'")
_SCALAR_NAMES = dict(bool="Bool", uint8="Byte", int8="Char", int16="Short", int32="Int", int64="Long", float16="Half",
                     bfloat16="BFloat16", float32="Float", float64="Double", complex64="ComplexFloat",
                     complex128="ComplexDouble")


# the C++ type names torch's kernels print in some dtype errors (matmul's, masked_fill's)
_CPP_NAMES = dict(float32="float", float64="double", int64="long int", int32="int", int16="short int",
                  int8="signed char", uint8="unsigned char", bool="bool", float16="c10::Half",
                  bfloat16="c10::BFloat16", complex64="c10::complex<float>", complex128="c10::complex<double>")


def scalar_name(d):
    """torch's ScalarType name of a dtype: float64 → 'Double'."""
    return _SCALAR_NAMES[d.name]


def _by_name(name):
    return _NAMES[name]


def from_numpy_dtype(np_dtype):
    try:
        return _FROM_NP[np.dtype(np_dtype)]
    except KeyError:
        raise TypeError(f"can't convert np.ndarray of type {np.dtype(np_dtype)}. The only supported types are: "
                        "float64, float32, float16, complex64, complex128, int64, int32, int16, int8, uint8, and bool.") from None


_default = float32


def get_default_dtype():
    return _default


def set_default_dtype(d):
    global _default
    if not isinstance(d, dtype) or not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default = d


def _promote2(a, b):
    """torch.promote_types for two dtypes of the same 'priority'."""
    if a is b:
        return a
    if a._kind != b._kind:
        hi, lo = (a, b) if a._kind > b._kind else (b, a)
        if hi._kind == 3 and lo._kind == 2 and lo is float64:
            return complex128
        return hi
    if a._kind == 1:
        if uint8 in (a, b):  # uint8 with a signed int: the next signed type that holds both
            other = b if a is uint8 else a
            return int16 if other is int8 else other
        return a if a._rank > b._rank else b
    if a._kind == 2 and {a.name, b.name} == {"float16", "bfloat16"}:
        return float32
    return a if a._rank > b._rank else b


def promote_types(a, b):
    return _promote2(a, b)


def result_type_of(operands):
    """torch.result_type over tensors, 0-dim tensors and Python scalars (three priority levels)."""
    dims = zero = None
    scalar_kind = -1
    for o in operands:
        d = getattr(o, "dtype", None)
        if isinstance(d, dtype):
            if o.ndim:
                dims = d if dims is None else _promote2(dims, d)
            else:
                zero = d if zero is None else _promote2(zero, d)
        else:
            # numpy scalars count as Python scalars (np.bool_ as a float, as torch does)
            k = 0 if isinstance(o, _builtin_bool) else 1 if isinstance(o, (_builtin_int, np.integer)) else \
                3 if isinstance(o, (_builtin_complex, np.complexfloating)) else 2
            scalar_kind = max(scalar_kind, k)
    res = dims
    for cand in (zero,):
        if cand is not None:
            res = cand if res is None else (_promote2(res, cand) if cand._kind > res._kind else res)
    if scalar_kind >= 0:
        sd = (bool, int64, get_default_dtype(), get_default_dtype().to_complex())[scalar_kind]
        if res is None:
            res = sd
        elif scalar_kind > res._kind:
            res = sd if not (scalar_kind == 3 and res._kind == 2) else res.to_complex()
    return res



# bfloat16's limits, for when ml_dtypes (which would tell NumPy) is absent: 8 exponent bits like float32, 8 of mantissa
_BF16_INFO = dict(bits=16, eps=2.0 ** -7, max=3.3895313892515355e38, smallest_normal=2.0 ** -126)


class _Info:
    """What finfo and iinfo share: equal when they describe the same dtype; printed by their __repr__."""
    __slots__ = ()

    def __eq__(self, other):
        return _b.type(other) is _b.type(self) and other.dtype == self.dtype

    def __hash__(self):
        return hash((_b.type(self).__name__, self.dtype))

    def __str__(self):
        return repr(self)


class finfo(_Info):
    """Machine limits of a floating point dtype (torch.finfo); a complex dtype gives those of its parts."""
    __slots__ = ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype")

    def __init__(self, type=None):
        d = get_default_dtype() if type is None else type
        if not isinstance(d, dtype):
            raise TypeError(f"finfo(): argument 'type' (position 1) must be torch.dtype, not {_b.type(d).__name__}")
        if d._kind < 2:
            raise TypeError("torch.finfo() requires a floating point input type. Use torch.iinfo to handle "
                            "'torch.finfo'")
        d = d.to_real()
        if d.np is None:  # bfloat16 without ml_dtypes
            info = _BF16_INFO
        else:
            f = np.finfo(d.np)
            info = dict(bits=f.bits, eps=_b.float(f.eps), max=_b.float(f.max), smallest_normal=_b.float(f.tiny))
        self.bits, self.eps, self.max = info["bits"], info["eps"], info["max"]
        self.min, self.tiny = -self.max, info["smallest_normal"]
        self.smallest_normal = self.tiny
        self.resolution = 10.0 ** -_b.int(-np.log10(self.eps))  # NumPy's rule: 10**-(decimal digits of precision)
        self.dtype = d.name

    def __repr__(self):
        g = "{:.6g}".format
        return (f"finfo(resolution={g(self.resolution)}, min={g(self.min)}, max={g(self.max)}, eps={g(self.eps)}, "
                f"smallest_normal={g(self.smallest_normal)}, tiny={g(self.tiny)}, dtype={self.dtype})")



class iinfo(_Info):
    """Machine limits of an integer dtype (torch.iinfo)."""
    __slots__ = ("bits", "max", "min", "dtype")

    def __init__(self, type):
        if not isinstance(type, dtype):
            raise TypeError(f"iinfo(): argument 'type' (position 1) must be torch.dtype, not {_b.type(type).__name__}")
        if type is bool:
            raise TypeError("torch.bool is not supported by torch.iinfo")
        if type._kind != 1:
            raise TypeError("torch.iinfo() requires an integer input type. Use torch.finfo to handle 'torch.iinfo'")
        i = np.iinfo(type.np)
        self.bits, self.max, self.min, self.dtype = i.bits, _b.int(i.max), _b.int(i.min), type.name

    def __repr__(self):
        g = "{:.6g}".format
        return f"iinfo(min={g(_b.float(self.min))}, max={g(_b.float(self.max))}, dtype={self.dtype})"

