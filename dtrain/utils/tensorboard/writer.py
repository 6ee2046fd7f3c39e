"""SummaryWriter and FileWriter (torch.utils.tensorboard's), writing through the tensorboard package's own
EventFileWriter, so TensorBoard reads dtrain's logs as it reads torch's.

Under dtrain-run only rank 0 writes by default (see SummaryWriter)."""
import os
import sys
import time
import warnings

from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from .summary import default_bins, histogram, hparams, scalar, text


class FileWriter:
    """Writes Event protocol buffers to one event file in log_dir (queued; flushed every flush_secs, when
    max_queue events wait, on flush() and on close())."""

    def __init__(self, log_dir, max_queue=10, flush_secs=120, filename_suffix=""):
        self.event_writer = EventFileWriter(str(log_dir), max_queue, flush_secs, filename_suffix)

    def get_logdir(self):
        return self.event_writer.get_logdir()

    def add_event(self, event, step=None, walltime=None):
        event.wall_time = time.time() if walltime is None else walltime
        if step is not None:
            event.step = int(step)  # a NumPy or tensor step would not convert in every protobuf version
        self.event_writer.add_event(event)

    def add_summary(self, summary, global_step=None, walltime=None):
        self.add_event(Event(summary=summary), global_step, walltime)

    def add_graph(self, graph_def, walltime=None):
        self.add_event(Event(graph_def=graph_def.SerializeToString()), None, walltime)

    def flush(self):
        self.event_writer.flush()

    def close(self):
        self.event_writer.close()

    def reopen(self):
        self.event_writer.reopen()


