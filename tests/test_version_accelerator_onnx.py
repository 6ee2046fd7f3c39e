"""dtrain.version, dtrain.accelerator and dtrain.onnx against torch's (on this machine: no accelerator)."""
import re

import pytest
import torch

import dtrain


def test_version_names_as_torch():
    assert dtrain.version.__version__ == dtrain.__version__
    assert re.fullmatch(r"[0-9a-f]{40}|Unknown", dtrain.version.git_version)
    for name in ("__version__", "cuda", "git_version", "debug", "hip"):
        assert hasattr(torch.version, name) and hasattr(dtrain.version, name)
    assert (dtrain.version.cuda is None) == (not dtrain.cuda.is_available())
    if dtrain.version.cuda is not None:
        assert re.fullmatch(r"\d+\.\d+", dtrain.version.cuda)
    import dtrain.version as v  # importable as a module, as `import torch.version`
    assert v is dtrain.version


def _device_line(m):
    # the current tutorials' device line
    return m.accelerator.current_accelerator().type if m.accelerator.is_available() else "cpu"


def test_tutorial_device_line():
    want = "cuda" if dtrain.cuda.is_available() else "cpu"
    assert _device_line(dtrain) == want
    if not torch.accelerator.is_available():
        assert _device_line(torch) == want == "cpu"


@pytest.mark.skipif(dtrain.cuda.is_available(), reason="compares with torch's CPU build: no accelerator")
def test_without_an_accelerator_answers_as_torch():
    for m in (dtrain, torch):
        acc = m.accelerator
        assert acc.is_available() is False and acc.device_count() == 0
        assert acc.current_accelerator() is None and acc.current_accelerator(check_available=True) is None
    for call in (lambda m: m.accelerator.current_device_index(), lambda m: m.accelerator.synchronize(),
                 lambda m: m.accelerator.set_device_index(0), lambda m: m.accelerator.memory_allocated(),
                 lambda m: m.accelerator.empty_cache()):
        with pytest.raises(RuntimeError) as te:
            call(torch)
        with pytest.raises(RuntimeError) as de:
            call(dtrain)
        assert str(de.value) == str(te.value)
    with pytest.raises(ValueError) as te:
        torch.accelerator.set_device_index([0])
    with pytest.raises(ValueError) as de:
        dtrain.accelerator.set_device_index([0])
    assert str(de.value) == str(te.value)


@pytest.mark.cuda
def test_with_cuda_the_accelerator_is_cuda():
    acc = dtrain.accelerator
    assert acc.is_available() and acc.current_accelerator() == dtrain.device("cuda")
    assert acc.device_count() == dtrain.cuda.device_count()
    acc.set_device_index(0)
    assert acc.current_device_index() == dtrain.cuda.current_device() == 0
    with acc.device_index(acc.device_count() - 1):
        assert acc.current_device_index() == acc.device_count() - 1
    assert acc.current_device_index() == 0
    acc.synchronize()
    acc.synchronize("cuda:0")


def test_onnx_imports_and_export_says_it_is_not_implemented():
    import dtrain.onnx
    assert dtrain.onnx.is_in_onnx_export() is False
    with pytest.raises(NotImplementedError, match="ONNX export is not implemented"):
        dtrain.onnx.export(dtrain.nn.Linear(2, 2), (dtrain.randn(1, 2),), "model.onnx")
