"""The lock file next to the database: one server per database file.

A second server on the same file would number events from the same ``seq``; ``<path>.lock`` holds an
exclusive ``flock`` (released with the file, also when the process dies) and the owner's pid, which
the refusal quotes. Windows has no ``flock``: there the check is skipped.
"""

from __future__ import annotations

import os
from typing import IO

from otel_dashboard.store.sqlite.schema import database_error

try:  # pragma: no cover - not on Windows
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["acquire_lock_file", "release_lock_file"]


def acquire_lock_file(path: str) -> IO[str] | None:
    """Lock the database at ``path`` for this process; None where locks are not available.

    Returns:
        The open lock file: keep it open for as long as the database is used.

    Raises:
        StoreError: the lock file cannot be created, or another process holds it.
    """
    if fcntl is None:  # pragma: no cover - Windows
        return None
    lock_path = path + ".lock"
    try:
        handle = open(lock_path, "a+")  # noqa: SIM115 - held open until release_lock_file()
    except OSError as exc:
        raise database_error(path, "cannot create its lock file " + repr(lock_path)
                             + " (is the directory missing or not writable?)", exc) from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip()[:20]
        handle.close()
        raise database_error(
            path,
            f"in use by another otel-dashboard process{f' (pid {owner})' if owner else ''}; "
            "give each server its own --db",
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def release_lock_file(handle: IO[str] | None) -> None:
    """Let another process use the database (closing the file releases the ``flock``)."""
    if handle is not None:
        handle.close()
