"""Inputs every rank can rebuild for every other rank, so each rank checks results against NumPy locally."""
import zlib

import numpy as np

import dtrain

DTYPES = ["float32", "float64", "int64", "int32", "float16"]
OPS = ["SUM", "AVG", "PRODUCT", "MIN", "MAX"]


def data(rank, shape, dtype, salt=""):
    """Small integers (as `dtype`): sums and products of up to 4 ranks stay exact in every dtype."""
    rng = np.random.default_rng(zlib.crc32(f"{rank}/{salt}/{shape}".encode()))
    return rng.integers(-3, 4, size=shape).astype(dtype)


def reduce_ref(arrays, op):
    stack = np.stack(arrays)
    if op == "SUM":
        return stack.sum(0, dtype=stack.dtype)
    if op == "AVG":
        return (stack.astype(np.float64).sum(0) / len(arrays)).astype(stack.dtype)
    if op == "PRODUCT":
        return stack.prod(0, dtype=stack.dtype)
    return stack.min(0) if op == "MIN" else stack.max(0)


def tensor(array, device):
    return dtrain.tensor(array, device=device)


def host(t):
    return dtrain._backend.to_numpy(t._data)
