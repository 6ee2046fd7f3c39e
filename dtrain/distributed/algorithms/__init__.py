"""Algorithms on top of the collectives: DDP communication hooks, and the join context manager for uneven
inputs."""
from .join import Join, JoinHook, Joinable  # noqa: F401
