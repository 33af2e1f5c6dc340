"""What a model call cost, in USD: genai-prices' bundled prices, plus the user's own.

(Over 400 lines on purpose: the price file's parser, the overrides and the per-token rate cache all
answer one question, "what did this call cost", and must agree on how tokens are split; the file's
validation errors name its lines, which needs the parser beside the rules it checks.)

:class:`PriceBook` answers :meth:`PriceBook.cost` for one model call from its model name, its
provider and its token counts; ``None`` means no price is known for that model (the dashboard then
shows the tokens and "no price"). Two sources, the first that knows the model wins:

1. **Overrides** the user gives (``PriceBook(overrides=...)``, :func:`load_price_file`,
   ``otel-dashboard serve --prices FILE``), for self-hosted models or negotiated prices.
2. **genai-prices** (PyPI ``genai-prices``, maintained by Pydantic): the snapshot of prices bundled
   in the installed package (``genai_prices.data``). Nothing is ever fetched: its auto-update
   (``UpdatePrices``) is never started, and a snapshot that another library in the process fetched
   (``genai_prices.data_snapshot.set_custom_snapshot``) is not used either, so a given installation
   always prices alike. The package (with pydantic and a 1.6 MB data module: about 0.2 s and 30 MB)
   is imported on the first lookup, not with this module.

How tokens are priced follows the GenAI semantic conventions and the provider's own rules, as
genai-prices states them: ``input_tokens`` is the whole input, cached tokens included; cache reads
and cache writes are charged at the provider's cache prices and the rest of the input at the input
price; ``output_tokens`` includes reasoning tokens, charged at the output price unless the provider
prices reasoning apart. Long-context tiers (a higher price for every token once the input passes a
threshold) and prices that change by date or time of day (DeepSeek's off-peak hours) apply too.

Speed: ``cost`` runs once per model-call span on the dashboard's worker thread. genai-prices' own
calculation takes ~90 microseconds (Decimal arithmetic, unit decomposition), so each model's price
is computed by it once, on a few probe usages, into per-token float rates (its prices are linear
in each token count within an input tier); later calls for that (model, provider) find those rates
in a bounded cache (misses cached too) and cost ~1 microsecond.

The price file (JSON; USD per million tokens)::

    {"models": [
      {"model": "my-llama", "provider": "self-hosted",
       "input_per_mtok": 0.2, "output_per_mtok": 0.6,
       "cache_read_per_mtok": 0.05, "cache_write_per_mtok": 0.25}
    ]}

``model``, ``input_per_mtok`` and ``output_per_mtok`` are required; ``provider`` limits the entry to
spans of that provider (matched like the spans' provider names: ``gcp.vertex_ai`` and ``google``
are one provider); cache prices default to the input price.

This module is longer than ~400 lines for a reason: it is one concept, the price of a model call,
and its parts (genai-prices' data compiled into per-token rates, the user's overrides and their file
format, the cached lookup) share the compiled-rate types; split, each would import the others'
private types.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, Provider

__all__ = ["PriceBook", "PriceOverride", "default_price_book", "load_price_file"]

logger = logging.getLogger(__name__)

_DEFAULT_CACHE_SIZE: Final = 1024
_MAX_NAME_CHARS: Final = 256
"""Longer model or provider names are never priced nor cached: no model is named like that, and a
cache key of any size a sender chooses would defeat the cache's bound."""
_MAX_FILE_BYTES: Final = 10 * 1024 * 1024
_PER_MTOK: Final = 1_000_000

# Provider names spans carry (gen_ai.provider.name, the older gen_ai.system, OpenInference's
# llm.provider / llm.system) -> genai-prices' provider id, where genai-prices' own provider matching
# would not find it (azure.*, gcp.gen_ai, x_ai) or where overrides must see two names as one provider.
_PROVIDER_ALIASES: Final[Mapping[str, str]] = {
    "aws.bedrock": "aws", "bedrock": "aws", "amazon_bedrock": "aws", "amazon-bedrock": "aws",
    "azure.ai.openai": "azure", "azure.ai.inference": "azure", "az.ai.openai": "azure",
    "az.ai.inference": "azure", "azure_openai": "azure", "azure-openai": "azure", "azure_ai": "azure",
    "gcp.gen_ai": "google", "gcp.gemini": "google", "gcp.vertex_ai": "google", "gemini": "google",
    "vertex_ai": "google", "vertexai": "google", "google_genai": "google", "google-genai": "google",
    "mistral_ai": "mistral", "mistralai": "mistral",
    "x_ai": "x-ai", "xai": "x-ai",
    "together_ai": "together", "together-ai": "together", "togetherai": "together",
    "fireworks_ai": "fireworks", "fireworks-ai": "fireworks",
    "moonshot": "moonshotai",
}


