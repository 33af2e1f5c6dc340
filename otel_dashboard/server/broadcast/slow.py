"""The slow-client policy: one client that cannot keep up never slows the others (``docs/server.md``).

* Lag beyond ``client_queue_size`` entries: the oldest ``client_queue_size`` are dropped for that
  client, which is told with a ``gap`` (``queue_overflow``) (:meth:`SlowClients.overflow`);
* a second overflow within ``overflow_window_seconds``, or a transport that stays full (or a send
  that stays blocked) longer than ``send_timeout_seconds`` (:meth:`SlowClients.watchdog`), closes it
  with 1013;
* more than ``max_client_queue_bytes`` queued for one client (its control messages: replies,
  gaps, provisional events; plus its transport's unsent bytes) closes it with 1013 at once
  (:meth:`SlowClients.check_queue`): a client that sends messages and never reads the replies
  cannot make the server hold them for it until the watchdog fires;
* more than ``max_total_queue_bytes`` queued for all clients together closes the client holding the
  most (1013), until the total is under the budget again (:meth:`SlowClients.enforce_total`): many
  clients each under their own cap cannot take the machine either;
* every close is bounded (:meth:`SlowClients.close`): a peer that does not take the close frame in
  time has its connection aborted.

Each of those closes is counted by reason (``Counters.closed_clients``, in ``/stats`` under
``slow_clients``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from otel_dashboard.server.broadcast.clients import Client, ClientRegistry
from otel_dashboard.server.broadcast.control import GAP, add_control, clear_controls, gap_message
from otel_dashboard.server.broadcast.counters import Counters
from otel_dashboard.server.broadcast.log import EventLog
from otel_dashboard.server.options import ServerOptions

__all__ = ["CLOSE_REASONS", "CODE_TRY_AGAIN_LATER", "SlowClients"]

logger = logging.getLogger(__name__)

CODE_TRY_AGAIN_LATER = 1013  # WSCloseCode.TRY_AGAIN_LATER, spelled out for old aiohttp versions
# Why slow clients are closed (the keys of Counters.closed_clients, each shown even when 0).
CLOSE_REASONS = ("queue_overflow", "send_timeout", "queue_bytes", "total_queue_bytes")
# The slow-client warnings (a close, an overflow) are logged once per kind per this many seconds, the
# rest at DEBUG: a hostile client can be made slow at will, by the thousand.
_LOG_EVERY_SECONDS = 60.0
# Closing a client: after ws.close() returns, poll this often (until the deadline) for its buffer to
# empty before aborting the connection.
_CLOSE_POLL_SECONDS = 0.05


class SlowClients:
    """Applies the slow-client policy to the clients of one broadcaster.

    Args:
        log: the broadcaster's log (what a client has not been sent yet).
        clients: the broadcaster's clients (the total budget picks among them).
        counters: where drops and closes are counted.
        options: ``client_queue_size``, ``overflow_window_seconds``, ``send_timeout_seconds``,
            ``max_client_queue_bytes``, ``max_total_queue_bytes``.
        spawn: runs a coroutine as a task the broadcaster cancels at cleanup.
    """

    def __init__(
        self,
        log: EventLog,
        clients: ClientRegistry,
        counters: Counters,
        options: ServerOptions,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
    ) -> None:
        self._log = log
        self._clients = clients
        self._counters = counters
        self._options = options
        self._spawn = spawn
        self._last_logged: dict[str, float] = {}

    def _log_slow(self, kind: str, message: str, *args: object) -> None:
        """Log a slow-client warning: the first of ``kind`` per minute at WARNING, the rest at DEBUG."""
        now = time.monotonic()
        if now - self._last_logged.get(kind, -_LOG_EVERY_SECONDS) >= _LOG_EVERY_SECONDS:
            self._last_logged[kind] = now
            logger.warning(message + " (more of these in the next %.0f s are logged at DEBUG; "
                           "/stats counts them)", *args, _LOG_EVERY_SECONDS)
        else:
            logger.debug(message, *args)

    def overflow(self, client: Client, end: int) -> None:
        """``client`` lags more than ``client_queue_size`` entries: drop the oldest, or close it."""
        now = time.monotonic()
        window = self._options.overflow_window_seconds
        if client.last_overflow is not None and now - client.last_overflow < window:
            self.kick(client, CODE_TRY_AGAIN_LATER,
                      f"client too slow: queue overflowed twice within {window:g} s", why="queue_overflow")
            return
        client.last_overflow = now
        # As a full queue of client_queue_size would have been: the oldest that many are dropped
        # and the newer ones still follow (a lag of two queues is a second overflow at once).
        start = client.cursor
        stop = min(end, start + self._options.client_queue_size)
        seqs = self._log.pending_events(client, start, stop)
        client.cursor = stop
        if seqs:
            self._counters.drops["queue_overflow"] += len(seqs)
            client.dropped_events += len(seqs)
            add_control(client, stop, GAP, gap_message(seqs[0], seqs[-1], "queue_overflow"))
            self._counters.note_drop()
        self._log_slow("overflow", "dashboard client %s (%s) is not keeping up: dropped %d queued events",
                       client.id, client.remote, len(seqs))

    def check_queue(self, client: Client) -> None:
        """Something was just queued for ``client``: apply the byte caps (``max_*_queue_bytes``)."""
        if client.closing:
            return
        cap = self._options.max_client_queue_bytes
        queued = client.queued_bytes()
        if queued > cap:
            self.kick(client, CODE_TRY_AGAIN_LATER,
                      f"client too slow: more than {cap} bytes queued for it", why="queue_bytes")
        elif client.queued.total > self._options.max_total_queue_bytes:
            self.enforce_total()

    def enforce_total(self) -> None:
        """Close the clients holding the most until the bytes queued for all are within the budget.

        The total is every client's control bytes (exact) plus the unsent bytes of the transports of
        the clients not closing (summed here, and by the watchdog each tick). A client closed frees
        its control bytes at once; its transport's go with its connection, within the close's bounded
        time, and are no longer counted.
        """
        budget = self._options.max_total_queue_bytes
        queued = self._clients.queued
        sizes = [(c.queued_bytes(), c) for c in self._clients.all if not c.closing]
        # The transports of the clients still served (a closing one's bytes go with its connection).
        queued.transports = sum(size - c.control_bytes for size, c in sizes)
        if queued.total <= budget:
            return
        sizes.sort(key=lambda item: item[0], reverse=True)
        for size, client in sizes:
            if queued.total <= budget or size == 0:
                break
            queued.transports -= size - client.control_bytes
            self.kick(client, CODE_TRY_AGAIN_LATER,
                      f"server busy: more than {budget} bytes queued for all clients",
                      why="total_queue_bytes")

    def kick(self, client: Client, code: int, reason: str, *, why: str | None = None) -> None:
        """Close a client from synchronous code (the close itself runs in a task).

        What it has not been sent is counted as dropped (``slow_client_closed``); its control
        messages are forgotten.

        Args:
            client: the client.
            code: the WebSocket close code.
            reason: the close reason (for the client and the log).
            why: one of :data:`CLOSE_REASONS` to count the close under; None for other closes.
        """
        if client.closing:
            return
        if why is not None:
            self._counters.closed_clients[why] += 1
        log = self._log
        end = log.end
        if client.cursor < end:
            log.skip_seen(client, end)
            queued = len(log.pending_events(client, client.cursor, end))
            if queued:
                self._counters.drops["slow_client_closed"] += queued
                client.dropped_events += queued
                self._counters.note_drop()
        client.closing = True  # the flush pass skips it from now on
        clear_controls(client)
        client.replay = None
        self._log_slow(why or reason, "closing dashboard client %s (%s): %s",
                       client.id, client.remote, reason)
        client.close_task = self._spawn(self.close(client, code, reason))

    async def watchdog(self, clients: ClientRegistry, timeout: float) -> None:
        """Close (1013) every client whose transport stayed full, or send stayed blocked, over ``timeout``;
        and apply the total budget (:meth:`enforce_total`), which also refreshes the transports' sum."""
        interval = min(1.0, timeout / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for client in clients.all:
                started = client.send_started
                if started is not None and now - started > timeout and not client.closing:
                    self.kick(client, CODE_TRY_AGAIN_LATER,
                              f"client too slow: a send took longer than {timeout:g} s", why="send_timeout")
            if clients:
                self.enforce_total()
            else:
                clients.queued.transports = 0

    async def close(self, client: Client, code: int, reason: str, timeout: float | None = None) -> None:
        """Close a client's socket; abort its transport if the close cannot complete in time.

        Args:
            client: the client.
            code: the WebSocket close code.
            reason: the close reason (cut to 120 bytes, as a close frame allows).
            timeout: how long the close may take; ``send_timeout_seconds`` by default.
        """
        client.closing = True
        loop = asyncio.get_running_loop()
        if timeout is None:
            timeout = self._options.send_timeout_seconds
        deadline = loop.time() + timeout
        writer = client.writer_task
        if writer is not None and writer is not asyncio.current_task() and client.send_started is None:
            # An idle writer is cancelled. One blocked in a send is left alone: cancelling it would
            # cancel aiohttp's shared drain future and with it our close frame; the close frame
            # queues behind its frame and both go out when (if) the peer reads.
            writer.cancel()
            await asyncio.wait({writer})
        # ws.close() runs in its own task: aiohttp may cancel its inner waits when the connection
        # goes away, and that must not look like (or become) a cancellation of this task.
        closer = asyncio.ensure_future(client.ws.close(code=code, message=reason.encode()[:120]))
        try:
            await asyncio.wait({closer}, timeout=timeout)
        finally:
            if not closer.done():
                closer.cancel()
        clean = closer.done() and not closer.cancelled() and closer.exception() is None
        transport = client.transport
        if transport is None:
            return
        # A slow but live peer gets until the deadline to take the close frame; poll, bounded.
        polls = int(max(0.0, deadline - loop.time()) / _CLOSE_POLL_SECONDS) if clean else 0
        for _ in range(polls):
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(_CLOSE_POLL_SECONDS)
        if not clean or transport.get_write_buffer_size() > 0:
            logger.info("aborting the connection of dashboard client %s", client.id)
            transport.abort()
        if writer is not None and not writer.done():
            writer.cancel()
