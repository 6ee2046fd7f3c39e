"""Ops, one family per file. Each file defines `Function` subclasses over arrays and the public functions
(and Tensor methods) built on them."""
