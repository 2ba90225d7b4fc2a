"""Typed parsing of plain YAML data into dataclass fields, collecting every problem.

Besides plain types, tuples and mappings, a field's type may parse itself: a class with a
``from_yaml(value) -> (parsed, problem)`` classmethod (:class:`~supervisor.config.ready.ReadyWhen`).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any


def fields_of(cls: type, raw: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """The fields of ``cls`` found in ``raw``, each checked against its annotation.

    Unknown and missing fields and wrong types are added to ``problems``; the fields that are
    fine are returned, so later checks can still look at them and report their problems too.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("derived")}
    unknown_fields(raw, set(fields), where, problems)
    out: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{where}: {name}: missing required field")
            continue
        value, err = _coerce(raw[name], hints[name])
        if err:  # a problem that starts with "." names a sub-field: "ready_when.json: ..."
            problems.append(f"{where}: {name}{err}" if err.startswith(".") else
                            f"{where}: {name}: {err}")
        else:
            out[name] = value
    return out


def _coerce(value: Any, tp: Any) -> tuple[Any, str | None]:
    from_yaml = getattr(tp, "from_yaml", None)
    if from_yaml is not None:  # a type that parses itself (ReadyWhen)
        parsed: tuple[Any, str | None] = from_yaml(value)
        return parsed
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None, None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0])
    scalar = _SCALARS.get(tp)
    if scalar is not None:
        accepts, convert, want = scalar
        if accepts(value):
            return convert(value), None
        return None, f"must be {want}, got {show(value)}"
    if origin is tuple:
        return _coerce_tuple(value, args)
    if origin is frozenset:
        return frozenset(value), None
    if origin is Mapping or origin is dict:
        return _coerce_mapping(value, args[1])
    raise TypeError(f"unsupported annotation {tp!r}")  # a programming error, not a config one


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(value: Any) -> Any:
    return value


#: The scalar field types: what a YAML value must be, how it is converted, and its name.
_SCALARS: dict[Any, tuple[Callable[[Any], bool], Callable[[Any], Any], str]] = {
    bool: (lambda v: isinstance(v, bool), _same, "true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), _same, "an integer"),
    float: (_is_number, float, "a number"),
    str: (lambda v: isinstance(v, str), _same, "a string"),
}


def _coerce_mapping(value: Any, elem: Any) -> tuple[Any, str | None]:
    if not isinstance(value, dict):
        return None, f"must be a mapping, got {show(value)}"
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            return None, f"keys must be strings, got {show(k)}"
        cv, err = _coerce(v, elem)
        if err:  # (quoted: a key such as ".local/..." must not read as a sub-field)
            return None, f"{k!r}: {err}"
        out[k] = cv
    return out, None


def _coerce_tuple(value: Any, args: tuple[Any, ...]) -> tuple[Any, str | None]:
    elem = args[0]
    want = "a list of lists of strings" if typing.get_origin(elem) is tuple else "a list of strings"
    if elem is str and isinstance(value, str):
        return None, (f"must be {want}, got a string {value!r} (write it as a list of its "
                      f"words: {_words(value)})")
    if not isinstance(value, list):
        return None, f"must be {want}, got {show(value)}"
    out = []
    for i, v in enumerate(value):
        cv, err = _coerce(v, elem)
        if err:
            return None, f"must be {want}; item {i}: {err}"
        out.append(cv)
    return tuple(out), None


def unknown_fields(raw: dict[str, Any], known: set[str], where: str, problems: list[str]) -> None:
    """Report every key of ``raw`` that is not a known field."""
    for key in raw:
        if key not in known:
            problems.append(f"{where}: {key}: unknown field (known: {', '.join(sorted(known))})")


_KINDS: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}


def kind(value: Any) -> str:
    """How a YAML value is named in messages: "a mapping", "a list", "int", ..."""
    return _KINDS.get(type(value), type(value).__name__)


def show(value: Any) -> str:
    return f"{kind(value)} {value!r}" if not isinstance(value, (dict, list)) else kind(value)


def _words(value: str) -> str:
    """``value`` as the YAML list of its words, the way a shell would split them."""
    try:
        words = shlex.split(value)
    except ValueError:  # an unclosed quote: no split to suggest
        words = [value]
    return json.dumps(words)
