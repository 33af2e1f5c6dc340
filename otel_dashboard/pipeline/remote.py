"""Ships dashboard events from an agent process to a dashboard server's ``POST /api/events``.

(Over 400 lines on purpose: the queue, the batching, the retries with backoff, the coalesced run
states and the server's answers are one sender whose ordering guarantees, stated below, hold only
because one thread does all of it; the HTTP connection handling is the rest.)

Usage (what ``DashboardSpanProcessor(endpoint=...)`` does with it)::

    sender = RemoteEventSender("http://dashboard-host:8000")
    sender.submit(event)          # from any thread; never blocks, never raises
    sender.submit_span(record)    # a span record for the server's trace view, the same way
    sender.submit_runs(runs)      # the live state of open agent runs, coalesced by run_id
    sender.force_flush(5000)      # True once everything submitted so far is delivered or dropped
    sender.shutdown(5000)         # flushes within the timeout, stops the thread

:meth:`RemoteEventSender.submit` appends to a bounded in-memory queue; a full queue drops the event
and counts it. :meth:`RemoteEventSender.submit_span` does the same with a span record
(:func:`~otel_dashboard.state.traces.span_record_from_span`), so the server's trace view shows the spans of
remote agents, tools included; span records share the queue but are counted apart (the ``*_events``
counters count events only). :meth:`RemoteEventSender.submit_runs` queues the live state of open agent
runs the same way, but one entry per run: a run already waiting takes the newer state in its place
(so a request carries the newest state of each run, and a run's progress never moves behind its
``agent_execution_completed`` submitted later: the server would ignore it, as it ignores progress for
runs it saw complete). One daemon thread sends the queue as ``{"events": [...], "spans": [...],
"runs": [...]}`` JSON over one keep-alive HTTP connection (standard library only: agents need no
aiohttp); the server takes a request's runs after its events.

Batching
    The thread sends as soon as something is queued, unless it started a request less than
    ``schedule_delay_millis`` ago: then it lets events accumulate until that much time has passed or
    ``max_batch_size`` events are queued. At light load every event goes out at once; under load there
    is at most one request per ``schedule_delay_millis`` (plus any full batches), and an event waits at
    most that long before its request starts.

Failures
    A connection error, a timeout, a 5xx or a 429 answer retries the SAME batch, with jittered
    exponential backoff (from 100 ms, capped at ``max_retry_delay_millis``; a 429/503
    ``Retry-After`` in seconds is honoured up to the cap), for as long as it takes or until shutdown's
    deadline. Meanwhile new events keep queueing, and are dropped and counted once the queue is full.
    Any other 4xx answer means the server refuses the batch: it is dropped and its events counted in
    :attr:`~RemoteEventSender.rejected_events` (logged the first time). A keep-alive connection the
    server has closed is reopened once at once, without counting a failure. Delivery is at least once:
    a request whose answer is lost is sent again.

Stop requests
    A 2xx answer may name runs the server flagged to stop (``"stop_runs": [{"run_id", "reason",
    "kind"}]``: a run budget crossed, or "Stop run" on the page), among the runs the request spoke
    of. The sender remembers them (bounded: the newest :data:`MAX_STOP_RUNS` run ids) for
    :meth:`RemoteEventSender.stop_request`, which the processor's step guard asks
    (:mod:`instrumentation.guard`).

The thread runs with OpenTelemetry instrumentation suppressed, so an instrumented ``http.client``
never traces the dashboard's own shipping.

This module is longer than ~400 lines for a reason: :class:`RemoteEventSender` is one bounded
queue, one worker thread and one HTTP connection with its retry policy and fork handling; their
state is shared under one lock, and splitting them would spread that lock over several files.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from contextvars import Token
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry import context as context_api

from instrumentation._suppression import suppressing_context
from otel_dashboard.model.events import DashboardEvent, json_dumps
from otel_dashboard.model.ingest import IngestError
from otel_dashboard.model.run_records import MAX_RUNS_PER_REQUEST, copy_run, parse_run_records
from otel_dashboard.pipeline.http_post import KeptAliveConnection

__all__ = ["MAX_STOP_RUNS", "RemoteEventSender"]

logger = logging.getLogger(__name__)

_DEFAULT_MAX_QUEUE_SIZE = 8192
_DEFAULT_MAX_BATCH_SIZE = 512
# The bytes of span records one request carries with their detail attributes (a record holds up to
# 128 Ki characters of them: 512 such records would pass the server's 16 MiB body limit).
_MAX_SPAN_BYTES_PER_REQUEST = 8 * 1024 * 1024
_DEFAULT_SCHEDULE_DELAY_MILLIS = 50
_DEFAULT_TIMEOUT_MILLIS = 5000
_DEFAULT_MAX_RETRY_DELAY_MILLIS = 5000
_DEFAULT_FLUSH_TIMEOUT_MILLIS = 30_000
_INITIAL_RETRY_DELAY_SECONDS = 0.1
_DROP_LOG_INTERVAL_SECONDS = 10.0
_EVENTS_PATH = "/api/events"
_USER_AGENT = "otel-dashboard-remote"

MAX_STOP_RUNS = 1000
"""Run ids flagged to stop that the sender remembers at most (the oldest forgotten first)."""
_MAX_STOP_TEXT_CHARS = 500
_STOP_KINDS = frozenset({"budget", "user"})

_OK = 0
_RETRY = 1
_REJECTED = 2


class _Run:
    """A queued run state: one per run id while it waits, updated in place by newer states."""

    __slots__ = ("run", "run_id")

    def __init__(self, run_id: str, run: dict[str, Any]) -> None:
        self.run_id = run_id
        self.run = run


_Item = DashboardEvent | dict[str, Any] | _Run  # an event, a span record or a run


class RemoteEventSender:
    """Sends dashboard events to a remote dashboard server in batches, from a background thread.

    Args:
        endpoint: the server's base URL, ``http(s)://host[:port][/path-prefix]``; events go to
            ``<endpoint>/api/events`` (an endpoint that already ends in ``/api/events`` is used as is).
        headers: extra request headers (an ``Authorization`` header, say).
        max_queue_size: events, span records and runs waiting to be sent at most; more are dropped
            and counted.
        max_batch_size: events, span records and runs per request at most (and at most 1000 runs).
        schedule_delay_millis: the shortest time between the starts of two requests, unless a full
            batch is waiting; also the longest an event waits for its request at steady load.
        timeout_millis: the socket timeout of one request.
        max_retry_delay_millis: the longest pause between two attempts to send a batch.

    Raises:
        ValueError: an invalid argument; the message names it.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_queue_size: int = _DEFAULT_MAX_QUEUE_SIZE,
        max_batch_size: int = _DEFAULT_MAX_BATCH_SIZE,
        schedule_delay_millis: int = _DEFAULT_SCHEDULE_DELAY_MILLIS,
        timeout_millis: int = _DEFAULT_TIMEOUT_MILLIS,
        max_retry_delay_millis: int = _DEFAULT_MAX_RETRY_DELAY_MILLIS,
    ) -> None:
        self._scheme, self._host, self._port, self._path = _parse_endpoint(endpoint)
        self._max_queue_size = _check_int("max_queue_size", max_queue_size, minimum=1)
        self._max_batch_size = _check_int("max_batch_size", max_batch_size, minimum=1)
        if max_batch_size > max_queue_size:
            raise ValueError("max_batch_size must be less than or equal to max_queue_size")
        self._delay = _check_int("schedule_delay_millis", schedule_delay_millis, minimum=0) / 1000
        self._timeout = _check_int("timeout_millis", timeout_millis, minimum=1) / 1000
        self._max_retry_delay = (
            _check_int("max_retry_delay_millis", max_retry_delay_millis, minimum=1) / 1000
        )
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            **_check_headers(headers),
        }
        self.endpoint = f"{self._scheme}://{_host_port(self._host, self._port)}{self._path}"

        self._dropped_events = 0
        self._dropped_spans = 0
        self._sent_events = 0
        self._sent_spans = 0
        self._dropped_runs = 0
        self._sent_runs = 0
        self._rejected_events = 0
        self._failed_requests = 0
        self._next_drop_log = 0.0
        self._logged_rejection = False
        self._failing = False
        # Runs the server said to stop, run id -> {"reason", "kind"}: written by the sender thread,
        # read lock-free by the agents' threads (a dict lookup), oldest first.
        self._stop_runs: dict[str, dict[str, str]] = {}
        self._init_worker_state()
        if hasattr(os, "register_at_fork"):
            weak_reinit = weakref.WeakMethod(self._at_fork_reinit)
            os.register_at_fork(after_in_child=lambda: (weak_reinit() or _noop)())

    def _init_worker_state(self) -> None:
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the thread waits here for events or a deadline
        self._progress = threading.Condition(self._lock)  # force_flush waits here for completions
        self._queue: deque[_Item] = deque()  # events, span records and runs
        self._queued_runs: dict[str, _Run] = {}  # the runs in the queue, by id (coalescing)
        self._submitted = 0  # items accepted into the queue, ever
        self._completed = 0  # of those, delivered, rejected or dropped after queueing
        self._flush_target = 0
        self._shutdown = False
        self._deadline: float | None = None
        self._dropped_at_shutdown = 0
        self._next_send_at = 0.0
        self._http = KeptAliveConnection(self._scheme, self._host, self._port)
        self._thread = threading.Thread(target=self._run, name="otel-dashboard-sender", daemon=True)
        self._thread.start()

    def _at_fork_reinit(self) -> None:
        # The child has the parent's queue and locks but not its thread: start over, empty.
        if not self._shutdown:
            self._init_worker_state()

    # ------------------------------------------------------------------ counters
    @property
    def dropped_events(self) -> int:
        """Events dropped: queue full, submitted after shutdown, unserializable, or not delivered
        before shutdown's deadline."""
        return self._dropped_events

    @property
    def sent_events(self) -> int:
        """Events the server accepted (a 2xx answer)."""
        return self._sent_events

    @property
    def rejected_events(self) -> int:
        """Events of batches the server refused with a 4xx answer other than 429."""
        return self._rejected_events

    @property
    def failed_requests(self) -> int:
        """Requests that failed: connection errors, timeouts and non-2xx answers."""
        return self._failed_requests

    @property
    def sent_spans(self) -> int:
        """Span records the server accepted."""
        return self._sent_spans

    @property
    def dropped_spans(self) -> int:
        """Span records dropped, for the same reasons as events (not in :attr:`dropped_events`)."""
        return self._dropped_spans

    @property
    def sent_runs(self) -> int:
        """Run states the server accepted."""
        return self._sent_runs

    @property
    def dropped_runs(self) -> int:
        """Run states dropped: queue full, after shutdown, invalid, refused by the server, or not
        delivered before shutdown's deadline (a state replaced by a newer one is not counted)."""
        return self._dropped_runs

    def stop_request(self, run_id: str) -> dict[str, str] | None:
        """``{"reason", "kind"}`` of a run the server's answers named to stop, None otherwise.
        Lock-free; never raises."""
        return self._stop_runs.get(run_id) if isinstance(run_id, str) else None

    @property
    def stop_runs(self) -> int:
        """Runs the server named to stop, remembered now."""
        return len(self._stop_runs)

    @property
    def queue_size(self) -> int:
        """Events and span records waiting to be sent."""
        return len(self._queue)

    # ------------------------------------------------------------------ the agent side
    def submit(self, event: DashboardEvent) -> bool:
        """Queues ``event`` for sending. Never blocks on I/O and never raises.

        Returns:
            False when the event was dropped (queue full, or after :meth:`shutdown`).
        """
        return self._offer(event, is_span=False)

    def submit_span(self, record: dict[str, Any]) -> bool:
        """Queues a span record (:func:`~otel_dashboard.state.traces.span_record_from_span`) for the server's
        trace view. Never blocks on I/O and never raises.

        Returns:
            False when the record was dropped (queue full, or after :meth:`shutdown`).
        """
        return self._offer(record, is_span=True)

    def submit_runs(self, runs: list[dict[str, Any]]) -> bool:
        """Queues the newest state of open runs (dicts with a string ``run_id``; the server's
        ``runs``). Never blocks on I/O and never raises.

        A run already waiting in the queue takes the new state in its place (latest wins, and it
        stays ahead of anything submitted after it); another takes a place at the end. The dicts
        are copied: the caller may reuse them.

        Returns:
            False when any of them was dropped (queue full, no ``run_id``, or after :meth:`shutdown`).
        """
        try:
            copies = [copy_run(run) for run in runs if isinstance(run, dict)]
            complete = len(copies) == len(runs)
            dropped = len(runs) - len(copies)
            with self._lock:
                queued = self._queued_runs
                queue = self._queue
                for run in copies:
                    run_id = run.get("run_id")
                    if self._shutdown or not isinstance(run_id, str):
                        dropped += 1
                        continue
                    waiting = queued.get(run_id)
                    if waiting is not None:
                        waiting.run = run  # coalesced: the place it already has, the newest state
                    elif len(queue) < self._max_queue_size:
                        queued[run_id] = item = _Run(run_id, run)
                        queue.append(item)
                        self._submitted += 1
                        size = len(queue)
                        if size == 1 or size >= self._max_batch_size:
                            self._work.notify()
                    else:
                        dropped += 1
                self._dropped_runs += dropped
                shut_down = self._shutdown
            if dropped:
                self._log_drop(shut_down)
            return complete and not dropped
        except Exception:  # never into agent code
            return False

    def _offer(self, item: DashboardEvent | dict[str, Any], *, is_span: bool) -> bool:
        try:
            with self._lock:
                if not self._shutdown and len(self._queue) < self._max_queue_size:
                    self._queue.append(item)
                    self._submitted += 1
                    queued = len(self._queue)
                    if queued == 1 or queued >= self._max_batch_size:
                        self._work.notify()
                    return True
                if is_span:
                    self._dropped_spans += 1
                else:
                    self._dropped_events += 1
                shut_down = self._shutdown
            self._log_drop(shut_down)
        except Exception:  # never into agent code
            pass
        return False

    def _log_drop(self, shut_down: bool) -> None:
        now = time.monotonic()
        if now < self._next_drop_log:
            return
        self._next_drop_log = now + _DROP_LOG_INTERVAL_SECONDS
        if shut_down:
            logger.warning("Dashboard event sender is shut down; dropping events")
        else:
            logger.warning(
                "Dashboard event queue full (%d events, server %s slow or unreachable); dropping "
                "events (%d dropped so far)", self._max_queue_size, self.endpoint, self._dropped_events,
            )

    def force_flush(self, timeout_millis: int = _DEFAULT_FLUSH_TIMEOUT_MILLIS) -> bool:
        """Waits until everything submitted before the call is delivered or definitively dropped.

        Returns:
            False when that did not happen within ``timeout_millis``.
        """
        deadline = time.monotonic() + max(timeout_millis, 0) / 1000
        with self._lock:
            target = self._submitted
            if self._completed >= target:
                return True
            if not self._thread.is_alive():
                return False
            self._flush_target = max(self._flush_target, target)
            self._work.notify()
            while self._completed < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(remaining)
            return True

    def shutdown(self, timeout_millis: int = _DEFAULT_FLUSH_TIMEOUT_MILLIS) -> bool:
        """Sends what is queued within ``timeout_millis``, then stops the thread and closes the
        connection. Events still undelivered at the deadline are dropped and counted; events submitted
        afterwards too. Idempotent: later calls return at once.

        Returns:
            True when everything queued was delivered (or refused by the server) in time.
        """
        timeout = max(timeout_millis, 0) / 1000
        with self._lock:
            if self._shutdown:
                return self._delivered_all()
            self._shutdown = True
            self._deadline = time.monotonic() + timeout
            self._work.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            # Stuck in a request past the deadline: cut its socket so the thread ends now, not when
            # the request times out. The thread drops what is left.
            self._abort_request()
            return False
        return self._delivered_all()

    def _delivered_all(self) -> bool:
        return (
            not self._thread.is_alive()
            and self._completed >= self._submitted
            and self._dropped_at_shutdown == 0
        )

    def _abort_request(self) -> None:
        self._http.abort()

    # ------------------------------------------------------------------ the sender thread
    def _run(self) -> None:
        token = _attach_suppressed_context()
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                try:
                    self._deliver(batch)
                except Exception:  # a bug must not kill the thread
                    self._http.close()
                    spans = sum(1 for item in batch if isinstance(item, dict))
                    runs = sum(1 for item in batch if isinstance(item, _Run))
                    self._add_dropped(len(batch) - spans - runs, spans, runs)
                    logger.exception("Sending dashboard events failed; %d events and span records "
                                     "dropped", len(batch))
                with self._lock:
                    self._completed += len(batch)
                    self._progress.notify_all()
        finally:
            self._http.close()
            context_api.detach(token)

    def _next_batch(self) -> list[_Item] | None:
        with self._lock:
            while not self._queue:
                if self._shutdown:
                    return None
                self._work.wait()
            # Let events accumulate until the pacing delay has passed, unless the batch is full or
            # someone waits for it (force_flush, shutdown).
            while (
                len(self._queue) < self._max_batch_size
                and not self._shutdown
                and self._flush_target <= self._completed
            ):
                remaining = self._next_send_at - time.monotonic()
                if remaining <= 0:
                    break
                self._work.wait(remaining)
            batch = self._take_batch()
        self._next_send_at = time.monotonic() + self._delay
        return batch

    def _take_batch(self) -> list[_Item]:
        """Up to ``max_batch_size`` items off the queue, with at most the server's limit of runs
        (under the lock). A run taken leaves the coalescing map: a newer state queues anew."""
        queue = self._queue
        if not self._queued_runs:
            count = min(len(queue), self._max_batch_size)
            return [queue.popleft() for _ in range(count)]
        queued = self._queued_runs
        batch: list[_Item] = []
        runs = 0
        while queue and len(batch) < self._max_batch_size:
            item = queue[0]
            if isinstance(item, _Run):
                if runs >= MAX_RUNS_PER_REQUEST:
                    break
                runs += 1
                if queued.get(item.run_id) is item:
                    del queued[item.run_id]
            batch.append(queue.popleft())
        return batch

    def _deliver(self, batch: list[_Item]) -> None:
        body, count, spans, runs = self._encode(batch)
        if body is None:
            return
        attempt = 0
        while True:
            if self._expired():
                self._add_dropped(count, spans, runs)
                self._dropped_at_shutdown += count + spans + runs
                logger.warning(
                    "Dashboard event sender shut down before %d events (and %d span records) reached "
                    "%s; dropped", count, spans, self.endpoint,
                )
                return
            outcome, detail, retry_after = self._post(body)
            if outcome == _OK:
                self._sent_events += count
                self._sent_spans += spans
                self._sent_runs += runs
                if self._failing:
                    self._failing = False
                    logger.info("Dashboard server %s reachable again", self.endpoint)
                return
            self._failed_requests += 1
            if outcome == _REJECTED:
                self._rejected_events += count
                self._add_dropped(0, 0, runs)
                if not self._logged_rejection:
                    self._logged_rejection = True
                    logger.warning(
                        "Dashboard server %s refused %d events: %s (further refusals not logged)",
                        self.endpoint, count, detail,
                    )
                return
            if not self._failing:
                self._failing = True
                logger.warning(
                    "Cannot deliver dashboard events to %s (%s); retrying with backoff while events "
                    "queue (at most %d)", self.endpoint, detail, self._max_queue_size,
                )
            self._backoff(attempt, retry_after)
            attempt += 1

    def _encode(self, batch: list[_Item]) -> tuple[bytes | None, int, int, int]:
        """The request body, the number of events, of span records and of runs in it."""
        parts = []
        span_parts = []
        run_parts = []
        span_bytes = 0
        for item in batch:
            if isinstance(item, _Run):
                try:
                    # Checked as the server checks them: one bad run would refuse the whole
                    # request, its events with it.
                    run_parts.append(json_dumps(parse_run_records([item.run])[0]))
                except (IngestError, TypeError, ValueError) as exc:
                    self._add_dropped(0, 0, 1)
                    logger.warning("Dropping a run state the server would refuse: %s", exc)
                continue
            try:
                if isinstance(item, dict):
                    part = json_dumps(item, option=orjson.OPT_NON_STR_KEYS)
                    if span_bytes + len(part) > _MAX_SPAN_BYTES_PER_REQUEST and item.get("detail_attributes"):
                        # Past the request's share for span records, a record goes without its
                        # content and raw attributes (counted as dropped), so the request stays
                        # under the server's body limit (16 MiB by default).
                        detail = item["detail_attributes"]
                        part = json_dumps({
                            **item, "detail_attributes": {},
                            "dropped_attributes": (item.get("dropped_attributes") or 0) + len(detail),
                        }, option=orjson.OPT_NON_STR_KEYS)
                    span_bytes += len(part)
                    span_parts.append(part)
                    continue
                wire = item.to_dict()
                wire.pop("seq", None)  # the server numbers events itself
                parts.append(json_dumps(wire, option=orjson.OPT_NON_STR_KEYS))
            except Exception:
                if isinstance(item, dict):
                    self._add_dropped(0, 1)
                else:
                    self._add_dropped(1)
                logger.warning("Dropping a dashboard event that cannot be serialized: %r", item)
        if not parts and not span_parts and not run_parts:
            return None, 0, 0, 0
        body = b'{"events":[' + b",".join(parts) + b"]"
        if span_parts:
            body += b',"spans":[' + b",".join(span_parts) + b"]"
        if run_parts:
            body += b',"runs":[' + b",".join(run_parts) + b"]"
        return body + b"}", len(parts), len(span_parts), len(run_parts)

    def _add_dropped(self, count: int, spans: int = 0, runs: int = 0) -> None:
        with self._lock:  # submit() counts drops too, from other threads
            self._dropped_events += count
            self._dropped_spans += spans
            self._dropped_runs += runs

    def _expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _backoff(self, attempt: int, retry_after: float | None) -> None:
        delay = min(self._max_retry_delay, _INITIAL_RETRY_DELAY_SECONDS * 2 ** min(attempt, 20))
        delay *= random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._max_retry_delay))
        wake_at = time.monotonic() + delay
        with self._lock:
            while True:
                until = wake_at if self._deadline is None else min(wake_at, self._deadline)
                remaining = until - time.monotonic()
                if remaining <= 0:
                    return
                self._work.wait(remaining)  # woken early by submit/flush/shutdown: recompute

    def _post(self, body: bytes) -> tuple[int, str, float | None]:
        """One request (two when a kept-alive connection turns out closed): outcome, detail,
        Retry-After seconds."""
        def timeout() -> float:
            if self._deadline is None:
                return self._timeout
            return max(min(self._timeout, self._deadline - time.monotonic()), 0.001)

        answer = self._http.post(self._path, body, self._headers, timeout_seconds=timeout)
        status = answer.status
        if status is None:
            return _RETRY, answer.detail, None
        if 200 <= status < 300:
            if b'"stop_runs"' in answer.payload:
                self._note_stop_runs(answer.payload)
            return _OK, str(status), None
        if status == 429 or status >= 500:
            return _RETRY, answer.detail, answer.retry_after
        return _REJECTED, answer.detail, None


    def _note_stop_runs(self, payload: bytes) -> None:
        """Remember the ``"stop_runs"`` of an answer; anything malformed in it is skipped."""
        try:
            answer = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        named = answer.get("stop_runs") if isinstance(answer, dict) else None
        if not isinstance(named, list):
            return
        stops = self._stop_runs
        for item in named[:MAX_STOP_RUNS]:
            if not isinstance(item, dict):
                continue
            run_id, reason, kind = item.get("run_id"), item.get("reason"), item.get("kind")
            if not isinstance(run_id, str) or not 0 < len(run_id) <= 64 or run_id in stops:
                continue
            logger.info("The dashboard server asks to stop run %s: %s", run_id,
                        str(reason)[:_MAX_STOP_TEXT_CHARS])
            stops[run_id] = {
                "reason": reason[:_MAX_STOP_TEXT_CHARS] if isinstance(reason, str) else "run flagged to stop",
                "kind": kind if kind in _STOP_KINDS else "user",
            }
            while len(stops) > MAX_STOP_RUNS:
                del stops[next(iter(stops))]