def _canonical_provider(name: str | None) -> str | None:
    """genai-prices' id for a provider name as spans carry it (lower case); None for no name."""
    if name is None:
        return None
    key = name.strip().lower()
    if not key:
        return None
    return _PROVIDER_ALIASES.get(key, key)


# --------------------------------------------------------------------------------- compiled prices
@dataclass(frozen=True, slots=True)
class _Rates:
    """One price as USD per token (and per request): cost is linear in each count."""

    request: float
    input: float
    cache_read: float
    cache_write: float
    output: float
    reasoning: float

    def cost(self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int,
             reasoning: int, at: datetime | None) -> float:
        cached = cache_read + cache_write
        if cached > input_tokens:
            # The instrumentation counted cached tokens apart from the input (Anthropic's own usage
            # does): input_tokens is then the uncached part.
            input_tokens += cached
        if reasoning > output_tokens:
            output_tokens += reasoning
        return (self.request + (input_tokens - cached) * self.input + cache_read * self.cache_read
                + cache_write * self.cache_write + (output_tokens - reasoning) * self.output
                + reasoning * self.reasoning)


@dataclass(frozen=True, slots=True)
class _Tiered:
    """A long-context price: once the whole input passes a threshold, every token costs that tier's
    rate (genai-prices' TieredPrices, "cliff" tiers). ``rates[k]`` applies past ``thresholds[k-1]``."""

    thresholds: tuple[int, ...]
    rates: tuple[_Rates, ...]

    def cost(self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int,
             reasoning: int, at: datetime | None) -> float:
        cached = cache_read + cache_write
        whole_input = input_tokens + cached if cached > input_tokens else input_tokens
        tier = self.rates[bisect_left(self.thresholds, whole_input)]
        return tier.cost(input_tokens, output_tokens, cache_read, cache_write, reasoning, at)


_Static = _Rates | _Tiered


@dataclass(frozen=True, slots=True)
class _Timed:
    """A model whose price depends on when it is called (new prices from a date, off-peak hours):
    genai-prices picks the price in force, ``by_price`` holds each one compiled (None: no token price)."""

    model: ModelInfo
    by_price: Mapping[int, _Static | None]

    def cost(self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int,
             reasoning: int, at: datetime | None) -> float | None:
        # Without a price context genai-prices returns one of the model's own price objects.
        compiled = self.by_price.get(id(self.model.get_prices(at or datetime.now(timezone.utc))))
        if compiled is None:
            return None
        return compiled.cost(input_tokens, output_tokens, cache_read, cache_write, reasoning, at)


_Priced = _Rates | _Tiered | _Timed


