"""nn.DataParallel: single-process data parallelism. With at most one visible GPU (always the case on the CPU)
it runs the wrapped module directly; several GPUs are better served by DistributedDataParallel, one process each."""
from ..modules.module import Module

__all__ = ["DataParallel"]


def _device_count():
    from ... import cuda
    try:
        return cuda.device_count() if cuda.is_available() else 0
    except RuntimeError:
        return 0


class DataParallel(Module):
    """Wraps `module`; parameters and state_dict keys carry the `module.` prefix like torch's."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        self.module = module
        self.dim = dim
        n = _device_count()
        if n == 0:
            self.device_ids = []
            self.output_device = None
            self.src_device_obj = None
            return
        if device_ids is None:
            device_ids = list(range(n))
        self.device_ids = [d if isinstance(d, int) else getattr(d, "index", d) for d in device_ids]
        self.output_device = self.device_ids[0] if output_device is None else output_device
        self.src_device_obj = None

    def forward(self, *inputs, **kwargs):
        # NOTE: replicas across several GPUs in one process are not implemented; the module runs where its
        # parameters are, which is torch's behaviour for a single device
        return self.module(*inputs, **kwargs)
