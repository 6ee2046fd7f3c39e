"""dtrain-run: starts and supervises the ranks of a dtrain job (never imports numpy or cupy)."""
