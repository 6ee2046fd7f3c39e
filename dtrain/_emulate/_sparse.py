"""cupyx.scipy.sparse of the emulated backend: coo_matrix and csr_matrix, with CuPy 14's constructors and rules.

A matrix holds device arrays (`data` and `row`/`col`, or `data`/`indices`/`indptr`, int32 indices as CuPy's)
of one device; SciPy computes over their host memory. What CuPy does, this does: data of bool, float32,
float64, complex64 or complex128 only (anything else is CuPy's ValueError), host arrays refused where device
arrays are expected, results made on the current device, a matrix of another device refused with CuPy's
cross-device error, `.get()` as the one way to the host. The rest of the module's names (csc_matrix, eye,
kron, ...) raise NotImplementedError when used. `numpy.asarray(matrix)` raises the TypeError of a device
array: real CuPy wraps the matrix in a useless 0-d object array there, never the values.
"""
import numpy as np
import scipy.sparse

from . import _array, _runtime as rt
from ._array import ndarray, unwrap, wrap

_DTYPES = "?fdFD"
_DTYPE_ERROR = "Only bool, float32, float64, complex64 and complex128 are supported"


def _isdense(x):
    return x.__class__ is ndarray


def _isshape(x):
    return isinstance(x, tuple) and len(x) == 2 and all(isinstance(v, (int, np.integer)) for v in x)


def _isscalarlike(x):
    return np.isscalar(x) or _isdense(x) and x.ndim == 0


def _check_dtype(dtype):
    if np.dtype(dtype).char not in _DTYPES:
        raise ValueError(_DTYPE_ERROR)


class spmatrix:
    """The base class (CuPy's: not to be instantiated)."""
    __array_priority__ = 101
    format = None

    def __init__(self, maxprint=50):
        if self.__class__ is spmatrix:
            raise ValueError("This class is not intended to be instantiated directly.")
        self.maxprint = maxprint

    # ------------------------------------------------ metadata
    shape = property(lambda self: self._shape)
    ndim = property(lambda self: 2)
    dtype = property(lambda self: self.data.dtype)
    nnz = property(lambda self: self.data.size)
    size = property(lambda self: self.data.size)
    device = property(lambda self: self.data.device)

    def get_shape(self):
        return self._shape

    def getformat(self):
        return self.format

    def getnnz(self, axis=None):
        if axis is not None:
            raise NotImplementedError(f"{type(self).__name__}.getnnz(axis=) is not available on emulated CUDA devices")
        return self.nnz

    def _arrays(self):
        return (self.data,) + self._index_arrays()

    def _host(self):
        """The SciPy matrix over this one's host memory (no copy), after CuPy's device check."""
        cur = rt.current()
        return self._scipy(*(unwrap(a, cur) for a in self._arrays()))

    # ------------------------------------------------ strictness: no implicit trip to the host
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_array._IMPLICIT)

    def __len__(self):
        raise TypeError("sparse matrix length is ambiguous; use getnnz() or shape[0]")

    def __bool__(self):
        if self._shape == (1, 1):
            return self.nnz != 0
        raise ValueError("The truth value of an array with more than one element is ambiguous. "
                         "Use a.any() or a.all().")

    __nonzero__ = __bool__

    def get(self, stream=None):
        """A copy on the host: SciPy's matrix of the same format."""
        return self._host().copy()

    def __str__(self):
        return str(self.get())

    def __repr__(self):
        return (f"<{self._shape[0]}x{self._shape[1]} sparse matrix of type '{self.dtype.type}'\n\twith {self.nnz} "
                f"stored elements in {_FORMAT_NAMES[self.format]} format, device=cuda:{self.data._dev} (emulated)>")

    # ------------------------------------------------ conversions
    def toarray(self, order=None, out=None):
        if out is not None:
            raise NotImplementedError("toarray(out=) is not available on emulated CUDA devices")
        return wrap(self._host().toarray(order=order))

    def todense(self, order=None, out=None):
        return self.toarray(order, out)

    def asformat(self, format):
        if format is None or format == self.format:
            return self
        convert = getattr(self, "to" + format, None)
        if convert is None:
            raise ValueError(f"Format {format} is unknown.")
        return convert()

    def astype(self, t):
        return self._with_data(self.data.astype(t))

    def copy(self):
        return self._with_data(self.data.copy(), copy=True)

    def conj(self, copy=True):
        return self._with_data(self.data.conj(), copy=copy) if self.dtype.kind == "c" else \
            (self.copy() if copy else self)

    conjugate = conj

    @property
    def T(self):
        return self.transpose()

    # ------------------------------------------------ arithmetic
    def __neg__(self):
        return self._with_data(-self.data)

    def __mul__(self, other):
        if _isscalarlike(other):
            m = self.tocsr()
            m.sum_duplicates()
            return m._with_data(m.data * other)
        return self._matmul(other)

    def __rmul__(self, other):
        if _isscalarlike(other):
            return self * other
        return NotImplemented

    def __truediv__(self, other):
        if _isscalarlike(other):
            return self._with_data(self.data / other)
        raise NotImplementedError("division of sparse matrices by non-scalars is not available on emulated CUDA "
                                  "devices")

    def __matmul__(self, other):
        if _isscalarlike(other):
            raise ValueError("Scalar operands are not allowed, use '*' instead")
        return self._matmul(other)

    def __rmatmul__(self, other):
        if _isscalarlike(other):
            raise ValueError("Scalar operands are not allowed, use '*' instead")
        if _isdense(other):  # dense @ sparse = (sparseᵀ @ denseᵀ)ᵀ, as CuPy computes it
            return (self.transpose()._matmul(other.T)).T
        return NotImplemented

    def dot(self, other):
        if _isscalarlike(other):
            return self * other
        return self @ other

    def _matmul(self, other):
        """CuPy's product through cuSPARSE: a dense result (Fortran order, as cuSPARSE writes it) for a dense
        operand, a CSR matrix for a sparse one; the dtype is the operands' promoted one."""
        if isinstance(other, spmatrix):
            if self._shape[1] != other.shape[0]:
                raise ValueError("dimension mismatch")
            a, b = self.tocsr(), other.tocsr()
            dtype = np.promote_types(a.dtype, b.dtype)
            _check_product_dtype(dtype)
            return csr_matrix(a._host().astype(dtype) @ b._host().astype(dtype))
        if not _isdense(other):
            if isinstance(other, np.ndarray):
                raise TypeError(f"Unsupported type {type(other)}")
            return NotImplemented
        if other.ndim not in (1, 2):
            raise ValueError("could not interpret dimensions")
        if other.shape[0] != self._shape[1]:
            raise ValueError("dimension mismatch")
        cur = rt.current()
        dense = unwrap(other, cur)
        dtype = np.promote_types(self.dtype, dense.dtype)
        _check_product_dtype(dtype)
        # CuPy multiplies a CSR matrix with its repeated entries summed (in its own dtype), then casts
        host = self._host().tocsr()
        host.sum_duplicates()
        out = np.asfortranarray(host.astype(dtype) @ dense.astype(dtype, copy=False))
        return wrap(out, cur)


