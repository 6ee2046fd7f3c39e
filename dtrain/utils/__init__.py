"""dtrain.utils: data loading (`dtrain.utils.data`) and gradient checkpointing (`dtrain.utils.checkpoint`)."""


def __getattr__(name):
    # torch code reaches these as attributes (`torch.utils.data.DataLoader`) without importing them
    if name in ("data", "checkpoint"):
        import importlib
        return importlib.import_module(f"dtrain.utils.{name}")
    raise AttributeError(f"module 'dtrain.utils' has no attribute '{name}'")
