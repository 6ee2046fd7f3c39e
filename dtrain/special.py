"""torch.special: the special functions under their torch.special names."""