def _check_product_dtype(dtype):
    # cuSPARSE's products take the four float types only ('s', 'd', 'c', 'z' routines)
    if np.dtype(dtype).char not in "fdFD":
        raise TypeError(f"Unsupported dtype (actual: {np.dtype(dtype)})")


_FORMAT_NAMES = {"coo": "COOrdinate", "csr": "Compressed Sparse Row"}


def _check_index_bounds(row, col, shape):
    if row.size:
        if int(row.max()) >= shape[0]:
            raise ValueError("row index exceeds matrix dimensions")
        if int(col.max()) >= shape[1]:
            raise ValueError("column index exceeds matrix dimensions")
        if int(row.min()) < 0:
            raise ValueError("negative row index found")
        if int(col.min()) < 0:
            raise ValueError("negative column index found")


class coo_matrix(spmatrix):
    """cupyx.scipy.sparse.coo_matrix((data, (row, col)), shape=None, dtype=None, copy=False), or from a sparse
    matrix (this module's or SciPy's), a shape, or a dense device array."""
    format = "coo"

    def __init__(self, arg1, shape=None, dtype=None, copy=False):
        if shape is not None and len(shape) != 2:
            raise ValueError("Only two-dimensional sparse arrays are supported.")
        canonical = False
        if isinstance(arg1, spmatrix):
            x = arg1.asformat("coo")
            data, row, col = x.data, x.row, x.col
            copy = copy and arg1.format == "coo"
            shape = arg1.shape if shape is None else shape
            canonical = x.has_canonical_format
        elif _isshape(arg1):
            shape = (int(arg1[0]), int(arg1[1]))
            data = wrap(np.zeros(0, dtype if dtype else "d"))
            row, col = wrap(np.zeros(0, "i")), wrap(np.zeros(0, "i"))
            copy, canonical = False, True
        elif scipy.sparse.issparse(arg1):  # from the host: copied to the current device
            x = arg1.tocoo()
            data, row, col = wrap(np.array(x.data)), wrap(x.row.astype("i")), wrap(x.col.astype("i"))
            copy, canonical = False, x.has_canonical_format
            shape = arg1.shape if shape is None else shape
        elif isinstance(arg1, tuple) and len(arg1) == 2:
            try:
                data, (row, col) = arg1
            except (TypeError, ValueError):
                raise TypeError("invalid input format")
            if not all(_isdense(a) and a.ndim == 1 for a in (data, row, col)):
                raise ValueError("row, column, and data arrays must be 1-D")
            if not len(data) == len(row) == len(col):
                raise ValueError("row, column, and data array must all be the same length")
        elif _isdense(arg1):
            if arg1.ndim > 2:
                raise TypeError("expected dimension <= 2 array or matrix")
            dense = unwrap(arg1, rt.current())
            dense = dense.reshape((1,) * (2 - dense.ndim) + dense.shape)
            r, c = dense.nonzero()
            data, row, col = wrap(dense[r, c]), wrap(r.astype("i")), wrap(c.astype("i"))
            shape, canonical = dense.shape, True
        else:
            raise TypeError("invalid input format")
        dtype = data.dtype if dtype is None else np.dtype(dtype)
        _check_dtype(dtype)
        self.data = data.astype(dtype, copy=copy)
        self.row, self.col = row.astype("i", copy=copy), col.astype("i", copy=copy)
        if shape is None:
            if len(row) == 0:
                raise ValueError("cannot infer dimensions from zero sized index arrays")
            shape = (int(row.max()) + 1, int(col.max()) + 1)
        _check_index_bounds(self.row, self.col, shape)
        if not _isshape(tuple(shape)):
            raise ValueError("invalid shape (must be a 2-tuple of int)")
        self._shape = int(shape[0]), int(shape[1])
        self.has_canonical_format = canonical
        spmatrix.__init__(self)

    def _index_arrays(self):
        return self.row, self.col

    def _scipy(self, data, row, col):
        return scipy.sparse.coo_matrix((data, (row, col)), shape=self._shape)

    def _with_data(self, data, copy=True):
        row, col = (self.row.copy(), self.col.copy()) if copy else (self.row, self.col)
        return coo_matrix((data, (row, col)), shape=self._shape, dtype=data.dtype)

    def sum_duplicates(self):
        """In place: entries sorted row-major, repeated ones added together."""
        if self.has_canonical_format:
            return
        h = self._host().copy()
        h.sum_duplicates()
        self.data, self.row, self.col = wrap(h.data), wrap(h.row.astype("i")), wrap(h.col.astype("i"))
        self.has_canonical_format = True

    def tocoo(self, copy=False):
        return self.copy() if copy else self

    def tocsr(self, copy=False):
        # repeated entries are added up (CuPy's coo→csr sums duplicates first)
        return csr_matrix(self._host().tocsr())

    def transpose(self, axes=None, copy=False):
        if axes is not None:
            raise ValueError("Sparse matrices do not support an 'axes' parameter because swapping dimensions is "
                             "the only logical permutation.")
        return coo_matrix((self.data, (self.col, self.row)), shape=self._shape[::-1], copy=copy)

    def sum(self, axis=None, dtype=None, out=None):
        return self.tocsr().sum(axis, dtype, out)