# ------------------------------------------------------------------------------------- overrides
@dataclass(frozen=True, slots=True, kw_only=True)
class PriceOverride:
    """The user's price for one model: USD per million tokens.

    Args:
        model: the model name as spans carry it (``gen_ai.request.model`` / ``gen_ai.response.model``);
            matched ignoring case.
        input_per_mtok: price of a million input tokens (uncached).
        output_per_mtok: price of a million output tokens, reasoning tokens included.
        provider: only for spans of this provider (``"self-hosted"``, ``"openai"``, ``"aws.bedrock"``...);
            None: whatever the provider.
        cache_read_per_mtok: price of a million input tokens read from the cache; None: the input price.
        cache_write_per_mtok: price of a million input tokens written to the cache; None: the input price.

    Raises:
        ValueError: an empty or over-long name, a price that is not a finite number >= 0; the message
            names the field.
    """

    model: str
    input_per_mtok: float
    output_per_mtok: float
    provider: str | None = None
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None

    def __post_init__(self) -> None:
        for name in ("model", "provider"):
            value = getattr(self, name)
            if value is None and name == "provider":
                continue
            if not isinstance(value, str) or not value.strip() or len(value) > _MAX_NAME_CHARS:
                raise ValueError(f"{name} must be a non-empty string of at most {_MAX_NAME_CHARS} "
                                 f"characters, got {value!r}")
        for name in ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok"):
            value = getattr(self, name)
            if value is None and name.startswith("cache_"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0 (USD per million tokens), "
                                 f"got {value!r}")

    def _rates(self) -> _Rates:
        input_rate = self.input_per_mtok / _PER_MTOK
        output_rate = self.output_per_mtok / _PER_MTOK
        return _Rates(
            request=0.0,
            input=input_rate,
            cache_read=(input_rate if self.cache_read_per_mtok is None
                        else self.cache_read_per_mtok / _PER_MTOK),
            cache_write=(input_rate if self.cache_write_per_mtok is None
                         else self.cache_write_per_mtok / _PER_MTOK),
            output=output_rate,
            reasoning=output_rate,
        )


_OVERRIDE_FIELDS: Final = tuple(f.name for f in fields(PriceOverride))
_REQUIRED_FIELDS: Final = ("model", "input_per_mtok", "output_per_mtok")


def _override_from_mapping(entry: object, where: str) -> PriceOverride:
    """One override from its JSON form; ValueError prefixed with ``where`` otherwise."""
    if isinstance(entry, PriceOverride):
        return entry
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: must be an object with model, input_per_mtok and output_per_mtok, "
                         f"got {type(entry).__name__}")
    unknown = sorted(str(key) for key in entry if key not in _OVERRIDE_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(_OVERRIDE_FIELDS)})")
    missing = [name for name in _REQUIRED_FIELDS if name not in entry]
    if missing:
        raise ValueError(f"{where}: missing field {missing[0]!r}")
    try:
        return PriceOverride(**entry)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _parse_price_document(document: object, source: str) -> list[PriceOverride]:
    """The overrides of a price file's parsed JSON; ValueError naming ``source`` and the problem."""
    if not isinstance(document, Mapping) or "models" not in document:
        raise ValueError(f'{source}: must be a JSON object {{"models": [...]}}')
    unknown = sorted(str(key) for key in document if key != "models")
    if unknown:
        raise ValueError(f"{source}: unknown top-level field {unknown[0]!r} (known: models)")
    models = document["models"]
    if not isinstance(models, list):
        raise ValueError(f"{source}: models must be a list, got {type(models).__name__}")
    overrides: list[PriceOverride] = []
    seen: set[tuple[str, str | None]] = set()
    for index, entry in enumerate(models):
        label = entry.get("model") if isinstance(entry, Mapping) else None
        where = f"{source}: models[{index}]" + (f" ({label!r})" if isinstance(label, str) else "")
        override = _override_from_mapping(entry, where)
        key = (override.model.strip().lower(), _canonical_provider(override.provider))
        if key in seen:
            raise ValueError(f"{where}: the same model and provider are listed twice")
        seen.add(key)
        overrides.append(override)
    return overrides


