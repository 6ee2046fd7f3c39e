"""The backend module: the per-device kernel table, and that device-dependent code lives nowhere else."""
import pathlib
import re

import numpy as np
import pytest
import scipy.linalg
import scipy.special

from dtrain import _backend

_ROOT = pathlib.Path(_backend.__file__).parent


def test_no_device_branches_outside_the_backend():
    # "one place knows about CuPy": an op asks kernels[xp], it never tests which module it has nor imports cupyx
    pattern = re.compile(r"\bxp is (not )?np\b|^\s*(import|from) cupyx?\b|is_cupy_array\(", re.M)
    offenders = []
    for path in sorted(_ROOT.rglob("*.py")):
        rel = path.relative_to(_ROOT).as_posix()
        if rel == "_backend.py" or rel.startswith("_emulate/") or rel.startswith("_cuda_kernels/"):
            continue  # the emulator and the CUDA kernels are about CuPy arrays by definition
        for m in pattern.finditer(path.read_text()):
            line = path.read_text().count("\n", 0, m.start()) + 1
            offenders.append(f"{rel}:{line}: {m.group(0).strip()}")
    assert not offenders, "device branches outside dtrain/_backend.py:\n" + "\n".join(offenders)


def test_host_kernels_match_numpy_and_scipy():
    rng = np.random.default_rng(0)
    k = _backend.kernels[np]
    assert k.host and not k.native_float16
    out, ref = np.zeros(5), np.zeros(5)
    key, vals = np.array([0, 3, 3, 1, 3]), rng.standard_normal(5)
    k.scatter_add(out, key, vals)
    for i, v in zip(key, vals):
        ref[i] += v
    np.testing.assert_allclose(out, ref, rtol=1e-15)
    out = np.ones(4)
    k.ufunc_at("multiply")(out, np.array([1, 1, 2]), np.array([2.0, 3.0, 5.0]))
    np.testing.assert_array_equal(out, [1, 6, 5, 1])
    a = rng.standard_normal((3, 6))
    np.testing.assert_array_equal(k.accumulate(np.maximum, a, 1), np.maximum.accumulate(a, axis=1))
    x = rng.standard_normal(7)
    np.testing.assert_array_equal(k.special("erf")(x), scipy.special.erf(x))
    m = rng.standard_normal((4, 4))
    lu, piv = k.lu_factor(m)
    ref_lu, ref_piv = scipy.linalg.lu_factor(m)
    np.testing.assert_array_equal(lu, ref_lu)
    np.testing.assert_array_equal(piv, ref_piv)
    b = rng.standard_normal((4, 2))
    x = k.solve_triangular(m, b, 0, True, False)
    np.testing.assert_allclose(np.tril(m) @ x, b, rtol=1e-10, atol=1e-12)
    # trtrs refuses a zero pivot where torch's trsm divides by it: NaN, not an exception
    assert np.isnan(k.solve_triangular(np.zeros((2, 2)), np.ones((2, 1)), 0, True, False)).all()


def test_cuda_kernels_are_made_per_array_module_on_first_lookup():
    class FakeModule:  # stands for cupy (or its emulation): the table never imports it itself
        pass

    fake = FakeModule()
    table = _backend._KernelTable({np: _backend.kernels[np]})
    k = table[fake]
    assert table[fake] is k and k.xp is fake and not k.host and k.native_float16 and k.accumulate is None
    assert table[np] is _backend.kernels[np]


def test_on_device_is_a_no_op_for_the_cpu():
    import dtrain
    with _backend.on_device(dtrain.device("cpu")):
        pass
    assert dtrain.device("cpu")._gpu is None and dtrain.device("meta")._gpu is None
    assert dtrain.device("cuda", 1)._gpu == 1 and dtrain.device("cuda")._gpu is None
