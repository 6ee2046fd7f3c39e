"""dtrain.profiler (torch.profiler): per-op CPU (and CUDA) times, record_function ranges, schedules, tables
and Chrome traces. See profiler.py for what it records and what it does not."""
from ._events import EventList, FunctionEvent, FunctionEventAvg  # noqa: F401
from .profiler import (ProfilerAction, ProfilerActivity, profile, record_function, schedule,  # noqa: F401
                       supported_activities, tensorboard_trace_handler)

__all__ = ["ProfilerAction", "ProfilerActivity", "profile", "record_function", "schedule", "supported_activities",
           "tensorboard_trace_handler"]
