"""profile, record_function, schedule and tensorboard_trace_handler (torch.profiler's), over two hooks: in
Function.apply, where while a profile records every op call is timed on the CPU and, for CUDA tensors with the
CUDA activity on, between two CUDA events around it; and in the backward engine, around each node.

What dtrain records, beside torch: each forward op once, under `aten::<op>` (its own sub-ops are not listed);
each backward node as torch's engine records it (`autograd::engine::evaluate_function: AddmmBackward0` around
`AddmmBackward0`, CPU time only), without the aten ops inside it; no memory, stacks, FLOPs or module hierarchy
(those arguments warn)."""
import enum
import os
import socket
import threading
import time
import warnings
from contextlib import ContextDecorator

from ..autograd import graph as _graph
from ._events import EventList, FunctionEvent


class ProfilerActivity(enum.Enum):
    CPU = 0
    XPU = 1
    MTIA = 2
    CUDA = 3
    HPU = 4
    PrivateUse1 = 5


class ProfilerAction(enum.Enum):
    NONE = 0
    WARMUP = 1
    RECORD = 2
    RECORD_AND_SAVE = 3


def supported_activities():
    from .. import cuda
    return {ProfilerActivity.CPU} | ({ProfilerActivity.CUDA} if cuda.is_available() else set())


def schedule(*, wait: int, warmup: int, active: int, repeat: int = 0, skip_first: int = 0,
             skip_first_wait: int = 0):
    """Step → action: skip_first steps, then cycles of `wait` idle, `warmup` (ops run, nothing kept) and `active`
    recorded steps, the last of which hands the cycle to on_trace_ready; `repeat` cycles (0: no end)."""
    if wait < 0 or warmup < 0 or active <= 0 or repeat < 0 or skip_first < 0:
        raise AssertionError(
            f"Invalid profiler schedule arguments. Got wait={wait} (need >= 0), warmup={warmup} (need >= 0), "
            f"active={active} (need > 0), repeat={repeat} (need >= 0), skip_first={skip_first} (need >= 0).")
    if warmup == 0:
        warnings.warn("Profiler won't be using warmup, this can skew profiler results", stacklevel=2)

    def schedule_fn(step: int) -> ProfilerAction:
        if step < 0:
            raise AssertionError(f"Step must be non-negative. Got {step}.")
        if step < skip_first:
            return ProfilerAction.NONE
        step -= skip_first
        if skip_first_wait != 0:
            step += wait
        n = wait + warmup + active
        if repeat > 0 and step / n >= repeat:
            return ProfilerAction.NONE
        k = step % n
        if k < wait:
            return ProfilerAction.NONE
        if k < wait + warmup:
            return ProfilerAction.WARMUP
        return ProfilerAction.RECORD if k < n - 1 else ProfilerAction.RECORD_AND_SAVE
    return schedule_fn


def _default_schedule(step):
    return ProfilerAction.RECORD


_op_names = {}


def _op_name(cls):
    """aten::<snake_case of the op class> (Addmm → aten::addmm, LogSoftmax → aten::log_softmax), or the
    class's own `_aten` where torch's top op is named otherwise."""
    name = _op_names.get(cls)
    if name is None and getattr(cls, "_aten", None):
        name = _op_names[cls] = cls._aten
    if name is None:
        n = cls._op
        snake = "".join("_" + c.lower() if c.isupper() and i and not n[i - 1].isupper() else c.lower()
                        for i, c in enumerate(n))
        name = _op_names[cls] = "aten::" + snake
    return name


class _Open:
    """An event being recorded: its CPU start, the CPU time of its children, its CUDA events."""
    __slots__ = ("name", "start", "child", "shapes", "user", "parent", "cuda", "dev", "thread", "id", "dev_child")

    def __init__(self, name, start, shapes, user, parent, thread, id):
        self.name, self.start, self.child, self.shapes, self.user = name, start, 0, shapes, user
        self.parent, self.thread, self.id, self.cuda, self.dev, self.dev_child = parent, thread, id, None, None, []


