"""The database file: its schema and version, opening it (checks, WAL, the restart bookkeeping), and
the SQL statements the writer and the reader share.

``docs/operations.md`` shows the schema to operators; keep the two in step.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from typing import NamedTuple

import orjson

from otel_dashboard.store.base import StoreError
from otel_dashboard.store.sqlite.logs import logger

__all__ = [
    "COLUMNS",
    "INDEXES",
    "INSERT",
    "SCHEMA_VERSION",
    "SET_CLEAN_SHUTDOWN",
    "SET_LAST_SEQ",
    "TABLES",
    "OpenedDatabase",
    "connect_reader",
    "database_error",
    "migrate_v1_to_v2",
    "open_database",
    "transaction",
]

SCHEMA_VERSION = 2
"""``PRAGMA user_version`` of the databases this package writes (version 1 files are migrated in
place when opened: see :func:`migrate_v1_to_v2`)."""

_BUSY_TIMEOUT_MILLIS = 5000
_MAX_RESTART_HOLES = 20

TABLES = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
    # One row per event: the wire form as JSON, plus the columns the queries filter on. The filter
    # columns come before event_json: a filtered scan reads them without reading (or following the
    # overflow pages of) a big event's text.
    "CREATE TABLE events ("
    " seq INTEGER PRIMARY KEY,"
    " event_id TEXT NOT NULL,"
    " event_type TEXT NOT NULL,"
    " severity TEXT NOT NULL,"
    " agent_id TEXT,"
    " agent_name TEXT,"
    " ts REAL NOT NULL,"  # the event's timestamp, Unix seconds (retention by age)
    " service_name TEXT,"
    " event_json TEXT NOT NULL)",
)
"""The tables of a new database."""

INDEXES = (
    # seq (the rowid) is implicitly the last column of every index: each gives rows in seq order,
    # and a seq range within one value is an index range.
    "CREATE INDEX events_by_type ON events (event_type)",
    "CREATE INDEX events_by_agent_id ON events (agent_id)",
    "CREATE INDEX events_by_agent_name ON events (agent_name)",
    "CREATE INDEX events_by_time ON events (ts)",
    "CREATE INDEX events_by_service ON events (service_name)",
)
"""The indexes of a new database (a bulk load may create them after its rows: faster)."""

_SERVICE_OF_JSON = (
    # data.service_name when it is a JSON string, else NULL. The CASE's AND stops at json_valid:
    # json_type never sees (and fails on) text that is not JSON.
    "CASE WHEN json_valid(event_json) AND json_type(event_json, '$.data.service_name') = 'text'"
    " THEN json_extract(event_json, '$.data.service_name') END"
)
_MIGRATE_V1_TO_V2 = (
    # A VIRTUAL generated column: adding it rewrites no row (SQLite computes it from event_json when
    # read), and the index is built from one pass over the table. A stored column would rewrite
    # every row, and the WAL would grow to the size of the database: 1,000,000 events took ~10 s so,
    # ~2 s this way.
    f"ALTER TABLE events ADD COLUMN service_name TEXT GENERATED ALWAYS AS ({_SERVICE_OF_JSON}) VIRTUAL",
    "CREATE INDEX events_by_service ON events (service_name)",
)

INSERT = (
    "INSERT OR REPLACE INTO events"
    " (seq, event_id, event_type, severity, agent_id, agent_name, ts, service_name, event_json)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
"""Writes one row of a database made at version 2; its values are
:func:`~otel_dashboard.store.sqlite.rows.event_row`'s."""
_INSERT_GENERATED_SERVICE = (
    # A database migrated from version 1 computes service_name itself: the same nine values are
    # bound, the eighth (the service) left unused.
    "INSERT OR REPLACE INTO events"
    " (seq, event_id, event_type, severity, agent_id, agent_name, ts, event_json)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9)"
)
SET_LAST_SEQ = "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_seq', ?)"
SET_CLEAN_SHUTDOWN = "INSERT OR REPLACE INTO meta (key, value) VALUES ('clean_shutdown', ?)"
_SET_RESTART_HOLES = "INSERT OR REPLACE INTO meta (key, value) VALUES ('restart_holes', ?)"
COLUMNS = "seq, event_json"
"""What a read selects: :func:`~otel_dashboard.store.sqlite.rows.decode_event` takes these two."""


class OpenedDatabase(NamedTuple):
    """What opening the file found."""

    conn: sqlite3.Connection
    """The writer's connection (autocommit mode; :func:`transaction` opens each transaction)."""
    last_seq: int
    """Every seq up to this one is used: numbering continues after it."""
    restart_holes: list[tuple[int, int]]
    """Seq ranges skipped after unclean stops (see ``EventStore.restart_holes``)."""
    insert: str = INSERT
    """The statement that writes one row (:data:`INSERT`, or its form for a migrated database)."""


def database_error(path: str, message: str, exc: BaseException | None = None) -> StoreError:
    """The :class:`StoreError` saying why the event database at ``path`` cannot be used."""
    detail = f": {exc}" if exc is not None else ""
    return StoreError(path, f"event database {path}: {message}{detail}")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (the connection is in autocommit mode): committed, or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _connect(path: str) -> sqlite3.Connection:
    # check_same_thread=False: a connection is opened on one thread and closed on another (close()).
    return sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MILLIS / 1000, isolation_level=None,
                           check_same_thread=False)


