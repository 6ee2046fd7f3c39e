"""What a profile recorded: one FunctionEvent per op call or record_function range, their per-name averages
(FunctionEventAvg), and EventList's table and Chrome-trace export in torch's formats. Times are microseconds."""
import gzip
import json
import os
from collections import namedtuple

Interval = namedtuple("Interval", "start end")

# torch's older column names, still what many scripts sort by
_ALIASES = {"cuda_time_total": "device_time_total", "self_cuda_time_total": "self_device_time_total",
            "cuda_time": "device_time", "self_cuda_time": "self_device_time"}


class FunctionEvent:
    """One call of an op (`aten::<name>`) or one record_function range, on one thread."""

    def __init__(self, id, name, thread, start_us, end_us, child_us, input_shapes, is_user_annotation, parent,
                 device_index=None, device_start_us=None, device_us=0.0):
        self.id, self.name, self.thread = id, name, thread
        self.time_range = Interval(start_us, end_us)
        self.cpu_time_total = end_us - start_us
        self.self_cpu_time_total = self.cpu_time_total - child_us
        self.input_shapes = input_shapes
        self.is_user_annotation = is_user_annotation
        self.cpu_parent = parent
        self.cpu_children = []
        self.device_index, self.device_start_us = device_index, device_start_us
        self.self_device_time_total = device_us  # an op's own kernels (ranges have none of their own)
        self.device_time_total = device_us  # ranges add their ops' (filled in by the recorder)
        self.count = 1

    @property
    def key(self):
        return self.name

    def __getattr__(self, name):
        if name in _ALIASES:
            return getattr(self, _ALIASES[name])
        raise AttributeError(f"'FunctionEvent' object has no attribute '{name}'")

    def __repr__(self):
        return (f"<FunctionEvent id={self.id} name={self.name} cpu_time={_fmt(self.cpu_time_total)} "
                f"start_us={self.time_range.start:.3f} end_us={self.time_range.end:.3f} "
                f"input_shapes={self.input_shapes}>")


class FunctionEventAvg:
    """The calls of one name (and, if grouped so, one list of input shapes) added up."""

    def __init__(self, key, input_shapes):
        self.key, self.input_shapes = key, input_shapes
        self.count = 0
        self.cpu_time_total = self.self_cpu_time_total = 0.0
        self.device_time_total = self.self_device_time_total = 0.0
        self.is_user_annotation = False
        self.cpu_parent = None  # set while every call of the name is top-level (for top_level_events_only)

    def add(self, evt):
        self.count += evt.count
        self.cpu_time_total += evt.cpu_time_total
        self.self_cpu_time_total += evt.self_cpu_time_total
        self.device_time_total += evt.device_time_total
        self.self_device_time_total += evt.self_device_time_total
        self.is_user_annotation = evt.is_user_annotation
        if evt.cpu_parent is not None:
            self.cpu_parent = evt.cpu_parent
        return self

    @property
    def cpu_time(self):
        return self.cpu_time_total / max(self.count, 1)

    @property
    def device_time(self):
        return self.device_time_total / max(self.count, 1)

    def __getattr__(self, name):
        if name in _ALIASES:
            return getattr(self, _ALIASES[name])
        raise AttributeError(f"'FunctionEventAvg' object has no attribute '{name}'")

    def __repr__(self):
        return (f"<FunctionEventAvg key={self.key} self_cpu_time={_fmt(self.self_cpu_time_total)} "
                f"cpu_time={_fmt(self.cpu_time_total)} input_shapes={self.input_shapes}>")


def _fmt(us, unit=None):
    if unit == "s" or (unit is None and us >= 1e6):
        return f"{us / 1e6:.3f}s"
    if unit == "ms" or (unit is None and us >= 1e3):
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


def _pct(part, whole):
    return f"{(part / whole * 100 if whole else 0.0):.2f}%"


