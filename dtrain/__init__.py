"""dtrain: PyTorch programming model on NumPy and CuPy, distributed over MPI and NCCL."""
