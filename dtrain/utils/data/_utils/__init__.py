"""Internals of the data loader: collation, fetching and the worker process loop (torch's layout)."""
# How often a blocked main process checks that its workers are alive, and how often an idle worker checks
# that its parent is: both only bound how late a dead process is noticed.
MP_STATUS_CHECK_INTERVAL = 0.2
WORKER_WATCHDOG_INTERVAL = 1.0

from . import collate, fetch, worker  # noqa: E402,F401