class _Recorder:
    """The events of one recording (one active cycle of a schedule), per thread nested as they ran."""

    def __init__(self, record_shapes, cuda):
        self.record_shapes, self.cuda = record_shapes, cuda
        self.t0 = time.perf_counter_ns()
        self.wall0_us = time.time_ns() / 1e3
        self.local = threading.local()
        self.closed = []  # (_Open, end_ns) in the order they ended
        self.ids = 0
        self.ref = None  # a CUDA event at the start: the zero of the device timeline
        if cuda:
            from .. import cuda as _cuda
            self.ref = _cuda.Event(enable_timing=True)
            self.ref.record()

    def begin(self, name, user, shapes=None):
        stack = getattr(self.local, "stack", None)
        if stack is None:
            stack = self.local.stack = []
        self.ids += 1
        ev = _Open(name, time.perf_counter_ns(), shapes, user, stack[-1] if stack else None,
                   threading.get_ident(), self.ids)
        stack.append(ev)
        return ev

    def end(self, ev):
        now = time.perf_counter_ns()
        stack = self.local.stack
        while stack and stack[-1] is not ev:  # a range left open by an exception: close it here
            self.end(stack[-1])
        if stack:
            stack.pop()
        if ev.parent is not None:
            ev.parent.child += now - ev.start
            ev.parent.dev_child.append(ev)
        self.closed.append((ev, now))

    def events(self):
        """FunctionEvents in start order, device times resolved (this waits for the device)."""
        out, by_open = [], {}
        for ev, end in sorted(self.closed, key=lambda p: p[0].start):
            dev_us, dev_start = 0.0, None
            if ev.cuda is not None:
                start_e, end_e = ev.cuda
                end_e.synchronize()
                dev_us = start_e.elapsed_time(end_e) * 1e3
                dev_start = self.ref.elapsed_time(start_e) * 1e3
            fe = FunctionEvent(ev.id, ev.name, ev.thread, (ev.start - self.t0) / 1e3, (end - self.t0) / 1e3,
                               ev.child / 1e3, ev.shapes, ev.user, by_open.get(id(ev.parent)), ev.dev, dev_start,
                               dev_us)
            if fe.cpu_parent is not None:
                fe.cpu_parent.cpu_children.append(fe)
            by_open[id(ev)] = fe
            out.append(fe)
        for fe in reversed(out):  # a range's device time is its ops' (children end before their parents)
            if fe.cpu_parent is not None:
                fe.cpu_parent.device_time_total += fe.device_time_total
        return out


_active = None  # the profile recording now (one at a time, as torch allows one per thread)


def _op_hook(cls, inputs, params):
    rec = _active._rec
    _graph._profiler_hook = None  # the nested apply runs the op itself
    try:
        shapes = [list(t.shape) for t in inputs] if rec.record_shapes else None
        ev = rec.begin(_op_name(cls), False, shapes)
        dev = inputs[0]._device if inputs else None
        if rec.cuda and dev is not None and dev.type == "cuda":
            from .. import cuda as _cuda
            ev.cuda = (_cuda.Event(enable_timing=True), _cuda.Event(enable_timing=True))
            ev.dev = dev.index or 0
            ev.cuda[0].record()
        try:
            return cls.apply(*inputs, **params)
        finally:
            if ev.cuda is not None:
                ev.cuda[1].record()
            rec.end(ev)
    finally:
        if _active is not None and _active._rec is rec:
            _graph._profiler_hook = _op_hook


class _NodeRange:
    """One backward node run by the engine, recorded as torch's engine does: the range
    "autograd::engine::evaluate_function: <node>" around "<node>" (AddmmBackward0,
    torch::autograd::AccumulateGrad). CPU time only: a node's CUDA work is not timed separately."""
    __slots__ = ("rec", "ranges")

    def __init__(self, node):
        self.rec = _active._rec
        name = node.name()
        shapes = [] if self.rec.record_shapes else None
        self.ranges = (self.rec.begin("autograd::engine::evaluate_function: " + name, False, shapes),
                       self.rec.begin(name, False, shapes))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.rec.end(self.ranges[1])
        self.rec.end(self.ranges[0])


class record_function(ContextDecorator):
    """A named range in the profile (a context manager or a decorator); does nothing while no profile records."""

    def __init__(self, name: str, args=None):
        self.name, self.args = name, args
        self._open = []

    def __enter__(self):
        prof = _active
        if prof is not None and prof._rec is not None:
            rec = prof._rec
            self._open.append((rec, rec.begin(self.name, True, [] if rec.record_shapes else None)))
        else:
            self._open.append(None)
        return self

    def __exit__(self, *exc):
        entry = self._open.pop() if self._open else None
        if entry is not None:
            entry[0].end(entry[1])
        return False


_UNRECORDED = {"profile_memory": "memory", "with_stack": "stacks", "with_flops": "FLOPs",
               "with_modules": "module hierarchy", "experimental_config": "experimental_config",
               "execution_trace_observer": "execution traces",
               "custom_trace_id_callback": "trace ids", "post_processing_timeout_s": "post-processing (nothing to time out)"}


