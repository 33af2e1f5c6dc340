"""Guardrails while agents run: budgets and loop thresholds, their configuration, and the events
that report a crossing (``docs/guardrails.md``).

* :class:`Budget`, :class:`LoopThresholds`, :class:`Guardrails`: what is configured (the contract
  every part of issue 18 shares).
* :func:`load_guardrails` reads a TOML or JSON file (``serve --budgets FILE``) and
  :func:`parse_guardrails` checks an already decoded mapping; a bad setting is a
  :class:`GuardrailsConfigError` naming the file, the line (when it can be found) and the setting.
* What the budgets count, and when they are crossed, is :mod:`otel_dashboard.model.budget_tracker`.

A little over 400 lines for a reason: the file's line finders (TOML by its table headers and keys,
JSON through a decoder that remembers where each object started) exist only so that the checks can
name ``file:line``; they and the checks are one piece.
"""

from __future__ import annotations

import importlib
import json
import json.decoder
import json.scanner
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BUDGET_EXCEEDED",
    "BUDGET_KINDS",
    "BUDGET_SCOPES",
    "LOOP_SUSPECTED",
    "Budget",
    "Guardrails",
    "GuardrailsConfigError",
    "LoopThresholds",
    "as_guardrails",
    "check_budget",
    "is_number",
    "load_guardrails",
    "parse_guardrails",
]

BUDGET_EXCEEDED = "BudgetExceeded"
"""The ``error_type`` of the ``error_occurred`` a budget crossing publishes (severity error)."""
LOOP_SUSPECTED = "LoopSuspected"
"""The ``error_type`` of the ``error_occurred`` a suspected loop publishes (severity warning)."""

BUDGET_SCOPES = ("run", "agent", "conversation")
BUDGET_KINDS = ("tokens", "cost_usd", "duration_seconds", "model_calls", "tool_calls")

MAX_BUDGETS = 100
"""Budgets one configuration may hold."""
MAX_WINDOW_SECONDS = 30 * 86_400
"""The longest rolling window of an ``"agent"`` budget (30 days)."""
MAX_LOOP_THRESHOLD = 1000
"""The highest loop threshold accepted (0 turns a check off)."""
_LOOP_KEYS = ("repeated_tool_calls", "repeated_prompts", "self_invocation_depth")
_BUDGET_KEYS = ("scope", "agent", "window_seconds", *BUDGET_KINDS)
_TOP_KEYS = ("budgets", "loops")


class GuardrailsConfigError(ValueError):
    """A guardrails configuration that cannot be used; the message names the file, the line (when
    known) and the setting."""


@dataclass(frozen=True)
class Budget:
    """One budget: limits on the runs of a scope.

    Attributes:
        scope: ``"run"`` (each run), ``"agent"`` (an agent's runs over ``window_seconds``) or
            ``"conversation"`` (the runs sharing a conversation id).
        agent: only the runs of this agent name; None: every agent.
        limits: kind -> limit, kinds of :data:`BUDGET_KINDS` (``tokens`` counts input + output).
        window_seconds: the rolling window of an ``"agent"`` budget (None: the state's usage window).
    """

    scope: str
    limits: dict[str, float] = field(default_factory=dict)
    agent: str | None = None
    window_seconds: int | None = None


@dataclass(frozen=True)
class LoopThresholds:
    """When a run is suspected of looping (``LoopSuspected``); 0 turns a check off.

    Attributes:
        repeated_tool_calls: the same tool with the same arguments this many times in one run.
        repeated_prompts: the same model input this many times in one run.
        self_invocation_depth: an agent running inside its own run (through others) this deep.
    """

    repeated_tool_calls: int = 5
    repeated_prompts: int = 5
    self_invocation_depth: int = 3


