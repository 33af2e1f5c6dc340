"""A clear answer to an OTLP/gRPC client that connected to the OTLP/HTTP port.

A gRPC client opens with the HTTP/2 connection preface (``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n``).
aiohttp speaks HTTP/1.1 only: it answered 400 and logged an ERROR with a traceback for every attempt,
and the exporter reported "Trying to connect an http1.x server". Instead, the connection tracker
(:mod:`~otel_dashboard.server.security.connections`) hands such a connection to
:class:`GrpcOnHttpAnswer`, which speaks just enough HTTP/2 to fail the client's first RPC with
``UNIMPLEMENTED`` and a message naming the right port, then says GOAWAY and closes. The stock
exporters do not retry ``UNIMPLEMENTED``: they log one error with that message at once
("error code: StatusCode.UNIMPLEMENTED, error details: otel-dashboard: this is the OTLP/HTTP port;
send OTLP/gRPC to port 4317").

No HPACK decoder is needed: the client's header block is skipped, and the answer uses only the
static table's ``:status: 200`` and literal fields without Huffman coding. Input is bounded
(:data:`MAX_BUFFERED_BYTES`); a client that never sends a request is closed by the tracker's
header timeout like any other.
"""

from __future__ import annotations

import asyncio
import struct

__all__ = ["HTTP2_PREFACE", "MAX_BUFFERED_BYTES", "GrpcOnHttpAnswer", "grpc_hint", "preface_state"]

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The 24 bytes every HTTP/2 (so every gRPC) client sends first (RFC 9113, 3.4)."""
MAX_BUFFERED_BYTES = 64 * 1024
"""Bytes of the client's frames kept while waiting for its first request; more closes the connection."""

_FRAME_HEADERS = 0x1
_FRAME_SETTINGS = 0x4
_FRAME_GOAWAY = 0x7
_FLAG_ACK = 0x1
_FLAG_END_STREAM = 0x1
_FLAG_END_HEADERS = 0x4
_GRPC_UNIMPLEMENTED = 12
_HTTP2_NO_ERROR = 0
_STATUS_200_INDEXED = b"\x88"  # HPACK static table entry 8: ":status: 200"


def preface_state(data: bytes) -> bool | None:
    """Whether ``data`` (a connection's first bytes) is the HTTP/2 preface: True, False, or None when
    too few bytes have arrived to say (a prefix of it)."""
    if data[:len(HTTP2_PREFACE)] == HTTP2_PREFACE:
        return True
    if len(data) < len(HTTP2_PREFACE) and HTTP2_PREFACE.startswith(data):
        return None
    return False


def grpc_hint(grpc_port: int | None) -> str:
    """The message a gRPC client on the HTTP port gets (it shows in the exporter's error line)."""
    if grpc_port is None:
        return ("otel-dashboard: this is the OTLP/HTTP port and OTLP/gRPC is off on this server "
                "(start it with --grpc-port N), or export OTLP/HTTP to this port")
    return f"otel-dashboard: this is the OTLP/HTTP port; send OTLP/gRPC to port {grpc_port}"


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream_id) + payload


def _hpack_int(value: int, prefix_bits: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((value,))
    out = bytearray((limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: bytes, value: bytes) -> bytes:
    # "Literal Header Field without Indexing -- New Name", no Huffman coding (RFC 7541, 6.2.2).
    return b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value


def _grpc_message(text: str) -> bytes:
    # grpc-message is percent-encoded outside printable ASCII, and '%' itself (the gRPC HTTP/2 spec).
    out = bytearray()
    for byte in text.encode("utf-8"):
        out += bytes((byte,)) if 0x20 <= byte <= 0x7E and byte != 0x25 else b"%%%02X" % byte
    return bytes(out)


class GrpcOnHttpAnswer:
    """Answers one HTTP/2 connection (after its preface) with a failed RPC and GOAWAY.

    Args:
        transport: the connection.
        message: the ``grpc-message`` of the answer (:func:`grpc_hint`).
    """

    def __init__(self, transport: asyncio.Transport, message: str) -> None:
        self._transport = transport
        self._message = message
        self._buffer = bytearray()
        self._done = False
        # Our SETTINGS first: a client waits for them before it sends its request.
        transport.write(_frame(_FRAME_SETTINGS, 0, 0, b""))

    @property
    def done(self) -> bool:
        """Whether the answer went out (or the connection was given up)."""
        return self._done

    def feed(self, data: bytes) -> None:
        """The client's bytes after the preface: acknowledge its SETTINGS, answer its first request."""
        if self._done:
            return
        self._buffer += data
        if len(self._buffer) > MAX_BUFFERED_BYTES:
            self._finish(b"")
            return
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            kind, flags = self._buffer[3], self._buffer[4]
            stream_id = int.from_bytes(self._buffer[5:9], "big") & 0x7FFFFFFF
            if len(self._buffer) < 9 + length:
                return
            del self._buffer[:9 + length]
            if kind == _FRAME_SETTINGS and not flags & _FLAG_ACK:
                self._transport.write(_frame(_FRAME_SETTINGS, _FLAG_ACK, 0, b""))
            elif kind == _FRAME_HEADERS and stream_id:
                self._finish(self._trailers_only(stream_id), last_stream_id=stream_id)
                return

    def _trailers_only(self, stream_id: int) -> bytes:
        block = (_STATUS_200_INDEXED + _literal(b"content-type", b"application/grpc")
                 + _literal(b"grpc-status", str(_GRPC_UNIMPLEMENTED).encode())
                 + _literal(b"grpc-message", _grpc_message(self._message)))
        return _frame(_FRAME_HEADERS, _FLAG_END_STREAM | _FLAG_END_HEADERS, stream_id, block)

    def _finish(self, answer: bytes, *, last_stream_id: int = 0) -> None:
        self._done = True
        goaway = _frame(_FRAME_GOAWAY, 0, 0, struct.pack(">II", last_stream_id, _HTTP2_NO_ERROR)
                        + self._message.encode("utf-8"))
        try:
            self._transport.write(answer + goaway)
        finally:
            self._transport.close()
