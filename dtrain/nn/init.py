"""nn.init: in-place initialisation of tensors (torch.nn.init)."""
