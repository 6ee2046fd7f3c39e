"""dtrain.utils: data loading and gradient checkpointing."""
