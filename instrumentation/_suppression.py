"""Whether the current context asks instrumentation to create no spans, and a context that asks it.

The one module of the distribution that reads private names of ``opentelemetry-api``: the
decorators read the key, and the dashboard's own threads (the processor's worker, the remote
sender) set it so that they never trace themselves.
"""

from __future__ import annotations

from typing import Final

from opentelemetry import context as context_api

# The plain-string key older contrib releases set; contrib's is_instrumentation_enabled() reads both.
_PLAIN_SUPPRESS_KEY: Final = "suppress_instrumentation"

# The API defines the key that the SDK's span processors set while they export, and that contrib's
# ``suppress_instrumentation()`` sets, but no public accessor for it (opentelemetry-api 1.45).
# ``create_key`` makes every key unique, so it cannot be rebuilt from its name: the object itself has
# to be read. getattr, so that a rename in a later API falls back to the plain key instead of
# breaking ``import instrumentation``; TestSuppression in tests/test_decorators.py fails on a rename.
_SUPPRESS_KEY: Final[str] = getattr(context_api, "_SUPPRESS_INSTRUMENTATION_KEY", _PLAIN_SUPPRESS_KEY)


def suppressed(context: context_api.Context | None = None) -> bool:
    """Returns True when ``context`` (by default the current one) asks for no spans."""
    ctx = context_api.get_current() if context is None else context
    return bool(ctx.get(_SUPPRESS_KEY) or ctx.get(_PLAIN_SUPPRESS_KEY))


def suppressing_context(context: context_api.Context | None = None) -> context_api.Context:
    """``context`` (by default the current one) with every known suppression key set.

    Besides the key above, the HTTP one (``_SUPPRESS_HTTP_INSTRUMENTATION_KEY``, read by HTTP client
    instrumentations) and the plain-string key of older contrib releases.
    """
    ctx = context_api.get_current() if context is None else context
    ctx = context_api.set_value(_SUPPRESS_KEY, True, ctx)
    http_key = getattr(context_api, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None)
    if http_key is not None:
        ctx = context_api.set_value(http_key, True, ctx)
    return context_api.set_value(_PLAIN_SUPPRESS_KEY, True, ctx)
