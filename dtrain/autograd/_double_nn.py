"""Double-backward formulas (see dtrain.autograd._double) for shape, indexing and the layers of dtrain.nn (convolution, pooling, normalisation, attention, embedding, dropout)."""
