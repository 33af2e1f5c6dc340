"""Model prices (otel_dashboard/model/prices.py): genai-prices' bundled snapshot, overrides, the file.

Expected costs come from genai-prices' own ``calc_price`` on the same usage, not from numbers
written here, so a new genai-prices snapshot does not break them.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from otel_dashboard import cli
from otel_dashboard.model.prices import PriceBook, PriceOverride, default_price_book, load_price_file

genai_prices = pytest.importorskip("genai_prices")


def _reference(model: str, provider: str | None, when: datetime | None = None, **usage: int) -> float:
    """genai-prices' own price for ``usage`` (its key names)."""
    return float(genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id=provider,
                                         genai_request_timestamp=when).total_price)


def _close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.fixture(name="book")
def fixture_book() -> PriceBook:
    return PriceBook()


# ------------------------------------------------------------------------------------- built-in
def test_a_known_openai_model_costs_what_genai_prices_says(book: PriceBook) -> None:
    cost = book.cost(model="gpt-4o-2024-08-06", provider="openai", input_tokens=12_000, output_tokens=800)
    assert cost is not None and cost > 0
    assert _close(cost, _reference("gpt-4o-2024-08-06", "openai", input_tokens=12_000, output_tokens=800))


def test_cached_tokens_cost_the_cache_price(book: PriceBook) -> None:
    full = book.cost(model="gpt-4o", provider="openai", input_tokens=10_000)
    cached = book.cost(model="gpt-4o", provider="openai", input_tokens=10_000, cache_read_input_tokens=6_000)
    assert full is not None and cached is not None and cached < full
    assert _close(cached, _reference("gpt-4o", "openai", input_tokens=10_000, cache_read_tokens=6_000))


def test_cache_writes_cost_the_providers_write_price(book: PriceBook) -> None:
    cost = book.cost(model="claude-sonnet-4-5", provider="anthropic", input_tokens=10_000,
                     cache_creation_input_tokens=4_000, cache_read_input_tokens=3_000, output_tokens=500)
    plain = book.cost(model="claude-sonnet-4-5", provider="anthropic", input_tokens=10_000, output_tokens=500)
    assert cost is not None and plain is not None and cost != plain
    assert _close(cost, _reference("claude-sonnet-4-5", "anthropic", input_tokens=10_000,
                                   cache_write_tokens=4_000, cache_read_tokens=3_000, output_tokens=500))


def test_cached_tokens_counted_apart_from_the_input_are_added_to_it(book: PriceBook) -> None:
    # Anthropic's own usage reports input_tokens without the cache: more cached than "input".
    cost = book.cost(model="claude-sonnet-4-5", provider="anthropic", input_tokens=100,
                     cache_read_input_tokens=5_000)
    assert _close(cost, _reference("claude-sonnet-4-5", "anthropic", input_tokens=5_100,
                                   cache_read_tokens=5_000))


def test_reasoning_tokens_are_output_tokens_priced_as_the_provider_prices_them(book: PriceBook) -> None:
    with_reasoning = book.cost(model="o3-mini", provider="openai", input_tokens=1_000, output_tokens=3_000,
                               reasoning_output_tokens=2_000)
    assert _close(with_reasoning, _reference("o3-mini", "openai", input_tokens=1_000, output_tokens=3_000,
                                             output_reasoning_tokens=2_000))
    # OpenAI bills reasoning as output: the split changes nothing.
    assert _close(with_reasoning, book.cost(model="o3-mini", provider="openai", input_tokens=1_000,
                                            output_tokens=3_000) or 0.0)


def test_a_long_context_tier_prices_every_token_at_the_tier_rate(book: PriceBook) -> None:
    for tokens in (199_999, 200_000, 200_001, 500_000):
        cost = book.cost(model="claude-sonnet-4-5", provider="anthropic", input_tokens=tokens,
                         output_tokens=1_000)
        assert _close(cost, _reference("claude-sonnet-4-5", "anthropic", input_tokens=tokens,
                                       output_tokens=1_000)), tokens


