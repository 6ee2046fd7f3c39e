"""Shared fixtures: every test that takes `device` runs on the CPU and, where CUDA is usable, on the GPU.

DTRAIN_TEST_CUDA_DEVICE=1 runs the CUDA half on "cuda:1" while device 0 stays current: what a user on a node's
second GPU gets, and every DDP rank but one that calls torch.cuda.set_device(rank) late or never. An op that
makes an array on the current device instead of its input's fails there (CuPy's "Array device must be same as
the current device"), which the default "cuda" (device 0, current) cannot show."""
import os
import re
import zlib

import numpy as np
import pytest

import dtrain


def _cuda_device():
    index = os.environ.get("DTRAIN_TEST_CUDA_DEVICE", "")
    if not index:
        return "cuda"
    if not index.isdigit() or int(index) >= dtrain.cuda.device_count():
        raise pytest.UsageError(f"DTRAIN_TEST_CUDA_DEVICE={index!r}: not one of the "
                                f"{dtrain.cuda.device_count()} CUDA devices")
    return f"cuda:{index}"


CUDA = _cuda_device() if dtrain.cuda.is_available() else None


def _devices():
    devs = ["cpu"]
    if CUDA is not None:
        devs.append(CUDA)
    return devs


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", [pytest.param(d, marks=pytest.mark.cuda) if d.startswith("cuda") else d
                                        for d in _devices()])


def pytest_collection_modifyitems(config, items):
    if dtrain.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords and "device" not in getattr(item, "callspec", type("", (), {"params": {}})).params:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed(request):
    dtrain.manual_seed(0)
    # the random inputs of helpers.make/check are this test's own, whichever tests ran before it (the device
    # left out of the key: the CPU and CUDA runs of a test see the same data)
    import helpers
    key = re.sub(r"\[(cpu|cuda(:\d+)?)\]", "", re.sub(r"\[(cpu|cuda(:\d+)?)-", "[", request.node.nodeid))
    helpers._rng = np.random.default_rng(zlib.crc32(key.encode()))
    yield


@pytest.fixture(autouse=True)
def _device_0_current():
    # under DTRAIN_TEST_CUDA_DEVICE the tested device is never the current one: each test starts on device 0,
    # whatever the test before it left current
    if CUDA is not None and CUDA != "cuda":
        from dtrain import _backend
        _backend.cupy().cuda.runtime.setDevice(0)
    yield
