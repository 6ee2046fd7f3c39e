"""DistributedDataParallel's constructor arguments: torch's checks, errors and warnings, in torch's order.

What each one does in dtrain (torch 2.13's signature):
- device_ids, output_device: a CUDA module's device (inputs are moved there in forward, as torch does); a CPU or
  multi-device module takes neither (ValueError, torch's message).
- dim: torch keeps it for the old one-process-many-GPUs scatter only; single-device DDP never reads it, nor do we.
- broadcast_buffers (deprecated in torch 2.13, FutureWarning) / forward_sync_buffers: buffers broadcast from rank
  0 before every forward; broadcast_buffers=False also skips the broadcast at construction, as torch.
- init_sync, process_group, bucket_cap_mb, bucket_cap_mb_list, find_unused_parameters, gradient_as_bucket_view:
  as torch's.
- static_graph: torch learns the unused parameters from the first iteration; dtrain finds them every iteration
  (find_unused_parameters' walk of the graph): the same gradients.
- check_reduction: deprecated, ignored by torch too (FutureWarning).
- skip_all_reduce_unused_params, batched_grad_copy: torch's communication and copy savings whose results are the
  same; dtrain never reduces a parameter unused on every rank anyway, and copies each gradient once.
- delay_all_reduce_named_params / param_to_hook_all_reduce: the named parameters are reduced with the others
  (a warning says so); the averaged gradients are the same.
- mixed_precision: not supported (a warning): parameters, gradients and buffers stay in their own dtypes.
- device_mesh: a 1-D mesh's group (`get_group(mesh_dim=0)`) is the process group.
"""
import warnings


def resolve(ddp, module, device_ids, output_device, broadcast_buffers, forward_sync_buffers, process_group,
            device_mesh, check_reduction, delay_all_reduce_named_params, param_to_hook_all_reduce,
            mixed_precision):
    """Check the arguments as torch does; set ddp's process_group, device_ids, output_device,
    forward_sync_buffers; return (parameters to reduce, whether construction broadcasts the buffers)."""
    if (delay_all_reduce_named_params is not None) != (param_to_hook_all_reduce is not None):
        raise ValueError("delay_all_reduce_named_params and param_to_hook_all_reduce need to be set at the same time.")
    if process_group and device_mesh is not None:
        raise RuntimeError("Cannot specify both process_group and device_mesh arguments.")
    if device_mesh is not None:
        if device_mesh.ndim != 1:
            raise RuntimeError(f"Only 1D device mesh is supported, but got {device_mesh}.")
        process_group = device_mesh.get_group(mesh_dim=0)
    ddp.process_group = process_group if process_group is not None else ddp._dist.group.WORLD
    if delay_all_reduce_named_params is not None:
        warnings.warn("DistributedDataParallel: dtrain reduces delay_all_reduce_named_params in its buckets with the "
                      "other parameters, not after param_to_hook_all_reduce's gradient; the averaged gradients are "
                      "the same", stacklevel=3)
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have any parameter that "
                           "requires a gradient.")
    if device_ids is not None and len(device_ids) > 1:
        raise ValueError("device_ids can only be None or contain a single element.")
    all_params = list(module.parameters())
    types = {p.device.type for p in all_params}
    if len(types) != 1:
        raise ValueError(f"DistributedDataParallel's input module must be on the same type of devices, but input "
                         f"module parameters locate in {types}.")
    devices = {p.device for p in all_params}
    if not device_ids or types == {"cpu"} or len(devices) > 1:
        if device_ids or output_device:
            raise ValueError(f"DistributedDataParallel device_ids and output_device arguments only work with "
                             f"single-device/multiple-device GPU modules or CPU modules, but got device_ids "
                             f"{device_ids}, output_device {output_device}, and module parameters {devices}.")
        ddp.device_ids = ddp.output_device = None
    else:
        ddp.device_ids = [_index(d) for d in device_ids]
        ddp.output_device = _index(device_ids[0] if output_device is None else output_device)
    if broadcast_buffers is not None:
        if forward_sync_buffers is not None:
            warnings.warn("Both `broadcast_buffers` and `forward_sync_buffers` were specified. `broadcast_buffers` is "
                          "deprecated and its value is ignored when `forward_sync_buffers` is provided.",
                          FutureWarning, stacklevel=3)
        else:
            warnings.warn("`broadcast_buffers` is deprecated. Use `forward_sync_buffers` instead. IMPORTANT: unlike "
                          "`broadcast_buffers=False`, `forward_sync_buffers=False` still syncs buffers at init. If you "
                          "rely on buffers NOT being synced at init (e.g. rank-local buffers), keep using "
                          "`broadcast_buffers=False` until `init_sync_buffers` is available.", FutureWarning,
                          stacklevel=3)
    if forward_sync_buffers is not None:
        ddp.forward_sync_buffers, init_sync_buffers = forward_sync_buffers, True
    else:
        ddp.forward_sync_buffers = init_sync_buffers = broadcast_buffers if broadcast_buffers is not None else True
    if mixed_precision is not None:
        warnings.warn("DistributedDataParallel: mixed_precision is not supported by dtrain; parameters, gradients "
                      "and buffers stay in their own dtypes", stacklevel=3)
    if check_reduction:
        warnings.warn("The `check_reduction` argument in `DistributedDataParallel` module is deprecated. Please avoid "
                      "using it.", FutureWarning, stacklevel=3)
    return params, init_sync_buffers


def _index(d):
    """A device id as torch's _get_device_index(d, True) gives it: an int, a 'cuda:N' string or a device."""
    if isinstance(d, int):
        return d
    from ..._device import device as _device
    d = _device(d) if isinstance(d, str) else d
    return d.index if d.index is not None else 0
