"""Rate and connection limits for the dashboard server: token buckets keyed by client address.

Everything here runs on the server's event loop and is **not thread-safe**: there is no lock, because
aiohttp calls middlewares and handlers on one loop thread. Time comes from a monotonic clock (it never
jumps with the wall clock), every operation is O(1), and the per-address tables are bounded (least
recently used entries are forgotten first).

Usage::

    bucket = TokenBucket(rate=100, burst=200)      # per WebSocket connection
    if not bucket.take():
        ...                                        # over the rate: close with 1008

    ingest = IngestRateLimiter(rate=250_000, burst=500_000)
    retry_after = ingest.take(request.remote, len(events))   # 0.0 = admitted

    connections = ConnectionLimiter(max_per_address=4096)
    if connections.acquire(ip):
        try: ...
        finally: connections.release(ip)
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = [
    "FAILED_DECODE_BYTES_PER_EVENT",
    "ConnectionLimiter",
    "IngestRateLimiter",
    "TokenBucket",
    "failed_decode_events",
    "retry_after_header",
]

Clock = Callable[[], float]

_DEFAULT_MAX_ADDRESSES = 10_000

FAILED_DECODE_BYTES_PER_EVENT = 64
"""A body that fails to decode is charged one event per this many bytes inflated or parsed: about the
smallest span, so garbage costs the sender what the same bytes of valid spans would."""


def failed_decode_events(examined_bytes: int, minimum: int) -> int:
    """The events charged for an ingest body that could not be decoded after ``examined_bytes``."""
    return max(minimum, max(0, examined_bytes) // FAILED_DECODE_BYTES_PER_EVENT)


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` takes whole seconds (RFC 9110); round up, and never say 0."""
    if not math.isfinite(seconds):
        return "60"
    return str(max(1, math.ceil(seconds)))


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, holding at most ``burst``.

    It starts full. :meth:`take` is strict (it never goes below zero); :meth:`charge` may leave the
    bucket in debt, which the refill pays back before anything else is admitted.

    Args:
        rate: tokens added per second, > 0.
        burst: capacity, >= 1.
        clock: a monotonic clock in seconds (tests pass a fake one).
    """

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, *, clock: Clock = time.monotonic) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a finite number > 0, got {rate!r}")
        if not burst >= 1 or not math.isfinite(burst):
            raise ValueError(f"burst must be a finite number >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    def _refill(self) -> float:
        now = self._clock()
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._stamp = now
        return self._tokens

    @property
    def tokens(self) -> float:
        """Tokens available now (negative while in debt)."""
        return self._refill()

    def take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if they are all there; returns whether it did."""
        if self._refill() >= n:
            self._tokens -= n
            return True
        return False

    def charge(self, n: float) -> None:
        """Take ``n`` tokens unconditionally; the bucket may go into debt."""
        self._refill()
        self._tokens -= n

    def wait_seconds(self, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens are available (``inf`` when ``n`` exceeds the burst)."""
        if n > self.burst:
            return math.inf
        missing = n - self._refill()
        return missing / self.rate if missing > 0 else 0.0

    def idle_full(self) -> bool:
        """Whether the bucket is full again, so forgetting it changes nothing."""
        return self._refill() >= self.burst


class IngestRateLimiter:
    """Events per second per client address, as one token bucket per address.

    A request is admitted while its address's bucket is not empty, and is then charged for all its
    events, even beyond what is left (the bucket goes into debt). So a batch larger than the burst
    still goes through once, and the next requests wait until the debt is paid back: the long-run rate
    never exceeds ``rate`` and no request is ever split.

    At most ``max_addresses`` buckets are kept; beyond that the least recently used one is forgotten
    (that is lossless once it has refilled, which at the default rates takes two seconds of silence).

    Args:
        rate: events per second per address.
        burst: events an idle address may send at once.
        max_addresses: buckets kept at most.
        clock: a monotonic clock in seconds.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_addresses: int = _DEFAULT_MAX_ADDRESSES,
        clock: Clock = time.monotonic,
    ) -> None:
        TokenBucket(rate, burst)  # validates
        if max_addresses < 1:
            raise ValueError(f"max_addresses must be >= 1, got {max_addresses!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_addresses = max_addresses
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, address: str, *, create: bool) -> TokenBucket | None:
        bucket = self._buckets.get(address)
        if bucket is not None:
            self._buckets.move_to_end(address)
            return bucket
        if not create:
            return None
        if len(self._buckets) >= self.max_addresses:
            self._buckets.popitem(last=False)
        bucket = TokenBucket(self.rate, self.burst, clock=self._clock)
        self._buckets[address] = bucket
        return bucket

    def retry_after(self, address: str | None) -> float:
        """Seconds before a request from ``address`` would be admitted; 0.0 when it would be now."""
        bucket = self._bucket(address or "", create=False)
        if bucket is None:
            return 0.0
        tokens = bucket.tokens
        return 0.0 if tokens > 0 else max(-tokens / self.rate, 1e-3)

    def take(self, address: str | None, n_events: int) -> float:
        """Admit and charge ``n_events`` from ``address``, or say how long to wait.

        Returns:
            0.0 when admitted (the events are charged), else the seconds until the bucket is no longer
            empty (nothing is charged).
        """
        wait = self.retry_after(address)
        if wait > 0:
            return wait
        self.charge(address, n_events)
        return 0.0

    def charge(self, address: str | None, n_events: int) -> None:
        """Charge ``n_events`` to ``address`` unconditionally (its bucket may go into debt): for work
        already done that admitted nothing, like a body that failed to decode."""
        bucket = self._bucket(address or "", create=True)
        assert bucket is not None
        bucket.charge(max(0, n_events))


class ConnectionLimiter:
    """Counts open connections per client address; :meth:`acquire` refuses beyond the limit.

    Memory is bounded by the number of open connections: an address whose count drops to zero is
    forgotten.
    """

    def __init__(self, max_per_address: int) -> None:
        if max_per_address < 1:
            raise ValueError(f"max_per_address must be >= 1, got {max_per_address!r}")
        self.max_per_address = max_per_address
        self._open: dict[str, int] = {}
        self._total = 0

    def __len__(self) -> int:
        return len(self._open)

    def count(self, address: str | None) -> int:
        """Connections currently open from ``address``."""
        return self._open.get(address or "", 0)

    @property
    def total(self) -> int:
        """Connections currently open from all addresses."""
        return self._total

    def acquire(self, address: str | None) -> bool:
        """Count one more connection from ``address``; False (and nothing counted) when at the limit."""
        key = address or ""
        current = self._open.get(key, 0)
        if current >= self.max_per_address:
            return False
        self._open[key] = current + 1
        self._total += 1
        return True

    def release(self, address: str | None) -> None:
        """Count one connection from ``address`` less (a release without acquire is ignored)."""
        key = address or ""
        current = self._open.get(key, 0)
        if current <= 0:
            return
        self._total -= 1
        if current == 1:
            del self._open[key]
        else:
            self._open[key] = current - 1
