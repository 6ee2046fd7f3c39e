"""Shared fixtures: every test that takes `device` runs on the CPU and, where CUDA is usable, on the GPU."""
import os
import zlib

import numpy as np
import pytest

import dtrain


def _devices():
    devs = ["cpu"]
    if dtrain.cuda.is_available():
        devs.append("cuda")
    return devs


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", [pytest.param(d, marks=pytest.mark.cuda) if d == "cuda" else d
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
    key = request.node.nodeid.replace("[cuda-", "[").replace("[cpu-", "[").replace("[cuda]", "").replace("[cpu]", "")
    helpers._rng = np.random.default_rng(zlib.crc32(key.encode()))
    yield
