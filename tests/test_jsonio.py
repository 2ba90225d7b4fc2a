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