@dataclass(frozen=True)
class Guardrails:
    """Budgets and loop thresholds together (what ``serve --budgets FILE`` loads)."""

    budgets: tuple[Budget, ...] = ()
    loops: LoopThresholds = field(default_factory=LoopThresholds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``GET /api/guardrails``): ``{"budgets": [{"scope", "agent", "limits",
        "window_seconds"}, ...], "loops": {"repeated_tool_calls", "repeated_prompts",
        "self_invocation_depth"}}``."""
        return {
            "budgets": [{"scope": b.scope, "agent": b.agent, "limits": dict(b.limits),
                         "window_seconds": b.window_seconds} for b in self.budgets],
            "loops": {"repeated_tool_calls": self.loops.repeated_tool_calls,
                      "repeated_prompts": self.loops.repeated_prompts,
                      "self_invocation_depth": self.loops.self_invocation_depth},
        }


# ---------------------------------------------------------------------------------------------- checks
Locate = Callable[[tuple[Any, ...]], "int | None"]
"""The line of a setting, by its path (``("budgets", 0, "tokens")``), in the file it came from."""


def _setting(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


class _Checker:
    """Raises :class:`GuardrailsConfigError` as ``source:line: setting: problem``."""

    def __init__(self, source: str, locate: Locate | None) -> None:
        self.source = source
        self.locate = locate

    def fail(self, path: tuple[Any, ...], problem: str) -> GuardrailsConfigError:
        line = None
        if self.locate is not None:
            try:
                line = self.locate(path)
            except Exception:  # finding the line is a courtesy: the message still names the setting
                line = None
        where = f"{self.source}:{line}" if line else self.source
        return GuardrailsConfigError(f"{where}: {_setting(path)}: {problem}")


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_budget(check: _Checker, path: tuple[Any, ...], item: Any) -> Budget:
    if not isinstance(item, Mapping):
        raise check.fail(path, f"must be a table of settings, got {type(item).__name__}")
    for key in item:
        if key not in _BUDGET_KEYS:
            raise check.fail((*path, key), f"unknown setting (a budget takes {', '.join(_BUDGET_KEYS)})")
    scope = item.get("scope")
    if scope not in BUDGET_SCOPES:
        raise check.fail((*path, "scope") if "scope" in item else path,
                         f"scope must be one of {', '.join(BUDGET_SCOPES)}, got {scope!r}")
    agent = item.get("agent")
    if agent is not None and (not isinstance(agent, str) or not agent.strip()):
        raise check.fail((*path, "agent"), f"must be an agent name (a non-empty string), got {agent!r}")
    window = item.get("window_seconds")
    if window is not None:
        if scope != "agent":
            raise check.fail((*path, "window_seconds"), 'only an "agent" budget has a window')
        if (not isinstance(window, int) or isinstance(window, bool)
                or not 1 <= window <= MAX_WINDOW_SECONDS):
            raise check.fail((*path, "window_seconds"), "must be a whole number of seconds from 1 to "
                             f"{MAX_WINDOW_SECONDS}, got {window!r}")
    limits: dict[str, float] = {}
    for kind in BUDGET_KINDS:
        if kind not in item:
            continue
        limit = item[kind]
        if not is_number(limit) or limit <= 0:
            raise check.fail((*path, kind), f"must be a positive number, got {limit!r}")
        limits[kind] = float(limit) if isinstance(limit, float) else limit
    if not limits:
        raise check.fail(path, f"a budget needs at least one limit: {', '.join(BUDGET_KINDS)}")
    return Budget(scope=scope, limits=limits, agent=agent.strip() if agent else None, window_seconds=window)


def _check_loops(check: _Checker, item: Any) -> LoopThresholds:
    if not isinstance(item, Mapping):
        raise check.fail(("loops",), f"must be a table of settings, got {type(item).__name__}")
    values: dict[str, int] = {}
    for key, value in item.items():
        if key not in _LOOP_KEYS:
            raise check.fail(("loops", key), f"unknown setting (loops take {', '.join(_LOOP_KEYS)})")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_LOOP_THRESHOLD:
            raise check.fail(("loops", key),
                             f"must be a whole number from 0 (off) to {MAX_LOOP_THRESHOLD}, got {value!r}")
        values[key] = value
    return LoopThresholds(**values)


def parse_guardrails(mapping: Mapping[str, Any], *, source: str = "guardrails",
                     locate: Locate | None = None) -> Guardrails:
    """The :class:`Guardrails` of a decoded configuration (the schema of ``docs/guardrails.md``).

    Args:
        mapping: ``{"budgets": [{...}, ...], "loops": {...}}``, both optional.
        source: what the configuration is called in errors (a file name).
        locate: finds the line of a setting by its path (``("budgets", 0, "tokens")``); the loader
            passes one, so that an error names ``file:line``.

    Raises:
        GuardrailsConfigError: the first bad setting: ``source[:line]: setting: problem``.
    """
    check = _Checker(source, locate)
    if not isinstance(mapping, Mapping):
        raise check.fail((), f"must be a table (an object) of settings, got {type(mapping).__name__}")
    for key in mapping:
        if key not in _TOP_KEYS:
            raise check.fail((key,), f"unknown setting (the file takes {', '.join(_TOP_KEYS)})")
    items = mapping.get("budgets", [])
    if not isinstance(items, (list, tuple)):
        raise check.fail(("budgets",), f"must be a list of budgets, got {type(items).__name__}")
    if len(items) > MAX_BUDGETS:
        raise check.fail(("budgets",), f"at most {MAX_BUDGETS} budgets, got {len(items)}")
    budgets = tuple(_check_budget(check, ("budgets", index), item) for index, item in enumerate(items))
    loops = _check_loops(check, mapping["loops"]) if "loops" in mapping else LoopThresholds()
    return Guardrails(budgets=budgets, loops=loops)


def check_budget(budget: Any, *, source: str = "budgets") -> Budget:
    """``budget`` checked as a file's would be (the Python API's budgets).

    Raises:
        GuardrailsConfigError: not a :class:`Budget`, or a bad setting (named).
    """
    if not isinstance(budget, Budget):
        raise GuardrailsConfigError(f"{source}: must be a Budget, got {budget!r}")
    item: dict[str, Any] = {"scope": budget.scope, **dict(budget.limits)}
    if budget.agent is not None:
        item["agent"] = budget.agent
    if budget.window_seconds is not None:
        item["window_seconds"] = budget.window_seconds
    return _check_budget(_Checker(source, None), (), item)


def as_guardrails(value: Guardrails | Sequence[Budget] | None, *,
                  loops: LoopThresholds | None = None) -> Guardrails:
    """The :class:`Guardrails` of the Python API's ``budgets=`` (a Guardrails, budgets, or None),
    each budget checked (:func:`check_budget`); ``loops`` when the value carries none.

    Raises:
        GuardrailsConfigError: a bad budget, or a value of another type.
    """
    if value is None:
        return Guardrails(loops=loops or LoopThresholds())
    if isinstance(value, Guardrails):
        budgets = value.budgets
        loops = value.loops
    elif isinstance(value, (list, tuple)):
        budgets = tuple(value)
    else:
        raise GuardrailsConfigError(f"budgets must be a Guardrails, a list of Budget or None, got {value!r}")
    if len(budgets) > MAX_BUDGETS:
        raise GuardrailsConfigError(f"budgets: at most {MAX_BUDGETS} budgets, got {len(budgets)}")
    checked = tuple(check_budget(b, source=f"budgets[{i}]") for i, b in enumerate(budgets))
    return Guardrails(budgets=checked, loops=loops or LoopThresholds())


# ---------------------------------------------------------------------------------------------- files
def load_guardrails(path: str | Path) -> Guardrails:
    """Read a guardrails file: TOML (``.toml``) or JSON (any other name), the schema of
    ``docs/guardrails.md``.

    Raises:
        GuardrailsConfigError: the file cannot be read or decoded, or a setting is bad; the message
            is one line naming ``file:line`` and the setting. On Python 3.10 a TOML file needs the
            ``tomli`` package (else the error says so, and that JSON works without it).
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GuardrailsConfigError(f"{source}: cannot read the file: {exc}") from None
    if path.suffix.lower() == ".toml":
        toml = _toml_module(source)
        try:
            mapping = toml.loads(text)
        except toml.TOMLDecodeError as exc:
            line = re.search(r"line (\d+)", str(exc))
            where = f"{source}:{line.group(1)}" if line else source
            raise GuardrailsConfigError(f"{where}: not valid TOML: {exc}") from None
        return parse_guardrails(mapping, source=source, locate=_toml_locator(text))
    try:
        mapping = _located_json(text)
    except json.JSONDecodeError as exc:
        raise GuardrailsConfigError(f"{source}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    return parse_guardrails(mapping, source=source, locate=_json_locator(text, mapping))


def _toml_module(source: str) -> Any:
    for name in ("tomllib", "tomli"):  # tomllib from Python 3.11; the tomli package before
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise GuardrailsConfigError(f"{source}: reading TOML on Python 3.10 needs the tomli package "
                                "(pip install tomli); or write the file as JSON")


_TOML_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")


def _toml_locator(text: str) -> Locate:
    """Finds a setting's line by scanning the TOML text: the ``[[budgets]]`` tables in order, the
    ``[loops]`` table, and the ``key =`` lines inside them."""
    lines = text.splitlines()
    tables: list[tuple[str, int]] = []  # (table name, line index of its header), in order
    for index, line in enumerate(lines):
        match = _TOML_HEADER.match(line)
        if match:
            tables.append((match.group(1).strip("\"' "), index))

    def key_line(start: int, end: int, key: str) -> int | None:
        pattern = re.compile(rf"^\s*[\"']?{re.escape(str(key))}[\"']?\s*=")
        for index in range(start, end):
            if pattern.match(lines[index]):
                return index + 1
        return None

    def table_range(name: str, nth: int) -> tuple[int, int] | None:
        found = [i for i, (table, _) in enumerate(tables) if table == name]
        if nth >= len(found):
            return None
        position = found[nth]
        start = tables[position][1]
        end = tables[position + 1][1] if position + 1 < len(tables) else len(lines)
        return start, end

    def locate(path: tuple[Any, ...]) -> int | None:
        if not path:
            return None
        first_table = tables[0][1] if tables else len(lines)
        if len(path) == 1:
            found = table_range(str(path[0]), 0)
            return found[0] + 1 if found else key_line(0, first_table, path[0])
        if path[0] == "budgets" and isinstance(path[1], int):
            found = table_range("budgets", path[1])
            if found is None:
                return key_line(0, first_table, "budgets")  # budgets = [...] inline
            if len(path) == 2:
                return found[0] + 1
            return key_line(found[0] + 1, found[1], path[2]) or found[0] + 1
        found = table_range(str(path[0]), 0)
        if found is None:
            return key_line(0, first_table, path[0])
        return key_line(found[0] + 1, found[1], path[1]) or found[0] + 1

    return locate


class _LocatedDict(dict[str, Any]):
    """A decoded JSON object that remembers where its text starts and ends."""

    start = 0
    end = 0


def _located_json(text: str) -> Any:
    """``json.loads`` whose objects are :class:`_LocatedDict` (the pure-Python scanner, so that
    object parsing can be wrapped; a configuration file is small)."""
    decoder = json.JSONDecoder()
    json_decoder: Any = json.decoder  # JSONObject and py_make_scanner are not in the stubs

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        obj, end = json_decoder.JSONObject(s_and_end, *args)
        located = _LocatedDict(obj)
        located.start, located.end = s_and_end[1] - 1, end
        return located, end

    # The scanner reads parse_object from its context, and decode uses scan_once.
    scanner: Any = json.scanner
    setattr(decoder, "parse_object", parse_object)  # noqa: B010
    setattr(decoder, "scan_once", scanner.py_make_scanner(decoder))  # noqa: B010
    return decoder.decode(text)


def _json_locator(text: str, root: Any) -> Locate:
    """Finds a setting's line in the JSON text: the line of its key inside its object (or of the
    object itself)."""

    def line_at(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    def locate(path: tuple[Any, ...]) -> int | None:
        node = root
        line = None
        for part in path:
            if isinstance(node, _LocatedDict) and isinstance(part, str):
                match = re.compile(rf"\"{re.escape(part)}\"\s*:").search(text, node.start, node.end)
                line = line_at(match.start()) if match else line
                node = node.get(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
                if isinstance(node, _LocatedDict):
                    line = line_at(node.start)
            else:
                return line
        return line

    return locate
