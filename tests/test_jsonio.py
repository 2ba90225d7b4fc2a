"""``jsonio.loads`` is ``json.loads``, cheaper: the same value for every JSON text in every
encoding ``json.loads`` detects, and the same error where that one fails."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import jsonio

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be",
                             "utf-32", "utf-32-le", "utf-32-be"])


@given(VALUES, ENCODINGS, st.booleans())
def test_loads_gives_what_json_loads_gives(value: Any, encoding: str, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    raw = text.encode(encoding, "surrogatepass")
    assert jsonio.loads(raw) == json.loads(raw) == jsonio.loads(text)


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a": }', b"\x00{}", b'{"a": 1} x', b"\xff\xfe{",
                                 b'{"a": "\\ud800"}', b'{"a": NaN}'])
def test_loads_fails_or_not_where_json_loads_does(raw: bytes) -> None:
    try:
        expected: Any = json.loads(raw)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            jsonio.loads(raw)
        return
    got = jsonio.loads(raw)
    assert json.dumps(got) == json.dumps(expected)  # NaN is not equal to itself


def test_loads_of_an_answer_nested_past_the_stack_is_a_value_error_not_a_crash() -> None:
    deep = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ValueError, match="nested too deeply"):
        jsonio.loads(deep)


@pytest.mark.parametrize(("raw", "said"), [
    (b'{"temperature": 1e999}', "a number out of range: 1e999"),
    (b'{"t": -1E+400}', "a number out of range: -1E+400"),
    (b'{"a": NaN}', "the request body is not valid JSON: NaN is not a JSON value"),
])
def test_parse_refuses_what_would_be_written_back_as_no_json(raw: bytes, said: str) -> None:
    with pytest.raises(jsonio.InvalidJSON) as exc:
        jsonio.parse(raw)
    assert str(exc.value).endswith(said) and str(exc.value).count("not valid JSON") <= 1


def test_parse_keeps_ordinary_floats_exactly() -> None:
    assert jsonio.parse(b'{"t": 0.7, "p": 1e-3, "big": 1.5e308}') == {
        "t": 0.7, "p": 0.001, "big": 1.5e308}
