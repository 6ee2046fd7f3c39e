"""Shared fixtures: every test that takes `device` runs on the CPU and, where CUDA is usable, on the GPU."""
import os

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
def _seed():
    dtrain.manual_seed(0)
    yield
