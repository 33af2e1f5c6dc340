"""No secret in any log line: a :class:`logging.Filter` that redacts the token from every record.

The token reaches log lines by paths no handler controls: aiohttp's access log prints the
``Referer`` header (a page opened with ``/dashboard?token=T`` sends it), and aiohttp's server logger
prints the raw request line of a malformed request (``GET /?token=T HTTP/1.1`` with a bad byte in
it) inside the exception it logs. So the filter works on the finished record, whoever made it:

* the configured token values, wherever they appear;
* the value of any ``token=`` or ``otel_dashboard_token=`` pair (query strings, the login cookie);
* the credentials after ``Bearer`` (an ``Authorization`` header echoed in a message).

Each becomes ``***``, in the message (its arguments merged in first), in the traceback text, and in
the string values of the record's extra attributes (aiohttp's access logger passes the request's
headers there for structured formatters).

Where it is installed matters: a filter on a *logger* sees only the records made on that very
logger, not those of its children (``aiohttp`` does not see ``aiohttp.server``'s), while a filter on
a *handler* sees every record that handler writes. :func:`install_log_redaction` therefore puts one
shared filter on every handler of the root logger (where the CLI's handler is, and where records of
every logger propagate) and on aiohttp's named loggers and the package's existing ones (for handlers
attached to them directly). A handler added later gets it with :func:`redact_handler`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "RedactingFilter", "install_log_redaction", "redact", "redact_handler"]

REDACTED = "***"

# aiohttp's loggers (aiohttp/log.py) and ours: records made on them are filtered at the logger too.
_LOGGER_NAMES = ("aiohttp.access", "aiohttp.server", "aiohttp.web", "aiohttp.internal",
                 "aiohttp.websocket", "aiohttp.client", "otel_dashboard")

_PAIR_RE = re.compile(r"(?i)(\b(?:otel_dashboard_)?token=)[^&\s\"';,)>\]]+")
_BEARER_RE = re.compile(r"(?i)(\bbearer(?:\s+|%20|\+))[A-Za-z0-9._~+/=-]+")
# Attributes every LogRecord has: everything else on a record came in through ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


def _redact_text(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _PAIR_RE.sub(lambda m: m.group(1) + REDACTED, text)
    return _BEARER_RE.sub(lambda m: m.group(1) + REDACTED, text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with ``secrets``, ``token=`` values and ``Bearer`` credentials replaced by ``***``."""
    return _redact_text(text, tuple(s for s in secrets if s))


class RedactingFilter(logging.Filter):
    """Redacts secrets from every record it sees (it never drops one); see the module docstring.

    Thread-safe: records may come from worker threads; the set of secrets is swapped, not mutated.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        # Longest first: a token that contains another is replaced whole.
        self._secrets: tuple[str, ...] = ()
        self.add_secrets(secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The literal values redacted, besides the patterns."""
        return self._secrets

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Redact these values too (the tokens of every server in the process)."""
        with self._lock:
            merged = set(self._secrets) | {s for s in secrets if s}
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it to logging
            return True
        redacted = _redact_text(message, secrets)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            text = _redact_text(record.exc_text, secrets)
            if text != record.exc_text:
                # The formatted traceback replaces the exception object: no formatter can render the
                # unredacted message from it again.
                record.exc_text, record.exc_info = text, None
        if record.stack_info:
            record.stack_info = _redact_text(record.stack_info, secrets)
        for key, value in list(vars(record).items()):
            if key in _STANDARD_ATTRIBUTES:
                continue
            if isinstance(value, str):
                setattr(record, key, _redact_text(value, secrets))
            elif isinstance(value, dict):
                setattr(record, key, _redact_mapping(value, secrets))
        return True


def _redact_mapping(value: dict[Any, Any], secrets: tuple[str, ...]) -> dict[Any, Any]:
    return {k: _redact_text(v, secrets) if isinstance(v, str) else v for k, v in value.items()}


_FILTER = RedactingFilter()


def redact_handler(handler: logging.Handler, secrets: Iterable[str] = ()) -> RedactingFilter:
    """Put the process's redacting filter on ``handler`` (once), redacting ``secrets`` too."""
    _FILTER.add_secrets(secrets)
    if _FILTER not in handler.filters:
        handler.addFilter(_FILTER)
    return _FILTER


def install_log_redaction(secrets: Iterable[str] = ()) -> RedactingFilter:
    """Redact ``secrets`` (and every ``token=``/``Bearer`` value) from the process's log lines.

    Installs the one shared :class:`RedactingFilter` on every handler of the root logger and on
    aiohttp's and the package's loggers; idempotent, and a later call adds its secrets. The server
    calls it when it starts; the CLI also calls :func:`redact_handler` on the handler it sets up.
    """
    _FILTER.add_secrets(secrets)
    for handler in logging.getLogger().handlers:
        redact_handler(handler)
    names = set(_LOGGER_NAMES)
    names.update(name for name in logging.Logger.manager.loggerDict if name.startswith("otel_dashboard."))
    for name in sorted(names):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            redact_handler(handler)
    return _FILTER
