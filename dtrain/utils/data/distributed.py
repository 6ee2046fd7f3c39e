"""DistributedSampler: each rank reads its own 1/num_replicas share of a dataset."""
import math

from dtrain._ops.creation import randperm
from dtrain.random import Generator

from .sampler import Sampler

__all__ = ["DistributedSampler"]


def _dist_value(name):
    import importlib
    try:
        dist = importlib.import_module("dtrain.distributed")
    except ImportError:
        dist = None
    if dist is None or not getattr(dist, "is_available", lambda: False)():
        raise RuntimeError("Requires distributed package to be available")
    if hasattr(dist, "is_initialized") and not dist.is_initialized():
        raise ValueError("Default process group has not been initialized, please make sure to call "
                         "init_process_group.")
    return getattr(dist, name)()


class DistributedSampler(Sampler):
    """Partition a dataset over `num_replicas` ranks (defaults: the world size and rank of the default group).

    Without drop_last the index list is padded by repeating it from the start until it divides evenly; rank r
    reads indices[r::num_replicas]. With shuffle, every rank draws the same permutation from seed + epoch (call
    set_epoch each epoch); it is reproducible but not torch's permutation for the same seed."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None:
            num_replicas = _dist_value("get_world_size")
        if rank is None:
            rank = _dist_value("get_rank")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        if self.drop_last and len(self.dataset) % self.num_replicas != 0:
            # drop the tail so every rank gets the same number of samples
            self.num_samples = math.ceil((len(self.dataset) - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(len(self.dataset) / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        if self.shuffle:
            g = Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = randperm(len(self.dataset), generator=g).tolist()
        else:
            indices = list(range(len(self.dataset)))
        if not self.drop_last:
            padding_size = self.total_size - len(indices)
            if padding_size <= len(indices):
                indices += indices[:padding_size]
            else:
                indices += (indices * math.ceil(padding_size / len(indices)))[:padding_size]
        else:
            indices = indices[:self.total_size]
        assert len(indices) == self.total_size
        indices = indices[self.rank:self.total_size:self.num_replicas]
        assert len(indices) == self.num_samples
        return iter(indices)

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Set the epoch that seeds the shuffle: without it every epoch repeats the same order."""
        self.epoch = epoch
