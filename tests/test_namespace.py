"""The torch namespace pieces that scripts touch in passing."""
import pytest
import torch

import dtrain


def test_backends_flags_are_settable():
    dtrain.backends.cudnn.benchmark = True
    assert dtrain.backends.cudnn.benchmark is True
    dtrain.backends.cuda.matmul.allow_tf32 = True
    assert dtrain.backends.cuda.matmul.allow_tf32 is True
    assert dtrain.backends.mps.is_available() is False


def test_hasattr_is_false_for_what_dtrain_lacks():
    assert not hasattr(dtrain, "no_such_thing")
    assert hasattr(dtrain, "nn") and hasattr(dtrain, "optim") and hasattr(dtrain, "distributed")


def test_op_modules_export_only_their_own_functions():
    # helpers an op module imports (from _ops._util, autograd, random) are not torch names
    for name in ("cast", "promote", "method", "out_copy", "unbroadcast", "wrap_dim", "to_float", "deliver",
                 "grad_destination", "default_generator_for"):
        assert not hasattr(dtrain, name) and not hasattr(torch, name), name
    for name in ("erfc", "quantile", "scatter_reduce", "sort", "gather", "svd", "det", "inverse"):
        assert getattr(dtrain, name).__module__.startswith("dtrain._ops."), name


def test_cpu_amp_autocast_alias():
    with dtrain.cpu.amp.autocast():
        y = dtrain.ones(2) * 2
    assert y.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("name", ["CharTensor", "ShortTensor", "FloatTensor", "LongTensor"])
def test_legacy_tensor_types(name):
    t = getattr(dtrain, name)([1, 2])
    assert str(t.dtype) == str(getattr(torch, name)([1, 2]).dtype)


def test_assert_close_matches_torch_tolerances():
    a = dtrain.tensor([1.0, 2.0])
    dtrain.testing.assert_close(a, a + 1e-7)
    with pytest.raises(AssertionError, match="not close"):
        dtrain.testing.assert_close(a, a + 1e-3)
    with pytest.raises(AssertionError, match="dtype"):
        dtrain.testing.assert_close(a, a.double())
    dtrain.testing.assert_close({"w": [a]}, {"w": [a.clone()]})


def test_can_cast_matches_torch():
    names = ["bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64", "complex64"]
    for a in names:
        for b in names:
            assert dtrain.can_cast(getattr(dtrain, a), getattr(dtrain, b)) == \
                torch.can_cast(getattr(torch, a), getattr(torch, b)), (a, b)


def test_get_num_threads_follows_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert dtrain.get_num_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert dtrain.get_num_threads() >= 1


def test_deterministic_algorithms_setting_round_trips():
    for m in (torch, dtrain):
        try:
            m.use_deterministic_algorithms(True, warn_only=True)
            assert m.are_deterministic_algorithms_enabled() and m.is_deterministic_algorithms_warn_only_enabled()
        finally:
            m.use_deterministic_algorithms(False)
        assert not m.are_deterministic_algorithms_enabled()
        with pytest.raises(TypeError, match="argument 'mode' \\(position 1\\) must be bool, not int"):
            m.use_deterministic_algorithms(1)


def test_typename_and_is_storage_like_torch():
    for expr in ("m.ones(2)", "m.ones(2, dtype=m.long)", "m.ones(2, dtype=m.float64)", "1", "'a'", "[]", "len"):
        assert dtrain.typename(eval(expr, {"m": dtrain})) == torch.typename(eval(expr, {"m": torch})), expr
    assert dtrain.typename(dtrain.nn.Linear(1, 1)) == "dtrain.nn.modules.linear.Linear"
    assert not dtrain.is_storage(dtrain.ones(2)) and not dtrain.is_storage([1])