def load_price_file(path: str | os.PathLike[str], *, use_builtin: bool = True) -> PriceBook:
    """A :class:`PriceBook` with the prices of a JSON price file (format in the module docstring).

    Args:
        path: the file.
        use_builtin: also price the models the file does not name from genai-prices' bundled
            snapshot (False: only the file's models have a price).

    Raises:
        ValueError: the file cannot be read, is not JSON, or holds a bad entry; the message names the
            file and the problem (``models[2] ('my-llama'): missing field 'output_per_mtok'``).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file path, got {path!r}")
    source = f"price file {os.fspath(path)}"
    try:
        with Path(path).open("rb") as file:
            data = file.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{source}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise ValueError(f"{source}: larger than {_MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")  # JSON is UTF-8 (RFC 8259); an editor's BOM is tolerated
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None
    return PriceBook(overrides=_parse_price_document(document, source), use_builtin=use_builtin)


# ------------------------------------------------------------------------- genai-prices, lazily
class _Builtin:
    """genai-prices' bundled snapshot, and each of its model prices compiled once (shared by every
    PriceBook: the snapshot's models are fixed, so this holds at most one entry per model)."""

    def __init__(self, providers: list[Provider]) -> None:
        from genai_prices.data_snapshot import find_provider_by_id

        self._providers = providers
        self._find_provider = find_provider_by_id
        self._lock = threading.Lock()
        self._compiled: dict[int, tuple[ModelInfo, _Priced | None]] = {}

    def find(self, model: str, provider_id: str | None) -> ModelInfo | None:
        """The snapshot's model for ``model`` (lower case): within ``provider_id``'s models (and those it
        resells, e.g. azure -> openai) when genai-prices knows that provider, else by name alone."""
        providers = self._providers
        if provider_id is not None:
            provider = self._find_provider(providers, provider_id)
            if provider is not None:
                # A known provider without the model (an OpenAI-compatible server running a local
                # model reports "openai") has no price: the name alone would price someone else's.
                return provider.find_model(model, all_providers=providers)
        if "/" in model:  # "openai/gpt-4o": LiteLLM's and OpenRouter's provider/model names
            prefix, _, rest = model.partition("/")
            provider = self._find_provider(providers, _canonical_provider(prefix) or prefix)
            if provider is not None and (found := provider.find_model(rest, all_providers=providers)):
                return found
        # By name alone, as genai-prices' calc_price does without a provider: the first provider
        # whose model pattern matches (gpt-* -> openai, claude* -> anthropic, ...).
        for provider in providers:
            if provider.model_match is not None and provider.model_match.is_match(model):
                return provider.find_model(model, all_providers=providers)
        return None

    def priced(self, model: ModelInfo) -> _Priced | None:
        """``model``'s price compiled (None when it has no token price)."""
        with self._lock:
            known = self._compiled.get(id(model))
            if known is None:
                known = (model, _compile_model(model))
                self._compiled[id(model)] = known
            return known[1]


def _compile_model(model: ModelInfo) -> _Priced | None:
    from genai_prices.types import ModelPrice

    try:
        if isinstance(model.prices, ModelPrice):
            return _compile_price(model.prices)
        return _Timed(model, {id(conditional.prices): _compile_price(conditional.prices)
                              for conditional in model.prices})
    except (ValueError, ArithmeticError, TypeError):
        # A price genai-prices itself cannot apply to token usage: no price rather than a wrong one.
        logger.warning("genai-prices: cannot use the price of model %r", model.id, exc_info=True)
        return None


def _compile_price(price: ModelPrice) -> _Static | None:
    """``price`` as per-token rates, computed by genai-prices' own calculation on probe usages.

    Within one input tier the price is linear in each count (genai-prices subtracts cached tokens
    from the input, reasoning from the output, when it prices them apart), so the cost of each kind
    of token is read off a probe usage made of that kind alone. None: no input or output price.
    """
    from genai_prices.types import TieredPrices

    values = {key: value for key, value in vars(price).items() if value is not None}
    if "input_mtok" not in values and "output_mtok" not in values:
        return None  # priced per audio hour, image, search...: not something token counts can pay
    thresholds = sorted({tier.start for value in values.values() if isinstance(value, TieredPrices)
                         for tier in value.tiers})
    if not thresholds:
        return _probe(price, _PER_MTOK)
    # Tier k holds inputs in (thresholds[k-1], thresholds[k]]: probe each with an input inside it.
    probes = [min(thresholds[0], _PER_MTOK)] + [start + 1 for start in thresholds]
    return _Tiered(tuple(thresholds), tuple(_probe(price, size) for size in probes))