def test_a_price_that_depends_on_the_time_of_day_uses_the_calls_time(book: PriceBook) -> None:
    # DeepSeek has had off-peak (UTC night) prices: genai-prices picks the one in force at `at`.
    for hour in (3, 12, 18):
        when = datetime(2025, 6, 1, hour, 0, tzinfo=timezone.utc)
        cost = book.cost(model="deepseek-chat", provider="deepseek", input_tokens=10_000, output_tokens=2_000,
                         at=when)
        assert _close(cost, _reference("deepseek-chat", "deepseek", when, input_tokens=10_000,
                                       output_tokens=2_000)), hour


@pytest.mark.parametrize(
    ("provider", "model", "genai_provider"),
    [
        ("openai", "gpt-4o-mini", "openai"),
        ("azure.ai.openai", "gpt-4o", "azure"),
        ("az.ai.openai", "gpt-4o", "azure"),  # the older gen_ai.system
        ("azure", "gpt-4o", "azure"),  # OpenInference llm.provider
        ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "aws"),
        ("gcp.vertex_ai", "gemini-2.5-pro", "google"),
        ("gcp.gemini", "gemini-2.5-flash", "google"),
        ("gcp.gen_ai", "gemini-2.5-flash", "google"),
        ("x_ai", "grok-3", "x-ai"),
        ("xai", "grok-3", "x-ai"),
        ("mistral_ai", "mistral-large-latest", "mistral"),
        ("mistralai", "mistral-large-latest", "mistral"),
        (None, "claude-3-5-sonnet-20241022", "anthropic"),  # no provider: by name alone
        ("ollama", "gpt-4o", "openai"),  # a provider genai-prices does not know: by name alone
        ("litellm", "openai/gpt-4o", "openai"),
        (None, "openai/gpt-4o", "openai"),
    ],
)
def test_span_provider_names_find_genai_prices_providers(
    book: PriceBook, provider: str | None, model: str, genai_provider: str
) -> None:
    cost = book.cost(model=model, provider=provider, input_tokens=5_000, output_tokens=700)
    reference_model = model.partition("/")[2] if model.startswith("openai/") else model
    assert _close(cost, _reference(reference_model, genai_provider, input_tokens=5_000, output_tokens=700))


def test_an_unknown_model_has_no_price(book: PriceBook) -> None:
    assert book.cost(model="my-llama-3-finetune", provider="self-hosted", input_tokens=10) is None
    assert book.cost(model="my-llama-3-finetune", provider=None, input_tokens=10) is None
    # A known provider without that model (a local model behind an OpenAI-compatible server) has no
    # price either: its name alone must not borrow another provider's.
    assert book.cost(model="llama3.1:8b", provider="openai", input_tokens=10) is None
    assert book.cost(model=None, provider="openai", input_tokens=10) is None
    assert book.cost(model="", provider="openai", input_tokens=10) is None
    assert book.cost(model="gpt-4o" + "x" * 300, provider="openai", input_tokens=10) is None
    assert book.cost(model="whisper-1", provider="openai", input_tokens=10) is None  # priced per minute


def test_every_model_in_the_snapshot_costs_what_genai_prices_says(book: PriceBook) -> None:
    from genai_prices.data import providers

    rng = random.Random(13)
    when = datetime(2026, 1, 15, 10, 30, tzinfo=timezone.utc)
    checked = 0
    for provider in providers:
        for model in provider.models:
            tokens = rng.choice([0, 1, 900, 150_000, 200_001, 272_001, 2_000_000])
            read = rng.randint(0, tokens // 2)
            write = rng.randint(0, (tokens - read) // 2)
            output = rng.randint(0, 40_000)
            reasoning = rng.randint(0, output)
            usage = genai_prices.Usage(input_tokens=tokens, cache_read_tokens=read, cache_write_tokens=write,
                                       output_tokens=output, output_reasoning_tokens=reasoning)
            expected = float(model.calc_price(usage, provider, genai_request_timestamp=when).total_price)
            # The model's own id under its own provider resolves to it (first match wins in a provider).
            if provider.find_model(model.id, all_providers=providers) is not model:
                continue
            cost = book.cost(model=model.id, provider=provider.id, input_tokens=tokens, output_tokens=output,
                             cache_read_input_tokens=read, cache_creation_input_tokens=write,
                             reasoning_output_tokens=reasoning, at=when)
            if cost is None:
                assert expected == 0, (provider.id, model.id)  # no token price: audio, images, ...
                continue
            assert _close(cost, expected), (provider.id, model.id, tokens, read, write, output, reasoning)
            checked += 1
    assert checked > 1000


def test_a_snapshot_fetched_by_someone_else_is_not_used(book: PriceBook) -> None:
    from genai_prices import data_snapshot

    expected = book.cost(model="gpt-4o", provider="openai", input_tokens=1_000)
    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=[], from_auto_update=True))
    try:
        fresh = PriceBook()
        assert fresh.cost(model="gpt-4o", provider="openai", input_tokens=1_000) == expected
    finally:
        data_snapshot.set_custom_snapshot(None)