def _rank():
    """This process's rank: the process group's if one is up, else RANK from dtrain-run (0 without it)."""
    dist = sys.modules.get("dtrain.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def _rank0(method):
    def guarded(self, *args, **kwargs):
        if self._silent:
            return None
        return method(self, *args, **kwargs)
    guarded.__name__, guarded.__qualname__, guarded.__doc__ = method.__name__, method.__qualname__, method.__doc__
    return guarded


class SummaryWriter:
    """Writes scalars, histograms, text, a model graph and hyperparameters for TensorBoard (torch's API).

    log_dir defaults to runs/<Mon DD_HH-MM-SS>_<host><comment> as in torch. purge_step drops events of a crashed
    run at and after that step; max_queue, flush_secs and filename_suffix go to the event file writer.

    dtrain's addition, since torch has no such behaviour: in a multi-process job (RANK set by dtrain-run, or a
    process group initialised) only rank 0 writes. On any other rank the writer creates no directory or file,
    every add_* call writes nothing, and it warns so once when it is created. Pass all_ranks=True (or set
    DTRAIN_TENSORBOARD_ALL_RANKS=1) to write from every rank; then give each rank its own log_dir."""

    def __init__(self, log_dir=None, comment="", purge_step=None, max_queue=10, flush_secs=120, filename_suffix="",
                 *, all_ranks=None):
        if not log_dir:
            import socket
            from datetime import datetime
            log_dir = os.path.join("runs", datetime.now().strftime("%b%d_%H-%M-%S") + "_" + socket.gethostname()
                                   + comment)
        self.log_dir = log_dir
        self.purge_step = purge_step
        self.max_queue, self.flush_secs, self.filename_suffix = max_queue, flush_secs, filename_suffix
        if all_ranks is None:
            all_ranks = os.environ.get("DTRAIN_TENSORBOARD_ALL_RANKS", "") not in ("", "0")
        rank = _rank()
        self._silent = rank != 0 and not all_ranks
        if self._silent:
            warnings.warn(f"SummaryWriter on rank {rank}: only rank 0 writes TensorBoard logs in a multi-process "
                          f"job, so this rank's add_* calls write nothing to {log_dir!r}. Pass all_ranks=True (or "
                          "set DTRAIN_TENSORBOARD_ALL_RANKS=1) to write from every rank.", UserWarning, stacklevel=2)
        self.file_writer = self.all_writers = None
        self.default_bins = default_bins()
        if not self._silent:
            self._get_file_writer()

    def _get_file_writer(self):
        """The writer of log_dir itself, made anew after close()."""
        if self.all_writers is None or self.file_writer is None:
            self.file_writer = FileWriter(self.log_dir, self.max_queue, self.flush_secs, self.filename_suffix)
            self.all_writers = {self.file_writer.get_logdir(): self.file_writer}
            if self.purge_step is not None:
                # TensorBoard drops the events at and after this step written before a restart
                self.file_writer.add_event(Event(step=self.purge_step, file_version="brain.Event:2"))
                self.file_writer.add_event(Event(step=self.purge_step,
                                                 session_log=SessionLog(status=SessionLog.START)))
                self.purge_step = None
        return self.file_writer

    def get_logdir(self):
        return self.log_dir

    @_rank0
    def add_scalar(self, tag, scalar_value, global_step=None, walltime=None, new_style=False,
                   double_precision=False):
        self._get_file_writer().add_summary(scalar(tag, scalar_value, new_style=new_style,
                                                   double_precision=double_precision), global_step, walltime)

    @_rank0
    def add_scalars(self, main_tag, tag_scalar_dict, global_step=None, walltime=None):
        """Several curves in one chart: each tag goes to its own run, log_dir/<main_tag>_<tag>, as in torch."""
        walltime = time.time() if walltime is None else walltime
        fw_logdir = self._get_file_writer().get_logdir()
        for tag, value in tag_scalar_dict.items():
            fw_tag = fw_logdir + "/" + main_tag.replace("/", "_") + "_" + tag
            fw = self.all_writers.get(fw_tag)
            if fw is None:
                fw = self.all_writers[fw_tag] = FileWriter(fw_tag, self.max_queue, self.flush_secs,
                                                           self.filename_suffix)
            fw.add_summary(scalar(main_tag, value), global_step, walltime)

    @_rank0
    def add_histogram(self, tag, values, global_step=None, bins="tensorflow", walltime=None, max_bins=None):
        """bins: 'tensorflow' (TensorBoard's exponential buckets) or anything numpy.histogram takes."""
        if isinstance(bins, str) and bins == "tensorflow":
            bins = self.default_bins
        self._get_file_writer().add_summary(histogram(tag, values, bins, max_bins=max_bins), global_step, walltime)

    @_rank0
    def add_text(self, tag, text_string, global_step=None, walltime=None):
        self._get_file_writer().add_summary(text(tag, text_string), global_step, walltime)

    @_rank0
    def add_hparams(self, hparam_dict, metric_dict, hparam_domain_discrete=None, run_name=None, global_step=None):
        """Hyperparameters and their metrics, written as a run of their own (log_dir/<run_name or time>)."""
        if type(hparam_dict) is not dict or type(metric_dict) is not dict:
            raise TypeError("hparam_dict and metric_dict should be dictionary.")
        exp, ssi, sei = hparams(hparam_dict, metric_dict, hparam_domain_discrete)
        logdir = os.path.join(self._get_file_writer().get_logdir(), run_name or str(time.time()))
        with SummaryWriter(log_dir=logdir, all_ranks=True) as w:
            for s in (exp, ssi, sei):
                w.file_writer.add_summary(s, global_step)
            for k, v in metric_dict.items():
                w.add_scalar(k, v, global_step)

    @_rank0
    def add_graph(self, model, input_to_model=None, verbose=False, use_strict_trace=True):
        """The graph of the model's module calls on input_to_model (see _graph.module_graph): dtrain has no JIT
        tracer, so the nodes are modules, not the individual ops torch's add_graph shows (it warns so once)."""
        from ._graph import module_graph
        graph = module_graph(model, input_to_model, verbose)
        self._get_file_writer().add_graph(graph)

    def flush(self):
        if self.all_writers is None:
            return
        for w in self.all_writers.values():
            w.flush()

    def close(self):
        if self.all_writers is None:
            return  # closed already (or a rank that writes nothing)
        for w in self.all_writers.values():
            w.flush()
            w.close()
        self.file_writer = self.all_writers = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.close()
