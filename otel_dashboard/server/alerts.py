"""Alerts out: each ``BudgetExceeded`` and ``LoopSuspected`` POSTed as JSON to the configured webhooks.

:class:`AlertSender` subscribes to the server's state (as the broadcaster does) and takes every
``error_occurred`` whose ``data.error_type`` is one of :data:`ALERT_TYPES`. The subscriber only
appends the event to each webhook's bounded queue (:data:`DEFAULT_QUEUE_SIZE`; when full the oldest
alert is dropped and counted) and wakes the event loop once per burst (one ``call_soon_threadsafe``,
the way :mod:`otel_dashboard.server.broadcast.handoff` does): publishing, which may happen on any
thread under the state's lock, never waits for a webhook.

On the loop, one task per webhook sends its alerts in order, one at a time, through one shared
:class:`aiohttp.ClientSession`: each attempt limited to ``timeout_seconds``; a connection error, a
timeout, 408, 425, 429 or 5xx is retried (at most ``max_attempts`` attempts, exponential backoff with
jitter, capped; a ``Retry-After`` header is honoured, capped too); any other status but 2xx gives up
at once (a wrong URL or a revoked secret will not heal). The body is
:func:`~otel_dashboard.server.alert_payload.alert_payload` (see
``docs/guardrails.md``, "Alerts out").

A webhook URL may hold a secret (Slack's do, in the path): it is never logged whole. Log lines, health
and errors show :func:`redact_url` (scheme, host and port, then ``/***``).

With a broker (several replicas), every replica accepts every event; only the replica that leads
(the one that publishes ``metrics_updated``) posts alerts, so a cluster posts each alert once.

Just over 400 lines for a reason: the hand-off, the sending with its retries, and the counters that
health reads are one webhook's life cycle, read best in one file (the payload is in its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import web

from otel_dashboard.model.events import DashboardEvent, EventType, format_timestamp
from otel_dashboard.server.alert_payload import (
    ALERT_TYPES,
    MAX_WEBHOOKS,
    alert_payload,
    base_url_of,
    check_webhook_url,
    redact_url,
)

if TYPE_CHECKING:
    from otel_dashboard.state.dashboard import DashboardState

__all__ = [
    "ALERTS_KEY",
    "ALERT_TYPES",
    "DEFAULT_QUEUE_SIZE",
    "FAILING_AFTER_ATTEMPTS",
    "MAX_WEBHOOKS",
    "AlertSender",
    "alert_payload",
    "base_url_of",
    "check_webhook_url",
    "redact_url",
]

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1000
"""Alerts waiting per webhook; beyond, the oldest is dropped and counted (``dropped``)."""
FAILING_AFTER_ATTEMPTS = 2
"""A webhook is *failing* from this many failed attempts in a row (or once an alert was given up)
until an alert gets through: ``/health`` is then ``degraded``."""

_MAX_ERROR_CHARS = 200
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_STOP_GRACE_SECONDS = 2.0  # at shutdown, what a healthy webhook gets to send what is queued


def _retry_after_seconds(value: str | None, cap: float) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds in ``[0, cap]``; None if absent
    or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return min(max(0.0, (when - datetime.now(timezone.utc)).total_seconds()), cap)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


class _Webhook:
    """One webhook: its queue (shared with the publishing threads under the sender's lock) and counters."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.label = redact_url(url)
        parts = urlsplit(url)
        # What of the URL may be a secret, longest first; "/" and single characters say nothing.
        candidates = (url, parts.path, parts.path.lstrip("/"), parts.query, parts.password or "")
        self._secrets = sorted({p for p in candidates if len(p) > 1}, key=len, reverse=True)
        self.queue: deque[DashboardEvent] = deque()
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.busy = False  # an alert is being sent (taken off the queue, not done)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.retries = 0
        self.failed_in_a_row = 0  # attempts
        self.gave_up_since_success = False
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.last_sent_at: str | None = None

    def scrub(self, text: str) -> str:
        """``text`` with the parts of the URL beyond its scheme and host replaced by ``***``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    @property
    def failing(self) -> bool:
        return self.gave_up_since_success or self.failed_in_a_row >= FAILING_AFTER_ATTEMPTS

    def status(self) -> dict[str, Any]:
        return {
            "webhook": self.label,
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "retries": self.retries,
            "queued": len(self.queue) + (1 if self.busy else 0),
            "failing": self.failing,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_sent_at": self.last_sent_at,
        }


class AlertSender:
    """Posts the state's alert events to webhooks; see the module docstring.

    Args:
        state: the state whose events are watched (subscribed in :meth:`start`).
        urls: the webhooks (each checked by :func:`check_webhook_url`; at most :data:`MAX_WEBHOOKS`).
        timeout_seconds: the limit of one attempt (connect, send, answer).
        max_attempts: attempts per alert and webhook, the first included.
        queue_size: alerts waiting per webhook; beyond, the oldest is dropped and counted.
        backoff_base_seconds: the wait after a first failed attempt; it doubles after each, with jitter
            (between half of it and all of it).
        backoff_cap_seconds: the longest wait between two attempts (a ``Retry-After`` included).
        user_agent: the ``User-Agent`` header of the requests.

    Raises:
        ValueError: an invalid URL or option, named in the message (a URL redacted).
    """

    def __init__(
        self,
        state: DashboardState,
        urls: Iterable[str],
        *,
        timeout_seconds: float = 5.0,
        max_attempts: int = 5,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        backoff_base_seconds: float = 0.5,
        backoff_cap_seconds: float = 30.0,
        user_agent: str = "otel-dashboard",
    ) -> None:
        urls = [check_webhook_url(url) for url in urls]
        if not 1 <= len(urls) <= MAX_WEBHOOKS:
            raise ValueError(f"alert webhooks: between 1 and {MAX_WEBHOOKS} URLs, got {len(urls)}")
        seconds = (("timeout_seconds", timeout_seconds), ("backoff_base_seconds", backoff_base_seconds),
                   ("backoff_cap_seconds", backoff_cap_seconds))
        for name, value in seconds:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 86_400:
                raise ValueError(f"{name} must be a number of seconds in (0, 86400], got {value!r}")
        for name, count in (("max_attempts", max_attempts), ("queue_size", queue_size)):
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1_000_000:
                raise ValueError(f"{name} must be an integer between 1 and 1000000, got {count!r}")
        self.state = state
        self.timeout_seconds = float(timeout_seconds)
        self.max_attempts = max_attempts
        self.queue_size = queue_size
        self.backoff_base_seconds = float(backoff_base_seconds)
        self.backoff_cap_seconds = float(backoff_cap_seconds)
        self.user_agent = user_agent
        self.base_url: str | None = None
        """How users reach the dashboard (the server sets it once it listens): the alerts' links."""
        self.is_leader: Callable[[], Awaitable[bool]] | None = None
        """With a broker: whether this replica posts alerts (asked before each one); None: always."""
        self.not_leader = 0  # alerts another replica posts
        self._webhooks = tuple(_Webhook(url) for url in urls)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_scheduled = False
        self._closing = False
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Subscribe to the state and start one sending task per webhook (call on the running loop)."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        # Our own session: no cookies kept between webhooks, no redirects followed (see _attempt).
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": self.user_agent},
        )
        for webhook in self._webhooks:
            webhook.wakeup = asyncio.Event()  # bound to this loop
            webhook.task = asyncio.ensure_future(self._run(webhook))
        self.state.subscribe(self._on_event)

    async def stop(self) -> None:
        """Unsubscribe; give the webhooks that are not failing up to 2 s to send what is queued; then
        cancel the tasks and close the session. Idempotent. Alerts left unsent are logged (counted)."""
        self.state.unsubscribe(self._on_event)
        if self._loop is None:
            return
        # Each task ends once its queue is empty; a failing webhook's is cancelled at once.
        self._closing = True
        draining = []
        for webhook in self._webhooks:
            webhook.wakeup.set()
            if webhook.task is not None:
                if webhook.failed_in_a_row:
                    webhook.task.cancel()
                else:
                    draining.append(webhook.task)
        if draining:
            await asyncio.wait(draining, timeout=_STOP_GRACE_SECONDS)
        tasks = [w.task for w in self._webhooks if w.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for webhook in self._webhooks:
            webhook.task = None
            with self._lock:
                unsent = len(webhook.queue) + (1 if webhook.busy else 0)
                webhook.queue.clear()
            webhook.busy = False
            if unsent:
                logger.warning("alert webhook %s: %d alert(s) not sent at shutdown", webhook.label, unsent)
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._loop = None
        self._closing = False

    # ------------------------------------------------------------------ the subscriber (any thread)
    def _on_event(self, event: DashboardEvent) -> None:
        """The state's subscriber: called under its lock, on any thread; only enqueues."""
        if event.event_type is not EventType.ERROR_OCCURRED:
            return
        data = event.data
        if not isinstance(data, dict) or data.get("error_type") not in ALERT_TYPES:
            return
        loop = self._loop
        if loop is None:
            return
        with self._lock:
            for webhook in self._webhooks:
                queue = webhook.queue
                if len(queue) >= self.queue_size:
                    queue.popleft()
                    webhook.dropped += 1
                queue.append(event)
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        with contextlib.suppress(RuntimeError):  # RuntimeError: the loop is closed, the server going away
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self._lock:
            self._wake_scheduled = False  # before waking: a later append schedules its own wake
        for webhook in self._webhooks:
            webhook.wakeup.set()

    # ------------------------------------------------------------------ sending (on the loop)
    async def _run(self, webhook: _Webhook) -> None:
        while True:
            with self._lock:
                event = webhook.queue.popleft() if webhook.queue else None
                webhook.busy = event is not None
            if event is None:
                if self._closing:
                    return
                webhook.wakeup.clear()
                if not webhook.queue:  # nothing came in between: sleep until the next wake
                    await webhook.wakeup.wait()
                continue
            try:
                await self._send(webhook, event)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end the webhook's task; the alert counts as failed
                webhook.failed += 1
                webhook.gave_up_since_success = True
                logger.exception("alert webhook %s: sending alert seq=%s failed", webhook.label, event.seq)
            finally:
                webhook.busy = False

    async def _send(self, webhook: _Webhook, event: DashboardEvent) -> None:
        is_leader = self.is_leader
        if is_leader is not None and not await is_leader():
            self.not_leader += 1
            return
        body = orjson.dumps(alert_payload(event, base_url=self.base_url), default=str)
        for attempt in range(1, self.max_attempts + 1):
            error, retryable, retry_after = await self._attempt(webhook, body, event)
            if error is None:
                webhook.sent += 1
                webhook.failed_in_a_row = 0
                webhook.gave_up_since_success = False
                webhook.last_sent_at = format_timestamp()
                return
            webhook.failed_in_a_row += 1
            webhook.last_error = error
            webhook.last_error_at = format_timestamp()
            if not retryable or attempt == self.max_attempts:
                break
            webhook.retries += 1
            await asyncio.sleep(retry_after if retry_after is not None else self._backoff(attempt))
        webhook.failed += 1
        webhook.gave_up_since_success = True
        logger.warning("alert webhook %s: alert seq=%s (%s) not delivered after %d attempt(s): %s",
                       webhook.label, event.seq, event.data.get("error_type"), attempt, webhook.last_error)

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        return delay / 2 + random.uniform(0, delay / 2)  # jitter: webhooks sharing an outage spread out

    async def _attempt(
        self, webhook: _Webhook, body: bytes, event: DashboardEvent
    ) -> tuple[str | None, bool, float | None]:
        """One POST: (None, ...) when delivered, else (the error in one line, retryable, Retry-After)."""
        session = self._session
        assert session is not None
        headers = {"Content-Type": "application/json", "X-Otel-Dashboard-Alert-Id": event.event_id}
        try:
            async with session.post(webhook.url, data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                if 200 <= status < 300:
                    return None, False, None
                if 300 <= status < 400:
                    return f"HTTP {status}: redirects are not followed (give the final URL)", False, None
                try:
                    snippet = (await resp.content.read(_MAX_ERROR_CHARS)).decode("utf-8", "replace")
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    snippet = ""
                # A receiver's error page may quote the path ("Cannot POST /services/..."): not shown.
                snippet = webhook.scrub(snippet)
                error = _one_line(f"HTTP {status}" + (f": {snippet}" if snippet.strip() else ""))
                retryable = status >= 500 or status in _RETRYABLE_STATUS
                retry_after = _retry_after_seconds(resp.headers.get("Retry-After"), self.backoff_cap_seconds)
                return error, retryable, retry_after
        except asyncio.TimeoutError:
            return f"timed out after {self.timeout_seconds:g} s", True, None
        except (aiohttp.ClientError, OSError) as exc:  # OSError: a reset that aiohttp did not wrap
            # The exception's text may quote the whole URL (a ClientResponseError does): name its type only,
            # with the OS error of a failed connection, which holds no path.
            reason = type(exc).__name__
            os_error = getattr(exc, "os_error", None)
            if os_error is not None:
                reason += f": {getattr(os_error, 'strerror', None) or type(os_error).__name__}"
            return _one_line(reason), True, None

    # ------------------------------------------------------------------ health
    @property
    def failing(self) -> list[str]:
        """The redacted URLs of the webhooks that keep failing (see :data:`FAILING_AFTER_ATTEMPTS`)."""
        return [w.label for w in self._webhooks if w.failing]

    def health(self) -> list[dict[str, Any]]:
        """Per webhook, in the configured order: ``webhook`` (redacted), ``sent``, ``failed`` (alerts
        given up), ``dropped`` (queue full), ``retries``, ``queued``, ``failing``, ``last_error``,
        ``last_error_at``, ``last_sent_at``."""
        return [w.status() for w in self._webhooks]

    def stats(self) -> dict[str, Any]:
        """What ``/stats`` shows: the settings, :meth:`health`'s list, and the alerts another replica sent."""
        return {
            "webhooks": self.health(),
            "queue_size": self.queue_size,
            "timeout_seconds": self.timeout_seconds,
            "max_attempts": self.max_attempts,
            "not_leader": self.not_leader,
        }


ALERTS_KEY = web.AppKey("otel_dashboard_alerts", AlertSender)
"""The application key of the server's :class:`AlertSender` (only set with ``alert_webhooks=``)."""