# ---------------------------------------------------------------------------------- helpers
def _noop() -> None:
    pass


def _attach_suppressed_context() -> Token[context_api.Context]:
    return context_api.attach(suppressing_context())




def _check_int(name: str, value: Any, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "a positive integer" if minimum >= 1 else "a non-negative integer"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return value


def _check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ValueError(f"headers must be a mapping of strings, got {type(headers).__name__}")
    out = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise ValueError(f"headers must map non-empty strings to strings, got {key!r}: {value!r}")
        if any(c in key + value for c in "\r\n\0") or any(c in key for c in " :"):
            raise ValueError(f"headers: invalid header {key!r}")
        out[key] = value
    return out


def _parse_endpoint(endpoint: Any) -> tuple[str, str, int | None, str]:
    """``(scheme, host, port, request path)`` of an endpoint URL."""
    hint = "endpoint must be an http(s) URL like 'http://host:8000'"
    if not isinstance(endpoint, str):
        raise ValueError(f"{hint}, got {endpoint!r}")
    parts = urlsplit(endpoint.strip())
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{hint}: invalid port in {endpoint!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{hint}, got {endpoint!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"{hint} without query or fragment, got {endpoint!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("endpoint must not carry credentials; pass an Authorization header in headers")
    path = parts.path.rstrip("/")
    if not path.endswith(_EVENTS_PATH):
        path += _EVENTS_PATH
    return parts.scheme.lower(), parts.hostname, port, path


def _host_port(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"