def test_nothing_touches_the_network() -> None:
    # A fresh interpreter: genai-prices is imported by the first lookup, under the audit hook.
    code = textwrap.dedent(
        """
        import sys, threading
        seen = []
        def hook(event, args):
            if event.startswith(("socket.", "urllib.Request", "http.client")):
                seen.append(event)
                raise RuntimeError("network: " + event)
        sys.addaudithook(hook)
        from otel_dashboard.model.prices import PriceBook
        book = PriceBook()
        for model, provider in [("gpt-4o", "openai"), ("claude-sonnet-4-5", None), ("deepseek-chat", None),
                                ("gemini-2.5-pro", "gcp.vertex_ai"), ("nothing-like-it", "vllm")]:
            book.cost(model=model, provider=provider, input_tokens=10, output_tokens=5)
        assert "genai_prices" in sys.modules
        assert not [t for t in threading.enumerate() if t.name.startswith("genai_prices")]
        print(seen)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_genai_prices_only_overrides_are_priced() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["genai_prices"] = None  # as on Python 3.10, where it does not install
        from otel_dashboard.model.prices import PriceBook
        book = PriceBook(overrides=[{"model": "mine", "input_per_mtok": 1, "output_per_mtok": 2}])
        assert book.cost(model="gpt-4o", provider="openai", input_tokens=10) is None
        assert book.cost(model="mine", provider=None, input_tokens=1_000_000) == 1.0
        assert not book.preload()
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "genai-prices is not installed" in result.stderr


def test_answers_are_cached_and_the_cache_is_bounded() -> None:
    book = PriceBook(cache_size=3)
    first = book.cost(model="gpt-4o", provider="openai", input_tokens=1_000)
    for name in ("a", "b", "c", "d", "e"):
        assert book.cost(model=name, provider=None, input_tokens=1) is None
    assert len(book._cache) == 3
    assert book.cost(model="gpt-4o", provider="openai", input_tokens=1_000) == first


def test_lookups_from_many_threads_agree() -> None:
    book = PriceBook()
    expected = _reference("gpt-4o", "openai", input_tokens=2_000, output_tokens=100)
    results: list[float | None] = []

    def work() -> None:
        for model in ("gpt-4o", "claude-3-5-haiku-latest", "nope") * 20:
            cost = book.cost(model=model, provider=None, input_tokens=2_000, output_tokens=100)
            if model == "gpt-4o":
                results.append(cost)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 160 and all(_close(cost, expected) for cost in results)


@pytest.mark.parametrize("name", ["input_tokens", "output_tokens", "cache_read_input_tokens",
                                  "cache_creation_input_tokens", "reasoning_output_tokens"])
def test_a_negative_token_count_is_a_value_error_naming_it(book: PriceBook, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        book.cost(model="gpt-4o", provider="openai", **{name: -1})


def test_bad_options_are_value_errors_naming_them() -> None:
    with pytest.raises(ValueError, match="cache_size"):
        PriceBook(cache_size=0)
    with pytest.raises(ValueError, match="use_builtin"):
        PriceBook(use_builtin="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="overrides"):
        PriceBook(overrides={"model": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"overrides\[0\]: missing field 'output_per_mtok'"):
        PriceBook(overrides=[{"model": "x", "input_per_mtok": 1}])
    with pytest.raises(ValueError, match="output_per_mtok"):
        PriceOverride(model="x", input_per_mtok=1, output_per_mtok=float("nan"))


def test_the_default_book_is_shared() -> None:
    assert default_price_book() is default_price_book()
    assert default_price_book().use_builtin and default_price_book().overrides == ()


# ------------------------------------------------------------------------------------- overrides
def test_an_override_wins_over_genai_prices() -> None:
    book = PriceBook(overrides=[PriceOverride(model="GPT-4o", input_per_mtok=1.0, output_per_mtok=2.0)])
    assert book.cost(model="gpt-4o", provider="openai", input_tokens=1_000_000, output_tokens=500_000) == 2.0
    # Other models still come from genai-prices.
    assert _close(book.cost(model="gpt-4o-mini", provider="openai", input_tokens=1_000),
                  _reference("gpt-4o-mini", "openai", input_tokens=1_000))


def test_an_override_for_a_provider_applies_to_that_provider_only() -> None:
    book = PriceBook(overrides=[
        {"model": "llama-3.3-70b", "provider": "self-hosted", "input_per_mtok": 0.1, "output_per_mtok": 0.1},
        {"model": "llama-3.3-70b", "input_per_mtok": 1.0, "output_per_mtok": 1.0},
        {"model": "gpt-4o", "provider": "gcp.vertex_ai", "input_per_mtok": 9.0, "output_per_mtok": 9.0},
    ])
    assert book.cost(model="llama-3.3-70b", provider="self-hosted", input_tokens=1_000_000) == 0.1
    assert book.cost(model="llama-3.3-70b", provider="vllm", input_tokens=1_000_000) == 1.0
    # One provider under its several names.
    assert book.cost(model="gpt-4o", provider="google", input_tokens=1_000_000) == 9.0
    assert book.cost(model="gpt-4o", provider="openai", input_tokens=1_000_000) != 9.0


def test_override_cache_prices_default_to_the_input_price() -> None:
    book = PriceBook(overrides=[
        {"model": "a", "input_per_mtok": 2.0, "output_per_mtok": 8.0},
        {"model": "b", "input_per_mtok": 2.0, "output_per_mtok": 8.0, "cache_read_per_mtok": 0.5,
         "cache_write_per_mtok": 2.5},
    ], use_builtin=False)
    usage: dict[str, Any] = {"input_tokens": 1_000_000, "cache_read_input_tokens": 400_000,
                             "cache_creation_input_tokens": 200_000, "output_tokens": 100_000,
                             "reasoning_output_tokens": 50_000}
    assert book.cost(model="a", provider=None, **usage) == pytest.approx(2.0 + 0.8)
    expected = 0.4 * 2 + 0.4 * 0.5 + 0.2 * 2.5 + 0.8
    assert book.cost(model="b", provider=None, **usage) == pytest.approx(expected)
    assert book.cost(model="gpt-4o", provider="openai", **usage) is None  # use_builtin=False


# ----------------------------------------------------------------------------------------- the file
def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "prices.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_a_price_file_is_loaded(tmp_path: Path) -> None:
    path = _write(tmp_path, json.dumps({"models": [
        {"model": "my-llama", "provider": "self-hosted", "input_per_mtok": 0.2, "output_per_mtok": 0.6,
         "cache_read_per_mtok": 0.05},
        {"model": "gpt-4o", "input_per_mtok": 1, "output_per_mtok": 1},
    ]}))
    book = load_price_file(path)
    assert book.use_builtin and len(book.overrides) == 2
    assert book.cost(model="my-llama", provider="self-hosted", input_tokens=1_000_000,
                     output_tokens=1_000_000) == pytest.approx(0.8)
    assert book.cost(model="gpt-4o", provider="openai", input_tokens=1_000_000) == 1.0
    assert not load_price_file(str(path), use_builtin=False).use_builtin


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        (b"\xff\xfe{}", "not UTF-8"),
        ("[]", 'must be a JSON object {"models": [...]}'),
        ("{}", 'must be a JSON object {"models": [...]}'),
        ('{"models": {}}', "models must be a list, got dict"),
        ('{"models": [], "extra": 1}', "unknown top-level field 'extra'"),
        ('{"models": [3]}', "models[0]: must be an object"),
        ('{"models": [{"model": "a", "input_per_mtok": 1}]}',
         "models[0] ('a'): missing field 'output_per_mtok'"),
        ('{"models": [{"input_per_mtok": 1, "output_per_mtok": 1}]}', "models[0]: missing field 'model'"),
        ('{"models": [{"model": "a", "input_per_mtok": -1, "output_per_mtok": 1}]}',
         "models[0] ('a'): input_per_mtok must be a finite number >= 0"),
        ('{"models": [{"model": "a", "input_per_mtok": "1", "output_per_mtok": 1}]}',
         "input_per_mtok must be a finite number >= 0"),
        ('{"models": [{"model": "a", "input_per_mtok": 1, "output_per_mtok": 1,'
         ' "cache_read_per_mtok": true}]}',
         "cache_read_per_mtok must be a finite number >= 0"),
        ('{"models": [{"model": "", "input_per_mtok": 1, "output_per_mtok": 1}]}',
         "model must be a non-empty"),
        ('{"models": [{"model": "a", "input_price": 1, "output_per_mtok": 1}]}',
         "unknown field 'input_price'"),
        ('{"models": [{"model": "a", "input_per_mtok": 1, "output_per_mtok": 1},'
         ' {"model": "A", "input_per_mtok": 2, "output_per_mtok": 2}]}', "models[1] ('A'): the same model"),
    ],
)
def test_a_bad_price_file_is_a_value_error_naming_it_and_the_problem(
    tmp_path: Path, content: str | bytes, problem: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ValueError) as excinfo:
        load_price_file(path)
    assert str(excinfo.value).startswith(f"price file {path}: ")
    assert problem in str(excinfo.value)


def test_a_missing_price_file_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"price file .*missing\.json: cannot read it: No such file"):
        load_price_file(tmp_path / "missing.json")


# ------------------------------------------------------------------------------ CLI and options
@pytest.mark.parametrize("command", ["serve", "demo"])
def test_cli_a_bad_price_file_exits_2_with_one_error_line(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, '{"models": [{"model": "a", "input_per_mtok": 1}]}')
    with pytest.raises(SystemExit) as excinfo:
        cli.main([command, "--prices", str(path)])
    assert excinfo.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert errors == [f"otel-dashboard {command}: error: argument --prices: price file {path}: "
                      "models[0] ('a'): missing field 'output_per_mtok'"]


def test_cli_a_good_price_file_reaches_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, '{"models": [{"model": "a", "input_per_mtok": 1, "output_per_mtok": 2}]}')
    seen: dict[str, Any] = {}

    async def fake_serve(args: Any) -> int:
        seen["prices"] = args.prices
        return 0

    monkeypatch.setattr(cli, "_serve", fake_serve)
    assert cli.main(["serve", "--prices", str(path)]) == 0
    assert isinstance(seen["prices"], PriceBook) and seen["prices"].overrides[0].model == "a"

    import otel_dashboard.demo

    async def fake_run_demo(
        host: str, port: int, *, prices: PriceBook | None = None, grpc_port: int | None = None
    ) -> int:
        seen["demo"] = prices
        return 0

    monkeypatch.setattr(otel_dashboard.demo, "run_demo", fake_run_demo)
    assert cli.main(["demo", "--prices", str(path)]) == 0
    assert isinstance(seen["demo"], PriceBook)


def test_the_server_options_carry_the_price_book() -> None:
    from otel_dashboard.server import DashboardWebSocketServer, create_app
    from otel_dashboard.server.options import OPTIONS_KEY

    book = PriceBook(use_builtin=False)
    assert create_app(prices=book)[OPTIONS_KEY].prices is book
    assert create_app()[OPTIONS_KEY].prices is None
    assert DashboardWebSocketServer(prices=book).create_app()[OPTIONS_KEY].prices is book
    with pytest.raises(ValueError, match="prices must be a PriceBook"):
        create_app(prices="prices.json")
