"""The errors of the OTLP/HTTP receiver: each carries the HTTP status the specification asks for."""

from __future__ import annotations

__all__ = ["OtlpDecodeError", "OtlpError", "PayloadTooLarge", "UnsupportedMediaType"]


class OtlpError(ValueError):
    """A request the receiver refuses as a whole. Its message is safe to return to the client.

    Attributes:
        http_status: the HTTP status to answer with.
        encoding: the request's encoding (``"protobuf"`` / ``"json"``) when it was recognised, so the
            error body can use it; ``None`` otherwise.
        examined_bytes: how many body bytes were looked at (inflated or parsed) before the request
            was refused: what the refusal cost, charged to the sender's ingest rate.
    """

    http_status = 400

    def __init__(self, message: str, *, encoding: str | None = None, examined_bytes: int = 0) -> None:
        super().__init__(message)
        self.encoding = encoding
        self.examined_bytes = examined_bytes


class OtlpDecodeError(OtlpError):
    """The body is not a valid OTLP request in its encoding (HTTP 400)."""

    http_status = 400


class PayloadTooLarge(OtlpError):
    """The body, once decompressed, is larger than the limit (HTTP 413)."""

    http_status = 413


class UnsupportedMediaType(OtlpError):
    """A content type or content coding the receiver does not speak (HTTP 415)."""

    http_status = 415


