"""Learning-rate schedulers (placeholder)."""
