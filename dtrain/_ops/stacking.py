"""Stacking and splitting along named axes (column_stack, dstack, hsplit, vsplit, dsplit), diagflat, vander,
unravel_index."""