class EventList(list):
    """A list of FunctionEvent (or of FunctionEventAvg, from key_averages), with torch's table and trace."""

    def __init__(self, events=(), *, use_device=None, pid=None, wall0_us=0.0):
        super().__init__(events)
        self._use_device, self._pid, self._wall0_us = use_device, pid, wall0_us

    def key_averages(self, group_by_input_shape=False, group_by_stack_n=0, group_by_overload_name=False):
        if group_by_stack_n:
            raise NotImplementedError("key_averages(group_by_stack_n=...): dtrain's profiler records no stacks")
        stats = {}
        for e in self:
            name = "ProfilerStep*" if e.key.startswith("ProfilerStep#") else e.key  # torch's one row for steps
            key = (name, str(e.input_shapes)) if group_by_input_shape else name
            if key not in stats:
                stats[key] = FunctionEventAvg(name, e.input_shapes if group_by_input_shape else None)
            stats[key].add(e)
        return EventList(stats.values(), use_device=self._use_device, pid=self._pid, wall0_us=self._wall0_us)

    @property
    def self_cpu_time_total(self):
        return sum(e.self_cpu_time_total for e in self)

    def total_average(self):
        total = FunctionEventAvg("Total", None)
        for e in self:
            total.add(e)
        return total

    def table(self, sort_by=None, row_limit=100, max_src_column_width=75, max_name_column_width=55,
              max_shapes_column_width=80, header=None, top_level_events_only=False, time_unit=None):
        """torch's table: one row per entry, sorted by an attribute (descending), at most row_limit rows."""
        events = [e for e in self if not top_level_events_only or e.cpu_parent is None]
        if sort_by is not None:
            events.sort(key=lambda e: getattr(e, sort_by), reverse=True)
        shown = events[:row_limit] if row_limit is not None and row_limit >= 0 else events
        device = self._use_device
        shapes = any(e.input_shapes is not None for e in events) and isinstance(events[0], FunctionEventAvg) \
            if events else False
        name_w = min(max([len(e.key) for e in events] + [4]) + 4, max_name_column_width)
        cols = [("Name", name_w), ("Self CPU %", 12), ("Self CPU", 12), ("CPU total %", 12), ("CPU total", 12),
                ("CPU time avg", 12)]
        if device:
            d = device.upper()
            cols += [(f"Self {d}", 12), (f"Self {d} %", 12), (f"{d} total", 12), (f"{d} time avg", 12)]
        cols.append(("# of Calls", 12))
        if shapes:
            cols.append(("Input Shapes", min(max(len(str(e.input_shapes)) for e in events) + 4,
                                             max_shapes_column_width)))
        cpu_total = sum(e.self_cpu_time_total for e in self)
        dev_total = sum(e.self_device_time_total for e in self)

        def row(cells):
            return "".join(f"{c: >{w}}  " for c, (_, w) in zip(cells, cols))

        line = "".join("-" * w + "  " for _, w in cols)
        out = [header] if header else []
        out += [line, row([c for c, _ in cols]), line]
        for e in shown:
            name = e.key if len(e.key) <= name_w else e.key[:name_w - 3] + "..."
            cells = [name, _pct(e.self_cpu_time_total, cpu_total), _fmt(e.self_cpu_time_total, time_unit),
                     _pct(e.cpu_time_total, cpu_total), _fmt(e.cpu_time_total, time_unit),
                     _fmt(e.cpu_time_total / max(e.count, 1), time_unit)]
            if device:
                cells += [_fmt(e.self_device_time_total, time_unit), _pct(e.self_device_time_total, dev_total),
                          _fmt(e.device_time_total, time_unit),
                          _fmt(e.device_time_total / max(e.count, 1), time_unit)]
            cells.append(str(e.count))
            if shapes:
                s = str(e.input_shapes)
                w = cols[-1][1]
                cells.append(s if len(s) <= w else s[:w - 3] + "...")
            out.append(row(cells))
        out += [line, f"Self CPU time total: {_fmt(cpu_total, time_unit)}"]
        if device:
            out.append(f"Self {device.upper()} time total: {_fmt(dev_total, time_unit)}")
        return "\n".join(out) + "\n"

    def __str__(self):
        return self.table()

    def export_chrome_trace(self, path):
        """Chrome's trace-event JSON (chrome://tracing, Perfetto, TensorBoard's profile plugin); gzip for .gz."""
        trace = []
        for e in self:
            if not isinstance(e, FunctionEvent):
                raise RuntimeError("export_chrome_trace needs the recorded events, not their key_averages()")
            ev = {"ph": "X", "cat": "user_annotation" if e.is_user_annotation else "cpu_op", "name": e.name,
                  "pid": self._pid, "tid": e.thread, "ts": self._wall0_us + e.time_range.start,
                  "dur": e.cpu_time_total, "args": {"External id": e.id}}
            if e.input_shapes is not None:
                ev["args"]["Input Dims"] = e.input_shapes
            trace.append(ev)
            if e.device_start_us is not None:  # the op's kernels, on the device's timeline
                trace.append({"ph": "X", "cat": "kernel", "name": e.name, "pid": e.device_index, "tid": "stream",
                              "ts": self._wall0_us + e.device_start_us, "dur": e.self_device_time_total,
                              "args": {"External id": e.id, "device": e.device_index}})
        doc = {"schemaVersion": 1, "traceEvents": trace, "displayTimeUnit": "ms", "traceName": str(path)}
        data = json.dumps(doc).encode()
        path = os.fspath(path)
        with (gzip.open(path, "wb") if path.endswith(".gz") else open(path, "wb")) as f:
            f.write(data)
