"""The arrows between the layers point one way (docs/architecture.md, "Layers").

    cli, demo -> server -> pipeline -> state, store -> model -> instrumentation -> opentelemetry-api

Two checks: every module's own imports, read from its source (lazy imports inside functions
included, ``if TYPE_CHECKING:`` blocks excluded since they never run), and what importing each
module really loads, in a fresh interpreter.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "otel_dashboard"

# layer -> the project layers its modules may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "instrumentation": frozenset(),
    "model": frozenset({"instrumentation"}),
    "store": frozenset({"model", "instrumentation"}),
    "state": frozenset({"store", "model", "instrumentation"}),
    "pipeline": frozenset({"state", "store", "model", "instrumentation"}),
    "server": frozenset({"pipeline", "state", "store", "model", "instrumentation"}),
    "top": frozenset({"server", "pipeline", "state", "store", "model", "instrumentation"}),
}

# layer -> third-party packages that importing any of its modules must not load
FORBIDDEN_LOADS: dict[str, tuple[str, ...]] = {
    "instrumentation": ("opentelemetry.sdk", "aiohttp", "otel_dashboard"),
    # genai-prices (with pydantic and httpx2) is imported on the first price lookup, never with a module.
    "model": ("aiohttp", "otel_dashboard.server", "otel_dashboard.state", "otel_dashboard.store",
              "otel_dashboard.pipeline", "genai_prices", "pydantic", "httpx2"),
    "store": ("aiohttp", "opentelemetry.sdk", "otel_dashboard.server", "otel_dashboard.state",
              "otel_dashboard.pipeline"),
    "state": ("aiohttp", "opentelemetry.sdk", "otel_dashboard.server", "otel_dashboard.pipeline"),
    "pipeline": ("aiohttp", "otel_dashboard.server"),
}


def _layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "instrumentation":
        return "instrumentation"
    if len(parts) > 1 and parts[1] in ALLOWED:
        return parts[1]
    return "top"  # otel_dashboard itself, cli, demo, __main__


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> list[str]:
    paths = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "instrumentation").rglob("*.py"))
    return [_module_name(p) for p in paths if "_web" not in p.parts]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST, package: str) -> list[str]:
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.append(name)
            # `from otel_dashboard.model import mapping` imports the module otel_dashboard.model.mapping
            found.extend(f"{name}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _project_layer(imported: str, known: set[str]) -> str | None:
    if imported == "instrumentation" or imported.startswith("instrumentation."):
        return "instrumentation"
    if not imported.startswith("otel_dashboard"):
        return None
    if imported not in known and imported.rsplit(".", 1)[0] in known and imported.count(".") > 1:
        imported = imported.rsplit(".", 1)[0]  # a name imported from a module, not a module
    if imported == "otel_dashboard":
        return None  # the package's lazy __init__: it loads what a name needs on first use
    return _layer_of(imported)


@pytest.mark.parametrize("module", _modules())
def test_a_module_imports_only_the_layers_below_it(module: str) -> None:
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    layer = _layer_of(module)
    known = set(_modules())
    wrong = sorted(
        {
            imported
            for imported in _runtime_imports(ast.parse(path.read_text()), package)
            if (target := _project_layer(imported, known)) not in (None, layer)
            and target not in ALLOWED[layer]
        }
    )
    assert not wrong, f"{module} (layer {layer}) imports {wrong}"


def _loads(modules: list[str]) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        """
        import importlib, json, sys
        out = {}
        for name in sys.argv[1:]:
            before = set(sys.modules)
            importlib.import_module(name)
            out[name] = sorted(set(sys.modules) - before)
        print(json.dumps(out))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("layer", sorted(FORBIDDEN_LOADS))
def test_importing_a_layer_loads_nothing_above_it(layer: str) -> None:
    # One fresh interpreter per module: what a module loads must not hide behind a sibling's imports.
    # They are independent, so they run side by side, one per core.
    modules = [m for m in _modules() if _layer_of(m) == layer]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(lambda module: _loads([module]), modules))
    for module, result in zip(modules, results, strict=True):
        assert result.returncode == 0, result.stderr
        loaded = __import__("json").loads(result.stdout)[module]
        bad = sorted(m for m in loaded if m.startswith(FORBIDDEN_LOADS[layer]))
        assert not bad, f"importing {module} loads {bad[:8]}"


def test_importing_the_package_loads_neither_the_sdk_nor_aiohttp() -> None:
    result = _loads(["otel_dashboard"])
    assert result.returncode == 0, result.stderr
    loaded = __import__("json").loads(result.stdout)["otel_dashboard"]
    assert not [m for m in loaded if m.startswith(("opentelemetry.sdk", "aiohttp"))]


def test_the_public_names_still_import() -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(
            """
            import otel_dashboard
            from otel_dashboard import (
                DashboardEvent, DashboardSpanProcessor, DashboardState, DashboardWebSocketServer, EventType,
                QualityThresholds, Severity, agent, agent_span, get_dashboard, record_opportunity,
                record_quality_score, register_agent, reset_dashboard, synthesis, synthesis_span, tool,
                tool_span,
            )
            from otel_dashboard.state import DashboardState as S
            from otel_dashboard.store import EventStore, MemoryEventStore, SqliteEventStore
            from otel_dashboard.server import DashboardWebSocketServer as W, create_app
            assert S is DashboardState and W is DashboardWebSocketServer
            assert set(otel_dashboard.__all__) <= set(dir(otel_dashboard))
            """
        )],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_an_idle_server_loads_no_otlp_codec_until_otlp_arrives() -> None:
    """A serving dashboard (HTTP and OTLP/gRPC on) that has received nothing has not loaded the
    protobuf messages, their JSON mapping, the span mapping nor the SDK (its idle footprint,
    docs/benchmarks.md); the first OTLP request loads them."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(
            """
            import asyncio, json, sys, urllib.request
            from otel_dashboard.server.app import DashboardWebSocketServer
            from otel_dashboard.state.dashboard import DashboardState

            HEAVY = ("opentelemetry.sdk", "google.protobuf.json_format", "opentelemetry.proto.collector",
                     "otel_dashboard.model.mapping", "otel_dashboard.model.span_mapper")

            def heavy():
                return sorted(m for m in sys.modules if m.startswith(HEAVY))

            async def main():
                async with DashboardWebSocketServer(port=0, grpc_port=0, state=DashboardState()) as server:
                    idle = heavy()
                    body = json.dumps({"resourceSpans": []}).encode()
                    request = urllib.request.Request(server.url + "/v1/traces", data=body,
                                                     headers={"Content-Type": "application/json"})
                    answer = await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)
                    status = answer.status
                    print(json.dumps({"idle": idle, "status": status, "after": heavy()}))

            asyncio.run(main())
            """
        )],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = __import__("json").loads(result.stdout.splitlines()[-1])
    assert outcome["idle"] == []
    assert outcome["status"] == 200
    assert "google.protobuf.json_format" in outcome["after"]