def _probe(price: ModelPrice, input_size: int) -> _Rates:
    """The per-token rates of ``price`` for a call whose whole input is ``input_size`` tokens."""
    from decimal import Decimal

    from genai_prices import Usage

    def total(**usage: int) -> Decimal:
        return price.calc_price(Usage(**usage))["total_price"]

    per_request = total()
    base = total(input_tokens=input_size)
    output = total(input_tokens=input_size, output_tokens=_PER_MTOK)
    reasoning = total(input_tokens=input_size, output_tokens=_PER_MTOK, output_reasoning_tokens=_PER_MTOK)
    if input_size:
        input_rate = (base - per_request) / input_size
        read = total(input_tokens=input_size, cache_read_tokens=input_size)
        write = total(input_tokens=input_size, cache_write_tokens=input_size)
        cache_read = (read - per_request) / input_size
        cache_write = (write - per_request) / input_size
    else:  # only an empty input falls in this tier: its input rates never multiply anything
        input_rate = cache_read = cache_write = Decimal(0)
    return _Rates(
        request=float(per_request),
        input=float(input_rate),
        cache_read=float(cache_read),
        cache_write=float(cache_write),
        output=float((output - base) / _PER_MTOK),
        reasoning=float((reasoning - base) / _PER_MTOK),
    )


_builtin_lock = threading.Lock()
_builtin: _Builtin | None = None
_builtin_missing = False


def _load_builtin() -> _Builtin | None:
    """genai-prices' bundled snapshot, imported on first use; None when the package is missing."""
    global _builtin, _builtin_missing
    if _builtin is not None or _builtin_missing:
        return _builtin
    with _builtin_lock:
        if _builtin is None and not _builtin_missing:
            try:
                # The data module itself, never genai_prices.data_snapshot.get_snapshot(): that returns
                # whatever an UpdatePrices somewhere in the process fetched.
                from genai_prices.data import providers
            except ImportError as exc:
                _builtin_missing = True
                logger.warning("genai-prices is not installed (%s): only the prices given with "
                               "--prices / overrides are known", exc)
            else:
                _builtin = _Builtin(providers)
    return _builtin