class csr_matrix(spmatrix):
    """cupyx.scipy.sparse.csr_matrix((data, indices, indptr) or (data, (row, col)), shape=None, dtype=None,
    copy=False), or from a sparse matrix (this module's or SciPy's), a shape, or a dense device array."""
    format = "csr"

    def __init__(self, arg1, shape=None, dtype=None, copy=False):
        if shape is not None:
            if not _isshape(tuple(shape)):
                raise ValueError("invalid shape (must be a 2-tuple of int)")
            shape = int(shape[0]), int(shape[1])
        if isinstance(arg1, spmatrix):
            x = arg1.asformat("csr")
            data, indices, indptr = x.data, x.indices, x.indptr
            copy = copy and arg1.format == "csr"
            shape = arg1.shape if shape is None else shape
        elif _isshape(arg1):
            shape = (int(arg1[0]), int(arg1[1]))
            data, indices = wrap(np.zeros(0, dtype if dtype else "d")), wrap(np.zeros(0, "i"))
            indptr, copy = wrap(np.zeros(shape[0] + 1, "i")), False
        elif scipy.sparse.issparse(arg1):  # from the host: copied to the current device
            x = arg1.tocsr()
            data, indices, indptr = wrap(np.array(x.data)), wrap(x.indices.astype("i")), wrap(x.indptr.astype("i"))
            copy = False
            shape = arg1.shape if shape is None else shape
        elif isinstance(arg1, tuple) and len(arg1) == 2:
            x = coo_matrix(arg1, shape=shape, dtype=dtype, copy=copy).tocsr()
            data, indices, indptr = x.data, x.indices, x.indptr
            shape = x.shape
        elif isinstance(arg1, tuple) and len(arg1) == 3:
            data, indices, indptr = arg1
            if not all(_isdense(a) and a.ndim == 1 for a in (data, indices, indptr)):
                raise ValueError("data, indices, and indptr should be 1-D")
            if len(data) != len(indices):
                raise ValueError("indices and data should have the same size")
        elif _isdense(arg1):
            if arg1.ndim > 2:
                raise ValueError("expected dimension <= 2 array or matrix")
            dense = unwrap(arg1, rt.current())
            x = scipy.sparse.csr_matrix(dense.reshape((1,) * (2 - dense.ndim) + dense.shape))
            data, indices, indptr = wrap(x.data), wrap(x.indices.astype("i")), wrap(x.indptr.astype("i"))
            shape, copy = x.shape, False
        else:
            raise ValueError("Unsupported initializer format")
        dtype = data.dtype if dtype is None else np.dtype(dtype)
        _check_dtype(dtype)
        self.data = data.astype(dtype, copy=copy)
        self.indices, self.indptr = indices.astype("i", copy=copy), indptr.astype("i", copy=copy)
        if shape is None:
            shape = (len(indptr) - 1, int(indices.max()) + 1 if len(indices) else 0)
        self._shape = int(shape[0]), int(shape[1])
        spmatrix.__init__(self)

    def _index_arrays(self):
        return self.indices, self.indptr

    def _scipy(self, data, indices, indptr):
        return scipy.sparse.csr_matrix((data, indices, indptr), shape=self._shape)

    def _with_data(self, data, copy=True):
        indices, indptr = (self.indices.copy(), self.indptr.copy()) if copy else (self.indices, self.indptr)
        return csr_matrix((data, indices, indptr), shape=self._shape, dtype=data.dtype)

    @property
    def has_canonical_format(self):
        return self._host().has_canonical_format

    def sum_duplicates(self):
        if self.has_canonical_format:
            return
        h = self._host().copy()
        h.sum_duplicates()
        self.data, self.indices, self.indptr = wrap(h.data), wrap(h.indices.astype("i")), wrap(h.indptr.astype("i"))

    def tocsr(self, copy=False):
        return self.copy() if copy else self

    def tocoo(self, copy=False):
        return coo_matrix(self._host().tocoo())

    def transpose(self, axes=None, copy=False):
        # CuPy's transpose of a CSR matrix is a CSC matrix, which the emulated devices do not have
        raise NotImplementedError("cupyx.scipy.sparse.csr_matrix.transpose (a csc_matrix) is not available on "
                                  "emulated CUDA devices; transpose a coo_matrix instead")

    def sum(self, axis=None, dtype=None, out=None):
        if out is not None:
            raise NotImplementedError("sum(out=) is not available on emulated CUDA devices")
        r = self._host().sum(axis=axis, dtype=dtype)
        return wrap(np.asarray(r))


def issparse(x):
    return isinstance(x, spmatrix)


isspmatrix = issparse


def isspmatrix_coo(x):
    return isinstance(x, coo_matrix)


def isspmatrix_csr(x):
    return isinstance(x, csr_matrix)


def module_impl():
    return {"spmatrix": spmatrix, "coo_matrix": coo_matrix, "csr_matrix": csr_matrix, "issparse": issparse,
            "isspmatrix": isspmatrix, "isspmatrix_coo": isspmatrix_coo, "isspmatrix_csr": isspmatrix_csr,
            "SparseWarning": scipy.sparse.SparseWarning,
            "SparseEfficiencyWarning": scipy.sparse.SparseEfficiencyWarning}
