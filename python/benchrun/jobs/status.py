"""Job status numbers and names, as upstream Bencher (lib/bencher_json/src/runner/job_status.rs).

Its own module, free of imports, so that the CLI can offer the names without loading the protocol.
"""

PENDING, CLAIMED, RUNNING, COMPLETED, PROCESSED, FAILED, CANCELED = range(7)
STATUS_NAMES = ("pending", "claimed", "running", "completed", "processed", "failed", "canceled")
TERMINAL_STATUSES = (COMPLETED, PROCESSED, FAILED, CANCELED)


def status_name(status: object) -> str:
    """The name of a job's status number (anything else as text)."""
    if isinstance(status, int) and 0 <= status < len(STATUS_NAMES):
        return STATUS_NAMES[status]
    return str(status)
