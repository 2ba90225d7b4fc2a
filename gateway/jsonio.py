"""JSON at the gateway's edge: a client's body parsed with limits, answers encoded safely.

:func:`parse` is the one way a client's JSON is read. Python's ``json`` accepts three things
the gateway must not pass on, and each is refused here, once, naming the field:

* nesting deeper than :data:`MAX_DEPTH` (5,000 levels of ``[`` made ``json.loads`` raise
  ``RecursionError``, a 500; shallower but deep bodies would recurse in the translators);
* a lone UTF-16 surrogate (``"\\ud800"``, or its raw UTF-8 bytes, which ``json.loads`` decodes
  with ``surrogatepass``): it is no text at all, and re-encoding the body as UTF-8 fails;
* ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON, and numbers past a float's
  range (``1e999``), which Python reads as infinity and would write back as ``Infinity``.

The checks cost nothing on an ordinary body: the tree is walked only when the bytes could hold
a problem (more brackets than :data:`MAX_DEPTH`, or a ``\\ud8``-``\\udf`` escape or
surrogate bytes).

:func:`dumps` encodes an answer as compact UTF-8, and falls back to ASCII escapes when a value
holds a lone surrogate (a provider may send one), so encoding an answer never fails.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 100
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")  # escaped, or raw UTF-8 bytes


class InvalidJSON(ValueError):
    """A client's body that is not acceptable JSON; the message says why, ``param`` where."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def parse(raw: bytes) -> Any:
    """``raw`` as JSON, or :class:`InvalidJSON` (see the module docstring)."""
    try:  # json.loads(raw, parse_constant=...) as it does it, without a new decoder per call
        value = _DECODER.decode(raw.decode(_encoding(raw), "surrogatepass"))
    except RecursionError:
        raise InvalidJSON(f"the request body is nested too deeply (at most {MAX_DEPTH} "
                          "levels)") from None
    except InvalidJSON:
        raise
    except ValueError as exc:
        raise InvalidJSON(f"the request body is not valid JSON: {exc}") from None
    deep = raw.count(b"[") + raw.count(b"{") > MAX_DEPTH
    # the regular expression only where it could match: its search of a plain body cost more
    # than the body's whole parse
    if deep or ((b"\\u" in raw or b"\xed" in raw) and _SURROGATE.search(raw)):
        _check_tree(value)
    return value


def loads(raw: bytes | str) -> Any:
    """``json.loads(raw)``, the same answer, for less: a body that begins ``{`` and a byte
    other than NUL is UTF-8 (what ``json.detect_encoding`` would find, in Python, each call)."""
    if isinstance(raw, bytes):
        raw = raw.decode(_encoding(raw), "surrogatepass")
    try:
        return _PLAIN.decode(raw)
    except RecursionError:  # a provider's answer nested past the stack: not JSON we can use
        raise ValueError("nested too deeply to read") from None


def _encoding(raw: bytes) -> str:
    if raw[:1] == b"{" and raw[1:2] != b"\x00":  # no BOM begins with "{": UTF-8
        return "utf-8"
    return json.detect_encoding(raw)


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON; a lone surrogate is written as its ``\\u`` escape."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def _no_constant(name: str) -> None:
    raise InvalidJSON(f"the request body is not valid JSON: {name} is not a JSON value")


def _finite(text: str) -> float:
    number = float(text)
    if number in (_INF, -_INF):
        raise InvalidJSON(f"the request body holds a number out of range: {text[:40]}")
    return number


_INF = float("inf")
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
_PLAIN = json.JSONDecoder()  # what json.loads uses


def _check_tree(root: Any) -> None:
    """Raise :class:`InvalidJSON` at the first value nested too deeply or holding a lone
    surrogate; iterative, so depth costs no stack."""
    stack: list[tuple[Any, str, int]] = [(root, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value, path or "the request body")
        elif isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                raise InvalidJSON(f"{path or 'the request body'}: nested too deeply (at most "
                                  f"{MAX_DEPTH} levels)", path or None)
            if isinstance(value, dict):
                for key, item in value.items():
                    where = f"{path}.{key}" if path else key
                    _check_text(key, where)
                    stack.append((item, where, depth + 1))
            else:
                stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))


def _check_text(text: str, path: str) -> None:
    if text.isascii():
        return
    try:
        text.encode()
    except UnicodeEncodeError:
        shown = path.encode("ascii", "backslashreplace").decode()  # the path may hold it too
        raise InvalidJSON(f"{shown}: holds a lone UTF-16 surrogate, which is not text "
                          "(send valid UTF-8 or a \\u escape pair)", shown) from None
