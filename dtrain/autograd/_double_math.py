"""Double-backward formulas (see dtrain.autograd._double) for pointwise math, activations, reductions, scans and the softmax family."""