class profile:
    """torch.profiler.profile: a context manager (or start()/stop()) that times every op and record_function
    range while it records; `step()` moves a `schedule` along, `on_trace_ready(prof)` gets each finished cycle.

    CPU times are always recorded (dtrain's ops are timed on the CPU side even with activities=[CUDA]); CUDA
    times need ProfilerActivity.CUDA and CUDA tensors. See the module docstring for what is not recorded."""

    def __init__(self, *, activities=None, schedule=None, on_trace_ready=None, record_shapes=False,
                 profile_memory=False, with_stack=False, with_flops=False, with_modules=False,
                 experimental_config=None, execution_trace_observer=None, acc_events=False, use_cuda=None,
                 custom_trace_id_callback=None, post_processing_timeout_s=None):
        asked = dict(profile_memory=profile_memory, with_stack=with_stack, with_flops=with_flops,
                     with_modules=with_modules, experimental_config=experimental_config,
                     execution_trace_observer=execution_trace_observer,
                     custom_trace_id_callback=custom_trace_id_callback,
                     post_processing_timeout_s=post_processing_timeout_s)
        for k, v in asked.items():
            if v:
                warnings.warn(f"dtrain's profiler records no {_UNRECORDED[k]} ({k}={v!r} has no effect)",
                              UserWarning, stacklevel=2)
        acts = set(activities) if activities is not None else supported_activities()
        if use_cuda:
            warnings.warn("The attribute `use_cuda` will be deprecated soon, please use "
                          "``use_device = 'cuda'`` instead.", FutureWarning, stacklevel=2)
            acts.add(ProfilerActivity.CUDA)
        other = acts - {ProfilerActivity.CPU, ProfilerActivity.CUDA}
        if other:
            warnings.warn(f"dtrain's profiler records CPU and CUDA only: {sorted(a.name for a in other)} ignored",
                          UserWarning, stacklevel=2)
        if ProfilerActivity.CUDA in acts and ProfilerActivity.CUDA not in supported_activities():
            warnings.warn("CUDA is not available: the profile records CPU times only", UserWarning, stacklevel=2)
            acts.discard(ProfilerActivity.CUDA)
        self.activities = acts
        self.use_device = "cuda" if ProfilerActivity.CUDA in acts else None
        self.schedule = schedule if schedule is not None else _default_schedule
        self.on_trace_ready = on_trace_ready
        self.record_shapes = record_shapes
        self.acc_events = acc_events  # keep the events of earlier cycles (else each cycle starts empty)
        self.step_num = 0
        self.current_action = None
        self._rec = None  # the recorder of the cycle being recorded
        self._events = None  # the last finished cycle's events
        self._step_range = None

    # ------------------------------------------------------------ recording on and off
    def _start_recording(self):
        global _active
        if _active is not None and _active is not self:
            raise RuntimeError("Can't profile: another profiler is already recording (dtrain records one at a time)")
        self._rec = _Recorder(self.record_shapes, self.use_device == "cuda")
        _active = self
        _graph._profiler_hook, _graph._profiler_node = _op_hook, _NodeRange

    def _stop_recording(self):
        global _active
        self._close_step_range()
        rec, self._rec = self._rec, None
        _active = None
        _graph._profiler_hook = _graph._profiler_node = None
        events = rec.events()
        if self.acc_events and self._events is not None:
            events = list(self._events) + events
        self._events = EventList(events, use_device=self.use_device, pid=os.getpid(), wall0_us=rec.wall0_us)

    def _open_step_range(self):
        if self._rec is not None:
            self._step_range = self._rec.begin(f"ProfilerStep#{self.step_num}", True,
                                               [] if self.record_shapes else None)

    def _close_step_range(self):
        if self._step_range is not None and self._rec is not None:
            self._rec.end(self._step_range)
        self._step_range = None

    def _recording(self, action):
        return action in (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)

    def start(self):
        self.current_action = self.schedule(self.step_num)
        if self._recording(self.current_action):
            self._start_recording()
            if self.schedule is not _default_schedule:
                self._open_step_range()
        return self

    def stop(self):
        if self._rec is not None:
            self._stop_recording()
            if self.on_trace_ready is not None:
                self.on_trace_ready(self)

    def step(self):
        """The next training step begins: record, hand over or stop as the schedule says."""
        prev = self.current_action
        self._close_step_range()
        self.step_num += 1
        self.current_action = self.schedule(self.step_num)
        if self._rec is not None and (prev == ProfilerAction.RECORD_AND_SAVE or
                                      not self._recording(self.current_action)):
            self._stop_recording()
            if self.on_trace_ready is not None:
                self.on_trace_ready(self)
        if self._recording(self.current_action):
            if self._rec is None:
                self._start_recording()
            self._open_step_range()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # ------------------------------------------------------------ results
    def events(self):
        if self._events is None:
            raise AssertionError("Profiler must be initialized before getting the events: stop it first")
        return self._events

    def key_averages(self, group_by_input_shape=False, group_by_stack_n=0, group_by_overload_name=False):
        if group_by_input_shape and not self.record_shapes:
            raise AssertionError("Input shapes are not recorded: use record_shapes=True")
        return self.events().key_averages(group_by_input_shape, group_by_stack_n, group_by_overload_name)

    def export_chrome_trace(self, path):
        return self.events().export_chrome_trace(path)

    def table(self, *args, **kwargs):
        return self.key_averages().table(*args, **kwargs)


def tensorboard_trace_handler(dir_name, worker_name=None, use_gzip=False):
    """on_trace_ready that writes each cycle as `<worker>.<time_ns>.pt.trace.json[.gz]` into dir_name, the
    layout TensorBoard's profile plugin reads."""
    def handler(prof):
        os.makedirs(dir_name, exist_ok=True)
        name = worker_name or f"{socket.gethostname()}_{os.getpid()}"
        path = os.path.join(dir_name, f"{name}.{time.time_ns()}.pt.trace.json" + (".gz" if use_gzip else ""))
        prof.export_chrome_trace(path)
    return handler