def connect_reader(path: str) -> sqlite3.Connection:
    """A read-only connection (WAL lets it read while the writer writes).

    Raises:
        sqlite3.Error: the file cannot be opened.
    """
    conn = _connect(path)
    try:
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _read_holes(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    row = conn.execute("SELECT value FROM meta WHERE key = 'restart_holes'").fetchone()
    try:
        return [(int(a), int(b)) for a, b in orjson.loads(row[0])] if row and row[0] else []
    except (ValueError, TypeError):
        return []


def open_database(path: str, *, synchronous: str, max_unwritten_events: int) -> OpenedDatabase:
    """Open (or create) the database for writing and say where numbering continues.

    After an unclean stop the previous run may have streamed up to ``max_unwritten_events`` events
    it never wrote; their seqs are skipped (and recorded as a restart hole).

    Raises:
        StoreError: the file is corrupt, foreign, newer, unwritable or locked; the message says which.
    """
    try:
        conn = _connect(path)
    except sqlite3.Error as exc:
        raise database_error(path, "cannot open it (is the path a directory, or its directory missing "
                                   "or not writable?)", exc) from None
    try:
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise database_error(path, "the file is corrupt or not an SQLite database; move it aside "
                                       "(or restore a backup) and start again", exc) from None
        if version > SCHEMA_VERSION:
            raise database_error(path, f"written by a newer otel-dashboard (schema version {version}, "
                                       f"this version reads up to {SCHEMA_VERSION}); upgrade, or use "
                                       "another --db")
        if version == 0 and tables:
            raise database_error(path, "not an otel-dashboard database (it holds other tables: "
                                       f"{', '.join(sorted(tables)[:5])})")
        if version >= 1 and not {"events", "meta"} <= tables:
            raise database_error(path, "the otel-dashboard tables are missing; the file is damaged")
        try:
            return _prepare(conn, path, version, synchronous, max_unwritten_events)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc).replace(" ", ""):
                raise database_error(path, "not writable", exc) from None
            raise database_error(path, "cannot be used (corrupt, unwritable, or locked)", exc) from None
    except BaseException:
        conn.close()
        raise


def migrate_v1_to_v2(conn: sqlite3.Connection, path: str) -> None:
    """Turn a version 1 database into version 2, in place, inside the caller's transaction.

    Version 2 adds the ``service_name`` column (``data.service_name`` when it is a string) and its
    index ``events_by_service``. In a migrated file the column is generated from ``event_json``
    (``json_extract``, computed when read, never stored): no row is rewritten, and 1,000,000 events
    migrate in about two seconds (the index is built in one pass). A crash part way leaves the file
    at version 1 (the transaction rolls back), migrated again at the next start.

    Raises:
        sqlite3.Error: the migration failed (the caller reports it with the path).
    """
    started = time.perf_counter()
    logger.info("event database %s: migrating from schema version 1 to %d (adds the service_name "
                "column and its index)", path, SCHEMA_VERSION)
    for statement in _MIGRATE_V1_TO_V2:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    logger.info("event database %s: migrated to schema version %d in %.1f s", path, SCHEMA_VERSION,
                time.perf_counter() - started)


def _insert_for(conn: sqlite3.Connection) -> str:
    """The INSERT for this file's layout: a migrated one computes ``service_name`` itself."""
    for row in conn.execute("PRAGMA table_xinfo(events)"):
        if row[1] == "service_name":
            return _INSERT_GENERATED_SERVICE if row[6] in (2, 3) else INSERT  # 2, 3: generated
    raise sqlite3.DatabaseError("the events table has no service_name column")


def _prepare(
    conn: sqlite3.Connection, path: str, version: int, synchronous: str, max_unwritten_events: int
) -> OpenedDatabase:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        logger.warning("event database %s: WAL mode unavailable (journal mode %s); reads may wait for "
                       "writes", path, mode)
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    with transaction(conn):
        if version == 0:
            for statement in (*TABLES, *INDEXES):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version == 1:
            migrate_v1_to_v2(conn, path)
        # A real write, so that an unwritable file fails here and not at the first event.
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_at', ?)", (time.time(),))
        clean = conn.execute("SELECT value FROM meta WHERE key = 'clean_shutdown'").fetchone()
        was_clean = version == 0 or (clean is not None and clean[0] == 1)
        conn.execute(SET_CLEAN_SHUTDOWN, (0,))
    insert = _insert_for(conn)
    row = conn.execute("SELECT MAX(seq) FROM events").fetchone()
    meta = conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
    holes = _read_holes(conn)
    last_seq = max(row[0] or 0, int(meta[0]) if meta and meta[0] is not None else 0)
    if not was_clean and last_seq:
        # The last run died with up to max_unwritten_events accepted (and already sent to
        # browsers) but not committed. Handing those seqs out again would make a browser that
        # saw them resume past new events: continue beyond every seq that run could have used.
        skipped_to = last_seq + max_unwritten_events
        logger.warning("event database %s: the previous server did not shut down cleanly; seq "
                       "continues at %d (not %d) so that no seq a client saw is reused",
                       path, skipped_to + 1, last_seq + 1)
        holes = [*holes, (last_seq + 1, skipped_to)][-_MAX_RESTART_HOLES:]
        conn.execute(_SET_RESTART_HOLES, (orjson.dumps(holes).decode(),))
        conn.execute(SET_LAST_SEQ, (skipped_to,))
        last_seq = skipped_to
    return OpenedDatabase(conn, last_seq, holes, insert)
