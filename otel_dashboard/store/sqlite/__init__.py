"""Durable event history in an SQLite file.

:class:`SqliteEventStore` implements :class:`~otel_dashboard.store.base.EventStore` on one SQLite
database in WAL mode. It is the default store of ``otel-dashboard serve`` (``docs/operations.md`` is
the operator's manual: location, schema, retention, backups, restart, errors).

How it works, one module per part:

* :mod:`~otel_dashboard.store.sqlite.backlog` -- :meth:`~SqliteEventStore.append` only queues the
  event in memory (it runs under the state's lock on the publisher's thread, so it never touches the
  disk); an event leaves the queue once committed or dropped. :meth:`~SqliteEventStore.wait_durable`
  (and its ``async`` twin) blocks until the batch holding a ``seq`` is committed: the ingest endpoint
  answers 200 only after it.
* :mod:`~otel_dashboard.store.sqlite.writer` -- ONE writer thread takes the queue in batches,
  writes each batch in one transaction (group commit), retries a failing disk with backoff and,
  beyond ``max_unwritten_events`` queued events, drops the oldest, counted and logged at ERROR level.
* :mod:`~otel_dashboard.store.sqlite.retention` -- retention by count and by age, applied by the
  writer in small ``DELETE`` batches.
* :mod:`~otel_dashboard.store.sqlite.reader` -- reads merged with the events still queued, so a
  read never misses an accepted event; the ``async`` reads run on reader threads with their own
  connections, never on the event loop.
* :mod:`~otel_dashboard.store.sqlite.search` -- the bounded searches of the history API and
  ``resume``: every filter in SQL (on an index where there is one), within a window of at most
  ``max_scanned_rows`` seqs, stopping at ``limit`` events or ``max_bytes``.
* :mod:`~otel_dashboard.store.sqlite.schema`, :mod:`~otel_dashboard.store.sqlite.rows`,
  :mod:`~otel_dashboard.store.sqlite.lockfile`, :mod:`~otel_dashboard.store.sqlite.logs` -- the
  file (schema, opening, restart bookkeeping), an event as a row, one server per file, the logger.
* :mod:`~otel_dashboard.store.sqlite.store` -- :class:`SqliteEventStore`, which puts them together.

Usage::

    from otel_dashboard.store.sqlite import SqliteEventStore
    from otel_dashboard.state.dashboard import DashboardState

    state = DashboardState(store=SqliteEventStore("events.db"))  # rebuilt from the file
    ...
    state.store.close()
"""

from __future__ import annotations

from otel_dashboard.store.sqlite.schema import SCHEMA_VERSION
from otel_dashboard.store.sqlite.store import SqliteEventStore

__all__ = ["SCHEMA_VERSION", "SqliteEventStore"]
