"""The benchmarks' load generator: N WebSocket clients and one event producer, in a process of its own.

    python benchmarks/loadgen.py --ws-url ws://127.0.0.1:8000/ws \\
        --ingest-url http://127.0.0.1:8000/api/events --clients 100 --rate 1000 --duration 3

It connects ``--clients`` WebSocket clients, all in one event loop, then runs one of the modes below.
Two client implementations: ``--client raw`` (the default) is a minimal RFC 6455 client written as an
asyncio buffered protocol: no task and no message object per client, the transport reads straight
into its buffer and the frames are walked in place, so a thousand clients cost the load process
little per frame (aiohttp's client costs ~20 us per message here: with it the load generator, not
the server, was the bottleneck). ``--client aiohttp`` uses aiohttp's ``ClientWebSocketResponse`` (one
reader task each) to cross-check. ``--deflate`` offers permessage-deflate as browsers do (aiohttp:
``compress=15``).

* a **step** (``--rate R --duration D``): a producer POSTs ``{"events": [...]}`` to the ingest URL on
  a schedule (event *i* is due at ``start + i/R``; whatever is due goes in the next POST, at most
  100 events a POST (R/400 above 40,000 events/s) and ``--max-inflight`` requests at a time), and
  every client counts the events it receives. The step passes when every event was accepted and
  every client received every event by ``--grace`` seconds after the last event was due;
* a **flood** (``--flood``): ``--concurrency`` connections POST batches of ``--batch`` events as fast
  as the server answers, for ``--duration`` seconds; reports events/s accepted (answered 200) and
  delivered: the events every client received over the time until the last client's last one arrived,
  both as the clients saw them (each client stamps the frames it counts);
* **hold** (``--hold``): keep the clients connected and idle until stdin closes (memory benchmark).

With ``--control`` it connects once and then takes JSON commands on stdin, one a line
(``{"cmd": "step", "rate": 1000, "duration": 2, "grace": 0.5}``, ``{"cmd": "flood", ...}``,
``{"cmd": "quit"}``) and answers each with one JSON line on stdout; the benchmark scripts drive it
this way (see :class:`LoadGen`), so the clients stay connected across the steps of a rate search.

Every event carries a marker in its data, ``"lg": "R<run>x<i>t<send time ns>"``. A client counts the
markers of the current run in each frame it receives (a byte count, whatever the framing: one event
per frame or many), so the same client code measures every server. Latency is receive time minus
send time (``time.monotonic_ns`` of this one process: producer and clients share the clock) and is
taken, for every event, on ``--latency-clients`` clients spread evenly over the connection order
(parsing every frame of every client would make the load generator the bottleneck). Before each step a
single probe event is sent and awaited by every client: a barrier that drains what a previous step
left queued and proves every client is registered; clients that do not get it are reconnected.

Several servers at once (replicas sharing their events, ``bench_cluster.py``): ``--ws-url`` takes a
comma-separated list and the clients are split into as many contiguous blocks of the connection order,
one per URL (blocks, not round-robin, so that the latency clients, spread over the connection order,
land on every server evenly, again spread over each server's own clients); ``--ingest-url`` takes a
comma-separated list too, and the producer's POSTs then go to each URL in turn. One URL each (the
default use) behaves as before.

Everything goes to loopback addresses only. ``--source-ips`` spreads the clients over several
loopback source addresses (127.0.0.2, ...) for servers that limit connections per address.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import queue
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from _common import free_port, stop_process  # this script's folder is on sys.path, as a script and imported

__all__ = [
    "LoadGen",
    "ServerSpec",
    "percentile",
    "proc_cpu_seconds",
    "proc_rss_bytes",
    "raise_fd_limit",
    "server_process",
    "server_spec",
]

# --------------------------------------------------------------------------- shared helpers
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14 and 15)


def proc_rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (VmRSS of /proc/<pid>/status), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0-1) of an already sorted sequence; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _tail(path: str, chars: int = 3000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - chars))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


@contextlib.contextmanager
def server_process(cmd: Sequence[str], health_url: str, *, startup_timeout: float = 20.0,
                   env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[Any]]:
    """Run ``cmd`` (a server) until ``health_url`` answers 200; yield the process; always stop it.

    Its output goes to a temporary file (shown if it fails to start), never to a pipe nobody reads.
    """
    log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                with urllib.request.urlopen(health_url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server {cmd!r} did not start: {_tail(log.name)}") from None
                time.sleep(0.02)
        yield proc
    finally:
        stop_process(proc)
        log.close()
        with contextlib.suppress(OSError):
            os.unlink(log.name)


_HERE = os.path.dirname(os.path.abspath(__file__))


@dataclasses.dataclass
class ServerSpec:
    """How to start one of the benchmarked servers, and where it listens (loopback, free ports)."""

    name: str
    cmd: list[str]
    ws_url: str
    ingest_url: str
    health_url: str


def server_spec(kind: str, *, db: str = ":memory:", extra: Sequence[str] = ()) -> ServerSpec:
    """``ours`` (``otel-dashboard serve --db DB``), ``naive`` (the original design's loop, aiohttp's
    default ``compress=True``), ``bare`` (the same aiohttp handler without deflate) or ``websockets``."""
    port = free_port()
    base = f"127.0.0.1:{port}"
    if kind == "ours":
        # OTLP/gRPC off unless ``extra`` asks for it (replicas at once must not both want 4317).
        cmd = [sys.executable, "-m", "otel_dashboard", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--grpc-port", "0", "--db", db, "--log-level", "warning", *extra]
        return ServerSpec(kind, cmd, f"ws://{base}/ws", f"http://{base}/api/events", f"http://{base}/health")
    if kind in ("naive", "bare"):
        cmd = [sys.executable, os.path.join(_HERE, "baselines", "naive_server.py"), "--port", str(port),
               *extra]
        if kind == "bare":
            cmd.append("--no-compress")
        return ServerSpec(kind, cmd, f"ws://{base}/ws", f"http://{base}/api/events", f"http://{base}/health")
    if kind == "websockets":
        ingest = free_port()
        cmd = [sys.executable, os.path.join(_HERE, "baselines", "websockets_server.py"),
               "--ws-port", str(port), "--ingest-port", str(ingest), *extra]
        return ServerSpec(kind, cmd, f"ws://{base}/", f"http://127.0.0.1:{ingest}/api/events",
                          f"http://127.0.0.1:{ingest}/health")
    raise ValueError(f"unknown server {kind!r}")


class LoadGen:
    """Drives ``loadgen.py --control`` in a subprocess (the benchmark scripts' side).

    Starting it connects the clients (``ready`` holds what the load generator reported); each
    :meth:`step` / :meth:`flood` is one command and one JSON answer. Use it as a context manager:
    the process is always stopped (terminated, then killed) on exit. ``ws_url`` and ``ingest_url``
    may be comma-separated lists (several servers: see the module docstring).
    """

    def __init__(self, ws_url: str, ingest_url: str, clients: int, *, deflate: bool = False,
                 source_ips: Sequence[str] = ("127.0.0.1",), latency_clients: int = 10,
                 connect_concurrency: int = 64, hold: bool = False, ready_timeout: float = 180.0,
                 client: str = "raw") -> None:
        cmd = [sys.executable, os.path.abspath(__file__), "--ws-url", ws_url, "--ingest-url", ingest_url,
               "--clients", str(clients), "--latency-clients", str(latency_clients), "--client", client,
               "--source-ips", ",".join(source_ips), "--connect-concurrency", str(connect_concurrency),
               "--hold" if hold else "--control"]
        if deflate:
            cmd.append("--deflate")
        self._log = tempfile.NamedTemporaryFile(prefix="loadgen-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, bufsize=1)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.ready = self._answer(ready_timeout)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _answer(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"load generator: no answer in {timeout:g} s; "
                                   f"log: {_tail(self._log.name)}") from None
            if line is None:
                raise RuntimeError(f"load generator exited ({self.proc.poll()}): {_tail(self._log.name)}")
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)

    def command(self, timeout: float, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._answer(timeout)

    def step(self, rate: float, duration: float, grace: float, max_inflight: int = 4) -> dict[str, Any]:
        """One rate step; bounded by the barrier (<= 2 x 10 s), the step and 60 s of slack."""
        return self.command(duration + grace + 90.0, cmd="step", rate=rate, duration=duration,
                            grace=grace, max_inflight=max_inflight)

    def flood(self, duration: float, batch: int, concurrency: int, grace: float) -> dict[str, Any]:
        return self.command(duration + grace + 90.0, cmd="flood", duration=duration, batch=batch,
                            concurrency=concurrency, grace=grace)

    def close(self) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                with contextlib.suppress(OSError, ValueError):
                    self.proc.stdin.write('{"cmd": "quit"}\n')
                    self.proc.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(15)
        finally:
            stop_process(self.proc, 5)
            self._log.close()
            with contextlib.suppress(OSError):
                os.unlink(self._log.name)

    def __enter__(self) -> LoadGen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- the load process
_MARK_RE = re.compile(rb'"R(\d+)x(\d+)t(\d+)"')
_JSON = {"Content-Type": "application/json"}
_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
_SPAN_ID = "00f067aa0ba902b7"
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _events(run_id: int, first: int, n: int, t_ns: int) -> list[dict[str, Any]]:
    """The benchmark's event payload (about 300 bytes on the wire once a server adds its fields)."""
    return [{
        "event_type": "quality_score_updated",
        "severity": "info",
        "trace_id": _TRACE_ID,
        "span_id": _SPAN_ID,
        "data": {"agent_id": "researcher-1", "agent_name": "Researcher", "quality_score": 87.5,
                 "metric": "relevance", "lg": f"R{run_id}x{i}t{t_ns}"},
    } for i in range(first, first + n)]


class _Run:
    __slots__ = ("clients", "completed", "done", "expected", "id", "id_bytes", "last_complete", "tag")

    def __init__(self, run_id: int, expected: int | None, clients: int) -> None:
        self.id = run_id
        self.id_bytes = b"%d" % run_id
        self.tag = b'"R%dx' % run_id
        self.expected = expected
        self.clients = clients
        self.completed = 0
        self.last_complete = 0.0
        self.done = asyncio.Event()
        if clients == 0:
            self.done.set()


class _Client:
    """One WebSocket client's counters; fed with message payloads by either client implementation."""

    __slots__ = ("closed", "count", "deflate", "done_run", "frames", "index", "last_ns", "latencies", "load",
                 "measure", "seen", "task", "transport", "ws")

    def __init__(self, load: _Load, index: int, measure: bool) -> None:
        self.load = load
        self.index = index
        self.measure = measure
        self.closed = False
        self.deflate = False  # permessage-deflate negotiated
        self.count = 0
        self.frames = 0
        self.last_ns = 0  # when the last frame with events of the current run arrived (time.monotonic_ns)
        self.done_run = -1
        self.latencies: list[int] = []
        self.seen: set[int] = set()
        self.task: asyncio.Task[None] | None = None  # aiohttp client: its reader task
        self.ws: Any = None  # aiohttp client: its ClientWebSocketResponse
        self.transport: asyncio.Transport | None = None  # raw client: its transport

    def reset(self) -> None:
        self.count = 0
        self.frames = 0
        self.last_ns = 0
        self.latencies = []
        self.seen = set()

    def on_message(self, data: bytes | bytearray, start: int, end: int, now_ns: int) -> None:
        """One text/binary message payload, ``data[start:end]``, received at ``now_ns``."""
        run = self.load.current
        if run is None:
            return
        n = data.count(run.tag, start, end)
        if not n:
            return
        self.count += n
        self.frames += 1
        self.last_ns = now_ns
        if self.measure:
            rid = run.id_bytes
            latencies = self.latencies
            seen = self.seen
            for m in _MARK_RE.finditer(data, start, end):
                if m.group(1) == rid:
                    latencies.append(now_ns - int(m.group(3)))
                    seen.add(int(m.group(2)))
        if run.expected is not None and self.count >= run.expected and self.done_run != run.id:
            self.load.complete(self, run)

    def abort(self) -> None:
        self.closed = True
        if self.task is not None:
            self.task.cancel()
        if self.transport is not None:
            self.transport.abort()


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    stream = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return key + (int.from_bytes(payload, "big") ^ stream).to_bytes(n, "big")


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame with a payload of at most 125 bytes (control frames: pong, close)."""
    payload = payload[:125]
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + _mask(payload)


class _RawWebSocket(asyncio.BufferedProtocol):
    """A minimal WebSocket client (RFC 6455) as an asyncio buffered protocol: no task, no queue, no copy.

    The transport reads straight into this protocol's buffer (``recv_into``: a plain ``data_received``
    protocol costs a 256 KiB allocation per read). It does the upgrade handshake (offering
    permessage-deflate when asked), walks the server's frames and hands each message payload to
    :meth:`_Client.on_message` in place; answers pings and close frames; inflates compressed messages
    (RFC 7692). It sends nothing else.
    """

    _MAX_MIN_FREE = 262144  # a busy client reads up to 256 KiB at once; an idle one keeps 4 KiB

    def __init__(self, client: _Client, host: str, path: str, deflate: bool) -> None:
        self.client = client
        self.host = host
        self.path = path
        self.offer_deflate = deflate
        self.key = base64.b64encode(os.urandom(16))
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.min_free = 4096  # doubled each time a read fills the space offered
        self.offered = 0
        self.buf = bytearray(self.min_free)
        self.pos = 0  # first unparsed byte
        self.fill = 0  # end of the received bytes
        self.handshaken = False
        self.inflater: Any = None
        self.fragments: list[bytes] | None = None
        self.fragment_compressed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {self.key.decode()}",
                 "Sec-WebSocket-Version: 13"]
        if self.offer_deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost during the handshake: {exc}"))

    def get_buffer(self, sizehint: int) -> memoryview:
        buf = self.buf
        if len(buf) - self.fill < self.min_free:
            pending = self.fill - self.pos
            if self.pos:  # move the unparsed tail to the front (same size: allowed while exported)
                buf[0:pending] = buf[self.pos:self.fill]
                self.pos, self.fill = 0, pending
            while len(buf) - self.fill < self.min_free:  # busier, or a frame larger than the buffer
                buf.extend(bytes(len(buf)))
        self.offered = len(buf) - self.fill
        return memoryview(buf)[self.fill:]

    def buffer_updated(self, nbytes: int) -> None:
        self.fill += nbytes
        if nbytes >= self.offered and self.min_free < self._MAX_MIN_FREE:
            self.min_free *= 2
        if not self.handshaken and not self._handshake():
            return
        self._frames()

    def eof_received(self) -> bool | None:
        self.client.closed = True
        return None

    def _handshake(self) -> bool:
        end = self.buf.find(b"\r\n\r\n", self.pos, self.fill)
        if end < 0:
            if self.fill - self.pos > 65536:
                self._fail("handshake answer too long")
            return False
        head = bytes(self.buf[self.pos:end]).decode("latin-1")
        self.pos = end + 4
        status, *header_lines = head.split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self.key + _WS_GUID).digest()).decode()
        if " 101 " not in status + " " or headers.get("sec-websocket-accept") != accept:
            self._fail(f"upgrade refused: {status[:100]}")
            return False
        if "permessage-deflate" in headers.get("sec-websocket-extensions", ""):
            self.inflater = zlib.decompressobj(wbits=-15)
            self.client.deflate = True
        self.handshaken = True
        if not self.ready.done():
            self.ready.set_result(None)
        return True

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.abort()

    def _frames(self) -> None:
        buf = self.buf
        n = self.fill
        pos = self.pos
        now = time.monotonic_ns()
        client = self.client
        while n - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 10
            start = pos + head
            end = start + length
            if end > n:
                break
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 2 or opcode == 0:
                if b0 & 0xC0 == 0x80 and self.fragments is None:  # FIN, not compressed: in place
                    client.on_message(buf, start, end, now)
                else:
                    self._fragment(b0, bytes(buf[start:end]), now)
            elif opcode == 9:  # ping
                self.transport.write(_client_frame(0xA, bytes(buf[start:end])))  # type: ignore[union-attr]
            elif opcode == 8:  # close: answer it, then the server closes the connection
                self.transport.write(_client_frame(0x8, bytes(buf[start:start + 2])))  # type: ignore[union-attr]
                client.closed = True
            pos = end
        if pos == n:  # everything parsed: start over at the front
            pos = self.fill = 0
        self.pos = pos

    def _fragment(self, b0: int, payload: bytes, now: int) -> None:
        if self.fragments is None:
            self.fragments = []
            self.fragment_compressed = bool(b0 & 0x40)
        self.fragments.append(payload)
        if not b0 & 0x80:
            return
        message = b"".join(self.fragments)
        compressed = self.fragment_compressed
        self.fragments = None
        if compressed:
            if self.inflater is None:
                self._fail("a compressed frame without permessage-deflate")
                return
            message = self.inflater.decompress(message + b"\x00\x00\xff\xff")
        self.client.on_message(message, 0, len(message), now)


class _Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.clients: list[_Client | None] = [None] * args.clients
        self.sessions: list[Any] = []
        self.post_session: Any = None
        self.current: _Run | None = None
        self.next_run = 1
        self.connect_errors: list[str] = []
        self.source_ips = [ip.strip() for ip in args.source_ips.split(",") if ip.strip()] or ["127.0.0.1"]
        self.ws_urls = _url_list(args.ws_url)
        self.ingest_urls = _url_list(args.ingest_url)
        self.posts_started = 0  # the producer's POSTs take the ingest URLs in turn

    # ------------------------------------------------------------ connections
    async def open(self) -> None:
        import aiohttp

        if self.args.client == "aiohttp":
            for ip in self.source_ips:
                connector = aiohttp.TCPConnector(limit=0, local_addr=(ip, 0))
                self.sessions.append(aiohttp.ClientSession(connector=connector))
        self.post_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))

    async def close(self) -> None:
        for client in self.clients:
            if client is not None:
                client.abort()
        tasks = [c.task for c in self.clients if c is not None and c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for session in [*self.sessions, self.post_session]:
            if session is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.close(), 10)

    async def _connect_one(self, index: int) -> bool:
        # Latency clients spread over the connection order (the servers serve their clients in
        # that order, so the first ones would be the luckiest).
        step = max(1, self.args.clients // max(1, self.args.latency_clients))
        measure = index % step == 0 and index // step < self.args.latency_clients
        client = _Client(self, index, measure=measure)
        try:
            if self.args.client == "aiohttp":
                await self._connect_aiohttp(client)
            else:
                await self._connect_raw(client)
        except Exception as exc:  # refused, 429, timeout...
            client.abort()
            if len(self.connect_errors) < 5:
                self.connect_errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return False
        self.clients[index] = client
        return True

    def _ws_url(self, client: _Client) -> str:
        """The URL of ``client``'s server: contiguous blocks of the connection order, one per URL."""
        return self.ws_urls[client.index * len(self.ws_urls) // max(1, self.args.clients)]

    async def _connect_raw(self, client: _Client) -> None:
        loop = asyncio.get_running_loop()
        ip = self.source_ips[client.index % len(self.source_ips)]
        url = urllib.parse.urlsplit(self._ws_url(client))
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        protocol: _RawWebSocket | None = None

        def factory() -> _RawWebSocket:
            nonlocal protocol
            protocol = _RawWebSocket(client, url.netloc, path, self.args.deflate)
            return protocol

        transport, _ = await asyncio.wait_for(
            loop.create_connection(factory, url.hostname or "127.0.0.1", url.port or 80,
                                   local_addr=(ip, 0)), 15)
        client.transport = transport  # type: ignore[assignment]
        assert protocol is not None
        await asyncio.wait_for(protocol.ready, 15)

    async def _connect_aiohttp(self, client: _Client) -> None:
        import aiohttp

        session = self.sessions[client.index % len(self.sessions)]
        client.ws = await asyncio.wait_for(session.ws_connect(
            self._ws_url(client), compress=15 if self.args.deflate else 0, autoping=True,
            max_msg_size=0, decode_text=False,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)), 15)
        client.deflate = bool(client.ws.compress)
        client.task = asyncio.ensure_future(self._read_aiohttp(client))

    async def connect_missing(self) -> int:
        """Connect every client that is not open (bounded concurrency); return how many are open."""
        todo = [i for i, c in enumerate(self.clients) if c is None or c.closed]
        for i in todo:
            old = self.clients[i]
            if old is not None:
                old.abort()
            self.clients[i] = None
        semaphore = asyncio.Semaphore(self.args.connect_concurrency)

        async def one(i: int) -> None:
            async with semaphore:
                await self._connect_one(i)

        await asyncio.gather(*(one(i) for i in todo))
        return self.open_count()

    def open_count(self) -> int:
        return sum(1 for c in self.clients if c is not None and not c.closed)

    def deflate_count(self) -> int:
        return sum(1 for c in self.clients if c is not None and not c.closed and c.deflate)

    async def _read_aiohttp(self, client: _Client) -> None:
        from aiohttp import WSMsgType

        ws = client.ws
        data_types = (WSMsgType.TEXT, WSMsgType.BINARY)
        try:
            while True:
                msg = await ws.receive()
                if msg.type not in data_types:
                    break
                data = msg.data
                if isinstance(data, str):
                    data = data.encode()
                client.on_message(data, 0, len(data), time.monotonic_ns())
        except (asyncio.CancelledError, ConnectionError):
            pass
        except Exception as exc:  # a protocol error: report it on stderr, count the client as closed
            print(f"loadgen client {client.index}: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            client.closed = True

    @staticmethod
    def complete(client: _Client, run: _Run) -> None:
        client.done_run = run.id
        run.completed += 1
        run.last_complete = time.monotonic()
        if run.completed >= run.clients:
            run.done.set()

    def _start_run(self, expected: int | None) -> _Run:
        members = 0
        for client in self.clients:
            if client is not None and not client.closed:
                client.reset()
                members += 1
        run = _Run(self.next_run, expected, members)
        self.next_run += 1
        self.current = run
        return run

    # ------------------------------------------------------------ posting
    async def _post(self, body: bytes) -> tuple[int, int | None, str | None]:
        """POST one body; (HTTP status, events accepted or None, error text or None)."""
        url = self.ingest_urls[self.posts_started % len(self.ingest_urls)]
        self.posts_started += 1
        try:
            async with self.post_session.post(url, data=body, headers=_JSON) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    return resp.status, None, f"HTTP {resp.status}: {payload[:200]!r}"
                return 200, int(json.loads(payload)["accepted"]), None
        except Exception as exc:
            return 0, None, f"{type(exc).__name__}: {exc}"[:200]

    async def barrier(self, timeout: float = 10.0) -> int:
        """Send one probe event and wait until every open client has it; reconnect the others."""
        import orjson

        for _attempt in range(2):
            await self.connect_missing()
            run = self._start_run(1)
            body = orjson.dumps({"events": _events(run.id, 0, 1, time.monotonic_ns())})
            for _ in range(3):
                status, _accepted, _error = await self._post(body)
                if status == 200:
                    break
                await asyncio.sleep(0.2)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(run.done.wait(), timeout)
            self.current = None
            missing = [c for c in self.clients if c is not None and not c.closed and c.done_run != run.id]
            if not missing:
                break
            for client in missing:  # stuck behind a backlog or lost: start it afresh
                client.closed = True
        return self.open_count()

    # ------------------------------------------------------------ a rate step
    async def step(self, rate: float, duration: float, grace: float, max_inflight: int = 4,
                   max_batch: int | None = None) -> dict[str, Any]:
        import orjson

        if max_batch is None:  # 100 events a POST; more above 40,000 events/s (the producer's limit)
            max_batch = max(100, int(rate / 400))
        connected = await self.barrier()
        total = max(1, int(rate * duration))
        run = self._start_run(total)
        cpu0 = time.process_time()
        start = time.monotonic() + 0.02
        last_due = start + (total - 1) / rate
        deadline = last_due + grace
        sent = 0
        accepted = 0
        errors: list[str] = []
        posts = 0
        last_answer = start
        inflight: set[asyncio.Task[None]] = set()

        async def post(body: bytes, n: int) -> None:
            nonlocal accepted, last_answer
            status, got, error = await self._post(body)
            last_answer = time.monotonic()
            if status == 200 and got is not None:
                accepted += got
            elif len(errors) < 5:
                errors.append(error or f"HTTP {status}")

        while sent < total:
            now = time.monotonic()
            if now >= deadline:
                break
            due = min(total, int((now - start) * rate) + 1) if now >= start else 0
            if due > sent and len(inflight) < max_inflight:
                n = min(due - sent, max_batch)
                body = orjson.dumps({"events": _events(run.id, sent, n, time.monotonic_ns())})
                task = asyncio.ensure_future(post(body, n))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                sent += n
                posts += 1
                if len(inflight) < max_inflight:
                    await asyncio.sleep(0)  # let the request start before building the next one
                continue
            if len(inflight) >= max_inflight:
                await asyncio.wait(set(inflight), timeout=max(0.0, deadline - now),
                                   return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(max(0.0, start + sent / rate - now))
        if inflight:
            _done, pending = await asyncio.wait(set(inflight), timeout=max(0.0, deadline - time.monotonic()))
            for task in pending:
                task.cancel()
            if pending:
                errors.append(f"{len(pending)} POSTs unanswered at the deadline")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(run.done.wait(), max(0.0, deadline - time.monotonic()))
        self.current = None
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - start
        result = self._summary(run, connected)
        complete = run.completed == run.clients and run.clients == self.args.clients
        ok = complete and sent == total and accepted >= total and not errors and result["duplicates"] == 0
        result.update({
            "mode": "step", "ok": ok, "rate": rate, "duration": duration, "grace": grace, "expected": total,
            "sent": sent, "accepted": accepted, "posts": posts, "errors": errors,
            "post_lag_ms": round((last_answer - last_due) * 1000, 1),
            "drain_ms": round((run.last_complete - last_due) * 1000, 1) if complete else None,
            "loadgen_cpu_percent": round(100 * cpu / wall, 1) if wall > 0 else None,
        })
        return result

    def _summary(self, run: _Run, connected: int) -> dict[str, Any]:
        members = [c for c in self.clients if c is not None]
        counts = [c.count for c in members]
        latencies = sorted(lat for c in members if c.measure for lat in c.latencies)
        duplicates = sum(c.count - len(c.seen) for c in members if c.measure)
        frames = sum(c.frames for c in members)
        events = sum(counts)

        def ms(ns: int | None) -> float | None:
            return None if ns is None else round(ns / 1e6, 2)

        return {
            "clients": self.args.clients, "connected": connected, "complete_clients": run.completed,
            "min_count": min(counts) if counts else 0, "max_count": max(counts) if counts else 0,
            "duplicates": duplicates, "events_per_frame": round(events / frames, 1) if frames else None,
            "latency_samples": len(latencies),
            "p50_ms": ms(percentile(latencies, 0.50)), "p90_ms": ms(percentile(latencies, 0.90)),
            "p99_ms": ms(percentile(latencies, 0.99)), "max_ms": ms(latencies[-1] if latencies else None),
        }

    # ------------------------------------------------------------ a flood
    async def flood(self, duration: float, batch: int, concurrency: int, grace: float) -> dict[str, Any]:
        import orjson

        connected = await self.barrier()
        run = self._start_run(None)
        cpu0 = time.process_time()
        start_ns = time.monotonic_ns()
        start = start_ns / 1e9
        stop = start + duration
        next_i = 0
        published = 0
        accepted = 0
        requests = 0
        statuses: dict[str, int] = {}
        errors: list[str] = []
        post_latencies: list[float] = []

        async def worker() -> None:
            nonlocal next_i, published, accepted, requests
            while time.monotonic() < stop:
                first = next_i
                next_i += batch
                body = orjson.dumps({"events": _events(run.id, first, batch, time.monotonic_ns())})
                t0 = time.perf_counter()
                status, got, error = await self._post(body)
                post_latencies.append(time.perf_counter() - t0)
                requests += 1
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status == 200 and got is not None:
                    accepted += got
                    published += batch
                elif status == 503:  # published, not confirmed durable in time: still broadcast
                    published += batch
                elif len(errors) < 5:
                    errors.append(error or f"HTTP {status}")

        workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
        _done, pending = await asyncio.wait(workers, timeout=duration + 30)
        for task in pending:
            task.cancel()
        end = time.monotonic()
        run.expected = published
        for client in self.clients:
            if client is not None and not client.closed and client.count >= published \
                    and client.done_run != run.id:
                self.complete(client, run)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(run.done.wait(), grace)
        self.current = None
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - start
        post_latencies.sort()
        result = self._summary(run, connected)
        complete = run.completed == run.clients and run.clients == self.args.clients
        elapsed = end - start
        # Delivery as the clients saw it: the events every client received, over the time from the start
        # until the last client's last one arrived (each client stamps the frames it counts).
        members = [c for c in self.clients if c is not None]
        received = [{"events": c.count,
                     "last_seconds": round((c.last_ns - start_ns) / 1e9, 3) if c.last_ns else None}
                    for c in members]
        delivered = min((c.count for c in members), default=0)
        last_ns = max((c.last_ns for c in members), default=0)
        delivered_seconds = (last_ns - start_ns) / 1e9 if last_ns > start_ns else None
        result.update({
            "mode": "flood", "ok": complete and not errors, "duration": round(elapsed, 3),
            "batch": batch, "concurrency": concurrency, "requests": requests, "statuses": statuses,
            "published": published, "accepted": accepted, "errors": errors,
            "accepted_per_second": round(accepted / elapsed) if elapsed > 0 else None,
            "delivered": delivered,
            "delivered_seconds": round(delivered_seconds, 3) if delivered_seconds else None,
            "delivered_per_second": round(delivered / delivered_seconds) if delivered_seconds else None,
            "received": received,
            "post_p50_ms": round((percentile(post_latencies, 0.5) or 0) * 1000, 2),
            "post_p99_ms": round((percentile(post_latencies, 0.99) or 0) * 1000, 2),
            "loadgen_cpu_percent": round(100 * cpu / wall, 1) if wall > 0 else None,
        })
        return result


def _url_list(urls: str) -> list[str]:
    """The URLs of a comma-separated ``--ws-url`` or ``--ingest-url``."""
    return [url.strip() for url in urls.split(",") if url.strip()]


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _stdin_lines() -> asyncio.Queue[str | None]:
    """Lines of stdin, read by a daemon thread (never blocks the loop, never blocks exit)."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, daemon=True).start()
    return lines


async def _main(args: argparse.Namespace) -> int:
    load = _Load(args)
    await load.open()
    try:
        t0 = time.monotonic()
        connected = await load.connect_missing()
        _emit({"event": "ready", "clients": args.clients, "connected": connected,
               "connect_seconds": round(time.monotonic() - t0, 2), "connect_errors": load.connect_errors,
               "deflate_negotiated": load.deflate_count()})
        if args.hold or args.control:
            lines = await _stdin_lines()
            while True:
                line = await lines.get()
                if line is None:
                    break
                line = line.strip()
                if not line:
                    continue
                cmd = json.loads(line)
                name = cmd.pop("cmd", None)
                if name == "quit":
                    break
                if name == "step":
                    _emit(await load.step(**cmd))
                elif name == "flood":
                    _emit(await load.flood(**cmd))
                elif name == "status":
                    _emit({"connected": load.open_count(), "connect_errors": load.connect_errors,
                           "deflate_negotiated": load.deflate_count()})
                else:
                    _emit({"error": f"unknown command {name!r}"})
        elif args.flood:
            _emit(await load.flood(args.duration, args.batch, args.concurrency, args.grace))
        else:
            _emit(await load.step(args.rate, args.duration, args.grace, args.max_inflight))
    finally:
        await load.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ws-url", required=True,
                        help="comma-separated for several servers: the clients are split between them")
    parser.add_argument("--ingest-url", required=True,
                        help="comma-separated for several servers: the POSTs go to each in turn")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate, as browsers do")
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw",
                        help="raw: a minimal asyncio-protocol WebSocket client (default; cheap per frame); "
                             "aiohttp: aiohttp's ClientWebSocketResponse with compress=15 when --deflate")
    parser.add_argument("--latency-clients", type=int, default=10)
    parser.add_argument("--source-ips", default="127.0.0.1", help="comma-separated loopback source addresses")
    parser.add_argument("--connect-concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--grace", type=float, default=0.5)
    parser.add_argument("--max-inflight", type=int, default=4)
    parser.add_argument("--flood", action="store_true")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--control", action="store_true", help="take JSON commands on stdin")
    mode.add_argument("--hold", action="store_true", help="hold the clients idle until stdin closes")
    args = parser.parse_args(argv)
    if not _url_list(args.ws_url) or not _url_list(args.ingest_url):
        parser.error("--ws-url and --ingest-url need at least one URL each")
    for url in [*_url_list(args.ws_url), *_url_list(args.ingest_url)]:
        if not re.match(r"^(ws|http)://(127\.\d+\.\d+\.\d+|localhost)(:\d+)?/", url):
            parser.error(f"loopback URLs only, got {url!r}")
    for ip in args.source_ips.split(","):
        if ip.strip() and not ip.strip().startswith("127."):
            parser.error(f"loopback source addresses only, got {ip!r}")
    raise_fd_limit()
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
