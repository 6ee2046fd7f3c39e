"""dtrain.utils.tensorboard (torch.utils.tensorboard): SummaryWriter on the tensorboard package's own event
writer and protobufs (the optional extra `dtrain[tensorboard]`)."""
try:
    import tensorboard
except ImportError as e:  # torch's text, and where to get it
    raise ImportError("TensorBoard logging requires TensorBoard version 1.15 or above (pip install tensorboard, "
                      "or dtrain[tensorboard])") from e

_v = tuple(int(p) for p in tensorboard.__version__.split(".")[:2] if p.isdigit())
if _v < (1, 15):
    raise ImportError("TensorBoard logging requires TensorBoard version 1.15 or above")
del tensorboard, _v

from tensorboard.summary.writer.record_writer import RecordWriter  # noqa: E402

from .writer import FileWriter, SummaryWriter  # noqa: E402

__all__ = ["FileWriter", "RecordWriter", "SummaryWriter"]
