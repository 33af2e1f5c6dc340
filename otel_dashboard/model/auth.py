"""The bearer token as client and server see it: its environment variable, its form, the header.

The server's security settings (:mod:`otel_dashboard.server.security.config`) and the clients that
send to a token-protected server (the remote processor and the exporter) share these, so that a
client refuses at once a token the server could never accept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["TOKEN_ENV", "bearer_headers", "check_token"]

#: Environment variable read for the token when none is given.
TOKEN_ENV = "OTEL_DASHBOARD_TOKEN"

_TOKEN_RE = re.compile(r"[A-Za-z0-9._~-]{8,1024}")


def check_token(token: Any, name: str) -> None:
    """Raises ``ValueError`` naming ``name`` unless ``token`` is ``None`` or of the accepted form."""
    if token is None:
        return
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise ValueError(
            f"{name} must be 8-1024 characters from A-Z a-z 0-9 . _ ~ - "
            "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )


def bearer_headers(headers: Mapping[str, str] | None, token: str) -> dict[str, str]:
    """``headers`` plus ``Authorization: Bearer <token>`` (replacing any ``Authorization`` in them).

    For clients of a token-protected server (the remote processor and exporter).

    Raises:
        ValueError: a token the server could never accept (named ``token``), or ``headers`` that is
            not a mapping.
    """
    check_token(token, "token")
    if headers is not None and not isinstance(headers, Mapping):
        raise ValueError(f"headers must be a mapping of strings, got {type(headers).__name__}")
    out = {key: value for key, value in (headers or {}).items()
           if not (isinstance(key, str) and key.lower() == "authorization")}
    out["Authorization"] = f"Bearer {token}"
    return out
