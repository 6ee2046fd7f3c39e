"""One default process group per test process: a world of 1 under plain pytest, of N under mpiexec -n N."""
import pytest

import dtrain.distributed as dist


@pytest.fixture(scope="session")
def world():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    return dist.group.WORLD
