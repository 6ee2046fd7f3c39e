"""Data parallelism: DataParallel (one process, several GPUs) and DistributedDataParallel (one process per rank)."""


def __getattr__(name):
    if name in ("DistributedDataParallel",):
        from .distributed import DistributedDataParallel
        return DistributedDataParallel
    if name == "DataParallel":
        from .data_parallel import DataParallel
        return DataParallel
    raise AttributeError(name)


from .data_parallel import DataParallel  # noqa: E402,F401
