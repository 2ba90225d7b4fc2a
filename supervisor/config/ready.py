"""``ready_when``: what a health probe's answer must show for the provider to get traffic.

In providers.yaml it is a status class, ``2xx`` (the default) or ``any``, or a mapping that adds
a condition on the answer's JSON body::

    ready_when: {status: 2xx, json: "tokens.active > 0"}

A condition is a dotted path into the JSON (``tokens.active``; a number indexes a list), an
operator (``==`` ``!=`` ``>`` ``>=`` ``<`` ``<=``) and a literal: a number, a quoted string,
``true``, ``false`` or ``null``. It is parsed once, at load, by a small tokenizer (never
``eval``) into a frozen :class:`JsonCondition`; a condition that cannot be parsed is a config
error that says what is wrong (``expected an operator after 'tokens.active'``).

k2think2api3 is why: its ``/health`` stays ``200 {"status": "healthy"}`` after its only token
went bad, and only ``tokens.active`` says so (PROVIDERS.md).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

STATUSES = ("2xx", "any")
OPERATORS = ("==", "!=", ">=", "<=", ">", "<")
ORDERING = (">=", "<=", ">", "<")
Literal = float | int | str | bool | None

_TOKEN = re.compile(r"""\s*(?:([=!<>]+)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|"""
                    r"""([^\s=!<>"']+))""")
_PATH = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_WORDS: dict[str, Literal] = {"true": True, "false": False, "null": None}
_VALUE = "a number, a quoted string, true, false or null"
_MISSING = object()
_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


class ConditionError(ValueError):
    """A condition that cannot be parsed; the message says what is wrong."""


@dataclass(frozen=True)
class JsonCondition:
    """``path op value`` on a JSON answer, parsed once (see the module docstring)."""

    path: tuple[str, ...]
    op: str
    value: Literal

    @classmethod
    def parse(cls, text: str) -> JsonCondition:
        """Parse ``tokens.active > 0``; raise :class:`ConditionError` saying what is wrong."""
        tokens = _tokens(text)
        if not tokens:
            raise ConditionError(f"expected a dotted path, an operator and a value ({_VALUE}),"
                                 " got nothing")
        kind, path = tokens[0]
        if kind != "word" or not _PATH.fullmatch(path):
            raise ConditionError(f"expected a dotted path first (like tokens.active), got {path!r}")
        if len(tokens) < 2 or tokens[1][1] not in OPERATORS:
            got = f", got {tokens[1][1]!r}" if len(tokens) > 1 else ""
            raise ConditionError(f"expected an operator after {path!r} "
                                 f"({' '.join(OPERATORS)}){got}")
        op = tokens[1][1]
        if len(tokens) < 3 or tokens[2][0] == "op":
            raise ConditionError(f"expected a value after {op!r} ({_VALUE})")
        value = _literal(*tokens[2])
        if len(tokens) > 3:
            raise ConditionError(f"unexpected {tokens[3][1]!r} after the value")
        if op in ORDERING and not _is_number(value):
            raise ConditionError(f"{op!r} compares numbers, got {_show(value)}")
        return cls(tuple(path.split(".")), op, value)

    def __str__(self) -> str:
        return f"{'.'.join(self.path)} {self.op} {_show(self.value)}"

    def check(self, data: Any) -> str | None:
        """None when ``data`` (parsed JSON) meets the condition, else why not."""
        name = ".".join(self.path)
        actual = _lookup(data, self.path)
        if actual is _MISSING:
            return f"{self} is false ({name} is missing)"
        if _holds(actual, self.op, self.value):
            return None
        return f"{self} is false ({name} = {_show(actual)})"


@dataclass(frozen=True)
class ReadyWhen:
    """A status class (``2xx`` or ``any``) and, optionally, a condition on the JSON body."""

    status: str = "2xx"
    json: JsonCondition | None = None

    @classmethod
    def from_yaml(cls, value: Any) -> tuple[ReadyWhen | None, str | None]:
        """``(parsed, None)`` or ``(None, problem)``; a problem starting with ``.`` names a
        sub-field (``.json: expected an operator after 'tokens.active'``)."""
        if isinstance(value, str):
            if value not in STATUSES:
                return None, f"must be one of {', '.join(STATUSES)}, got {value!r}"
            return cls(value), None
        if not isinstance(value, dict):
            return None, (f"must be {' or '.join(STATUSES)}, or a mapping "
                          f"{{status: 2xx, json: \"path > 0\"}}, got {type(value).__name__}")
        unknown = sorted(set(value) - {"status", "json"})
        if unknown:
            return None, f".{unknown[0]}: unknown field (known: json, status)"
        status = value.get("status", "2xx")
        if status not in STATUSES:
            return None, f".status: must be one of {', '.join(STATUSES)}, got {status!r}"
        text = value.get("json")
        if text is None:
            return cls(status), None
        if not isinstance(text, str):
            return None, f".json: must be a string like \"tokens.active > 0\", got {text!r}"
        try:
            return cls(status, JsonCondition.parse(text)), None
        except ConditionError as exc:
            return None, f".json: {exc}"

    def accepts(self, status: int) -> bool:
        """Whether an answer with this HTTP status may mean ready (the body aside)."""
        return self.status == "any" or 200 <= status < 300

    def shown(self) -> str | dict[str, str]:
        """As providers.yaml writes it: ``"2xx"``, or ``{"status", "json"}`` with a condition."""
        if self.json is None:
            return self.status
        return {"status": self.status, "json": str(self.json)}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            rest = text[pos:].strip()
            why = "an unterminated string" if rest[:1] in "\"'" else f"unexpected {rest!r}"
            raise ConditionError(f"{why} at character {pos + 1}")
        kind = "op" if m.group(1) else "str" if m.group(2) else "word"
        out.append((kind, m.group(m.lastindex or 0)))
        pos = m.end()
    return out


def _literal(kind: str, text: str) -> Literal:
    if kind == "str":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if text in _WORDS:
        return _WORDS[text]
    if _NUMBER.fullmatch(text):
        return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
    raise ConditionError(f"{text!r} is not a value ({_VALUE}; quote a string)")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _lookup(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return _MISSING
    return data


def _holds(actual: Any, op: str, value: Literal) -> bool:
    if op in ORDERING:
        return _is_number(actual) and bool(_ORDER[op](actual, value))
    same = _is_number(actual) == _is_number(value) and isinstance(actual, bool) == isinstance(
        value, bool) and actual == value  # 1 is not true, "1" is not 1
    return same if op == "==" else not same


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:59] + "…"