# ------------------------------------------------------------------------------------ PriceBook
class PriceBook:
    """Prices of model calls: the user's overrides first, then genai-prices' bundled snapshot.

    Thread-safe. Looking a (model, provider) up resolves it once; the answer, "no price" included,
    is kept in a bounded cache (the oldest entry leaves first).

    Args:
        overrides: the user's prices, as :class:`PriceOverride` or mappings in the price file's form
            (``{"model": ..., "input_per_mtok": ..., ...}``). They win over genai-prices for their
            model (and their provider, when they name one: such an entry wins over one without).
        use_builtin: price the other models from genai-prices (False: only the overrides).
        cache_size: how many (model, provider) answers are kept (1 to 1_000_000).

    Raises:
        ValueError: a bad override or option; the message names it.
    """

    def __init__(
        self,
        *,
        overrides: Iterable[PriceOverride | Mapping[str, Any]] = (),
        use_builtin: bool = True,
        cache_size: int = _DEFAULT_CACHE_SIZE,
    ) -> None:
        if isinstance(overrides, (str, bytes, Mapping)) or not isinstance(overrides, Iterable):
            raise ValueError(f"overrides must be a list of PriceOverride or mappings, "
                             f"got {type(overrides).__name__}")
        if not isinstance(use_builtin, bool):
            raise ValueError(f"use_builtin must be True or False, got {use_builtin!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) \
                or not 1 <= cache_size <= 1_000_000:
            raise ValueError(f"cache_size must be an integer between 1 and 1000000, got {cache_size!r}")
        parsed = tuple(_override_from_mapping(entry, f"overrides[{index}]")
                       for index, entry in enumerate(overrides))
        self._overrides = parsed
        self._by_model: dict[tuple[str, str | None], _Rates] = {}
        for override in parsed:
            # A later entry for the same model and provider wins, as a later dict key would.
            self._by_model[(override.model.strip().lower(), _canonical_provider(override.provider))] = \
                override._rates()
        self._use_builtin = use_builtin
        self._cache_size = cache_size
        self._cache: dict[tuple[str, str | None], _Priced | None] = {}
        self._lock = threading.Lock()

    @property
    def overrides(self) -> tuple[PriceOverride, ...]:
        """The user's prices, in the order given."""
        return self._overrides

    @property
    def use_builtin(self) -> bool:
        """Whether models without an override are priced from genai-prices."""
        return self._use_builtin

    def __repr__(self) -> str:
        return f"PriceBook(overrides={len(self._overrides)}, use_builtin={self._use_builtin})"

    def preload(self) -> bool:
        """Import genai-prices' snapshot now rather than on the first lookup (~0.2 s, once per process).

        Returns:
            True when the built-in prices are available (False: ``use_builtin=False``, or genai-prices
            is not installed).
        """
        return self._use_builtin and _load_builtin() is not None

    def cost(
        self,
        *,
        model: str | None,
        provider: str | None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_input_tokens: int = 0,
        cache_creation_input_tokens: int = 0,
        reasoning_output_tokens: int = 0,
        at: datetime | None = None,
    ) -> float | None:
        """The cost of one model call in USD, or None when no price is known for its model.

        Token counts follow the GenAI semantic conventions. Cached tokens counted apart from the input
        (cache reads and writes above ``input_tokens``) are added to it; so are reasoning tokens above
        ``output_tokens``.

        Args:
            model: the model name (``gen_ai.response.model``, else ``gen_ai.request.model``); None:
                no price.
            provider: ``gen_ai.provider.name`` (or ``gen_ai.system``, OpenInference's ``llm.provider``);
                None or a name genai-prices does not know: the model is found by its name alone.
            input_tokens: the whole input, cached tokens included.
            output_tokens: the whole output, reasoning tokens included.
            cache_read_input_tokens: input tokens read from the provider's cache.
            cache_creation_input_tokens: input tokens written to the provider's cache.
            reasoning_output_tokens: output tokens spent reasoning.
            at: when the call was made (prices that change by date or time of day); None: now.

        Raises:
            ValueError: a negative token count, named.
        """
        if (input_tokens < 0 or output_tokens < 0 or cache_read_input_tokens < 0
                or cache_creation_input_tokens < 0 or reasoning_output_tokens < 0):
            raise ValueError(_negative(input_tokens=input_tokens, output_tokens=output_tokens,
                                       cache_read_input_tokens=cache_read_input_tokens,
                                       cache_creation_input_tokens=cache_creation_input_tokens,
                                       reasoning_output_tokens=reasoning_output_tokens))
        if model is None:
            return None
        # Fast path: one dict lookup, no lock (reading a dict is atomic; writers hold the lock).
        try:
            priced = self._cache[(model, provider)]
        except KeyError:
            priced = self._lookup(model, provider)
        if priced is None:
            return None
        return priced.cost(input_tokens, output_tokens, cache_read_input_tokens,
                           cache_creation_input_tokens, reasoning_output_tokens, at)

    def _lookup(self, model: str, provider: str | None) -> _Priced | None:
        if len(model) > _MAX_NAME_CHARS or (provider is not None and len(provider) > _MAX_NAME_CHARS):
            return None
        priced = self._resolve(model, provider)
        with self._lock:
            cache = self._cache
            while len(cache) >= self._cache_size:
                del cache[next(iter(cache))]  # the oldest first (dicts keep insertion order)
            cache[(model, provider)] = priced
        return priced

    def _resolve(self, model: str, provider: str | None) -> _Priced | None:
        name = model.strip().lower()
        if not name:
            return None
        provider_id = _canonical_provider(provider)
        by_model = self._by_model
        override = by_model.get((name, provider_id)) if provider_id is not None else None
        if override is None:
            override = by_model.get((name, None))
        if override is not None:
            return override
        if not self._use_builtin:
            return None
        builtin = _load_builtin()
        if builtin is None:
            return None
        found = builtin.find(name, provider_id)
        return builtin.priced(found) if found is not None else None


def _negative(**counts: int) -> str:
    name, value = next((name, value) for name, value in counts.items() if value < 0)
    return f"{name} must be a token count >= 0, got {value!r}"


_default_lock = threading.Lock()
_default_book: PriceBook | None = None


def default_price_book() -> PriceBook:
    """The process's shared :class:`PriceBook`: genai-prices' bundled prices, no overrides.

    Creating it imports nothing: genai-prices is loaded on its first lookup.
    """
    global _default_book
    if _default_book is None:
        with _default_lock:
            if _default_book is None:
                _default_book = PriceBook()
    return _default_book
