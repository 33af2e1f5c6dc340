"""What a replica makes of the Redis stream entries it reads: never an exception, whatever an entry holds.

The streams are written by the replicas' own append script and ``XADD``, but anything that can write
to the Redis can add an entry of any shape (a bug of another version, a hand-typed ``XADD``, an
attacker on the Redis network). One such entry must cost one skipped entry, not the reader: every
function here returns either what it decoded or the *kind* of problem (one of :data:`SKIP_KINDS`),
which the broker counts in ``/stats`` (``broker.skipped_entries``) and logs once per kind per minute.

Kinds:

* ``bad_id``: an entry id that is not ``<seq>-<n>`` with ``0 < seq <= 2**53 - 1`` (a browser reads
  ``seq`` as a JavaScript number);
* ``missing_field``: no ``e`` field (event stream) or ``r`` field (span stream), or not bytes;
* ``too_large``: the field is longer than ``max_entry_bytes``;
* ``not_json``: the field is not JSON;
* ``invalid_event``: JSON, but not an event's wire form (a missing or ill-typed field);
* ``unappliable``: a well-formed event that the state could not take (it raised while applying it);
* ``invalid_span_entry``: a span entry whose records are not a JSON array;
* ``invalid_span_record``: one record of a span entry without valid ids or name (the entry's other
  records are kept); records are cleaned as ``POST /api/events`` cleans its ``spans``;
* ``invalid_snapshot``: the leader's saved state (read by a replica that joins late) is not JSON or
  not an export of this version; the replica carries on from the events the stream holds.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from otel_dashboard.model.events import DashboardEvent, EventType

__all__ = ["MAX_SEQ", "SKIP_KINDS", "decode_event_entry", "decode_span_entry", "parse_entry_id"]

SKIP_KINDS = ("bad_id", "missing_field", "too_large", "not_json", "invalid_event", "unappliable",
              "invalid_span_entry", "invalid_span_record", "invalid_snapshot")

MAX_SEQ = 2**53 - 1
"""The largest ``seq`` taken from an entry id (``Number.MAX_SAFE_INTEGER``: browsers hold it)."""

_ID_RE = re.compile(rb"([0-9]{1,20})-([0-9]{1,20})")
_MAX_TIMESTAMP_CHARS = 64
_MAX_EVENT_ID_CHARS = 256


def parse_entry_id(entry_id: Any) -> tuple[int, int] | None:
    """``(ms, n)`` of a stream entry id ``b"<ms>-<n>"`` (both below 2**64, as Redis keeps them); None
    for anything else. A reader moves its cursor to any such id, whether or not it took the entry."""
    if isinstance(entry_id, str):
        entry_id = entry_id.encode("ascii", "replace")
    if not isinstance(entry_id, bytes):
        return None
    match = _ID_RE.fullmatch(entry_id)
    if match is None:
        return None
    ms, n = int(match.group(1)), int(match.group(2))
    if ms >= 2**64 or n >= 2**64:
        return None
    return ms, n


def decode_event_entry(entry_id: Any, fields: Any, *, max_entry_bytes: int) -> DashboardEvent | str:
    """The event of one entry of the event stream, numbered with its id's ``seq``.

    Args:
        entry_id: the entry's id as read (``b"<seq>-0"`` when the append script wrote it).
        fields: the entry's fields as read (``{b"e": <the event's wire JSON, without seq>}``).
        max_entry_bytes: a longer ``e`` field is not parsed.

    Returns:
        The event, or the kind of problem (one of :data:`SKIP_KINDS`); never raises.
    """
    try:
        parsed = parse_entry_id(entry_id)
        if parsed is None or not 0 < parsed[0] <= MAX_SEQ:
            return "bad_id"
        raw = fields.get(b"e") if isinstance(fields, dict) else None
        if not isinstance(raw, bytes):
            return "missing_field"
        if len(raw) > max_entry_bytes:
            return "too_large"
        try:
            event = DashboardEvent.from_unnumbered_json(raw, parsed[0])
        except ValueError as exc:
            return "not_json" if str(exc).startswith("event: not JSON") else "invalid_event"
        return event if _well_typed(event) else "invalid_event"
    except Exception:  # a shape nobody foresaw: still one skipped entry
        return "invalid_event"


def _well_typed(event: DashboardEvent) -> bool:
    # from_dict checks the fields a consumer indexes on (type, data, ids); these are the ones it
    # leaves to its callers, which the store, the derived state and the browsers rely on.
    return (
        type(event.event_type) is EventType
        and type(event.timestamp) is str and len(event.timestamp) <= _MAX_TIMESTAMP_CHARS
        and type(event.event_id) is str and 0 < len(event.event_id) <= _MAX_EVENT_ID_CHARS
        and type(event.data) is dict
    )


def decode_span_entry(
    entry_id: Any, fields: Any, *, replica: bytes, max_entry_bytes: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """The span records of one entry of the span stream that another replica appended.

    Args:
        entry_id: the entry's id as read.
        fields: the entry's fields as read (``{b"o": <replica>, b"r": <JSON array of span records>}``).
        replica: this replica's name; its own entries give no records (it kept them when it sent them).
        max_entry_bytes: a longer ``r`` field is not parsed.

    Returns:
        ``(records, problems)``: the cleaned records to keep, and the kind of each problem found
        (one for a skipped entry, one per skipped record); never raises.
    """
    try:
        if parse_entry_id(entry_id) is None:
            return [], ["bad_id"]
        if not isinstance(fields, dict):
            return [], ["missing_field"]
        if fields.get(b"o") == replica:
            return [], []
        raw = fields.get(b"r")
        if not isinstance(raw, bytes):
            return [], ["missing_field"]
        if len(raw) > max_entry_bytes:
            return [], ["too_large"]
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return [], ["not_json"]
        if not isinstance(items, list):
            return [], ["invalid_span_entry"]
        return _clean_records(items)
    except Exception:  # a shape nobody foresaw: still one skipped entry
        return [], ["invalid_span_entry"]


def _clean_records(items: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    # The rules of POST /api/events' "spans" (ids, name, types, caps), record by record: one bad
    # record costs itself. Imported here: the receiver imports the broker.
    from otel_dashboard.server.receiver import parse_span_records

    try:
        return parse_span_records(items), []  # the common case: every record is valid
    except Exception:
        pass
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    for item in items:
        try:
            records.extend(parse_span_records([item]))
        except Exception:
            problems.append("invalid_span_record")
    return records, problems
