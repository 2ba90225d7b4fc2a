"""``ready_when``: the status forms, the json condition parsed once at load (every parse error a
config error naming file, provider and field), how a condition judges a body, and the canary's
settings beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor.config import ConfigError, JsonCondition, ReadyWhen, load

HEADER = "providers.yaml: providers[0] (k2): "


def write(tmp_path: Path, ready_when: str, gateway: str = "", extra: str = "") -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(f"{gateway}providers:\n  - name: k2\n    port: 9001\n    runtime: python\n"
                    f"    start: [x]\n    ready_when: {ready_when}\n{extra}")
    return path


def problems(tmp_path: Path, ready_when: str, **kw: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, ready_when, **kw), environ={})
    return info.value.problems


def test_the_string_forms_load_as_before(tmp_path: Path) -> None:
    for text in ("2xx", "any"):
        got = load(write(tmp_path, text), environ={}).providers[0].ready_when
        assert got == ReadyWhen(text) and got.json is None and got.shown() == text


def test_a_json_condition_is_parsed_once_into_path_operator_and_literal(tmp_path: Path) -> None:
    config = load(write(tmp_path, '{status: 2xx, json: "tokens.active > 0"}'), environ={})
    ready = config.providers[0].ready_when
    assert ready == ReadyWhen("2xx", JsonCondition(("tokens", "active"), ">", 0))
    shown = {"status": "2xx", "json": "tokens.active > 0"}
    assert ready.shown() == shown
    assert config.redacted()["providers"][0]["ready_when"] == shown
    json.dumps(config.redacted())  # GET /config can carry it


@pytest.mark.parametrize(("text", "value"), [
    ("a.b == 1.5", 1.5), ("a != -2", -2), ('a == "healthy"', "healthy"), ("a == 'x y'", "x y"),
    ("a == true", True), ("a == false", False), ("a != null", None), ("a.0.b >= 1e3", 1000.0),
])
def test_each_kind_of_literal_is_understood(text: str, value: object) -> None:
    assert JsonCondition.parse(text).value == value
    assert type(JsonCondition.parse(text).value) is type(value)


@pytest.mark.parametrize(("json_text", "expected"), [
    ('"tokens.active"', "ready_when.json: expected an operator after 'tokens.active'"),
    ('"tokens.active >"', "ready_when.json: expected a value after '>'"),
    ('"tokens.active > zero"', "ready_when.json: 'zero' is not a value"),
    ('"> 0"', "ready_when.json: expected a dotted path first (like tokens.active), got '>'"),
    ('"tokens..active > 0"', "ready_when.json: expected a dotted path first"),
    ('"tokens.active = 0"', "ready_when.json: expected an operator after 'tokens.active'"),
    ('"tokens.active > 0 1"', "ready_when.json: unexpected '1' after the value"),
    ("\"status == 'healthy\"", "ready_when.json: an unterminated string"),
    ("\"status > 'healthy'\"", "ready_when.json: '>' compares numbers, got \"healthy\""),
    ('""', "ready_when.json: expected a dotted path, an operator and a value"),
    ("5", 'ready_when.json: must be a string like "tokens.active > 0", got 5'),
])
def test_a_bad_condition_is_a_config_error_saying_what_is_wrong(
        tmp_path: Path, json_text: str, expected: str) -> None:
    found = problems(tmp_path, f"{{status: 2xx, json: {json_text}}}")
    assert any(p.startswith(HEADER + expected) for p in found), found


@pytest.mark.parametrize(("ready_when", "expected"), [
    ("sometimes", "ready_when: must be one of 2xx, any, got 'sometimes'"),
    ("{status: 3xx}", "ready_when.status: must be one of 2xx, any, got '3xx'"),
    ('{jsn: "a > 0"}', "ready_when.jsn: unknown field (known: json, status)"),
    ("[2xx]", "ready_when: must be 2xx or any, or a mapping"),
])
def test_a_bad_status_form_names_the_field(tmp_path: Path, ready_when: str, expected: str,
                                           ) -> None:
    found = problems(tmp_path, ready_when)
    assert any(p.startswith(HEADER + expected) for p in found), found


@pytest.mark.parametrize(("text", "body", "why"), [
    ("tokens.active > 0", {"tokens": {"active": 1}}, None),
    ("tokens.active > 0", {"tokens": {"active": 0}},
     "tokens.active > 0 is false (tokens.active = 0)"),
    ("tokens.active > 0", {"status": "healthy"},
     "tokens.active > 0 is false (tokens.active is missing)"),
    ("tokens.active > 0", {"tokens": {"active": "1"}},
     'tokens.active > 0 is false (tokens.active = "1")'),
    ("status == 'healthy'", {"status": "healthy"}, None),
    ("ok == true", {"ok": 1}, "ok == true is false (ok = 1)"),
    ("items.1.up == true", {"items": [{"up": False}, {"up": True}]}, None),
    ("error == null", {"error": None}, None),
    ("error != null", {}, "error != null is false (error is missing)"),
])
def test_a_condition_judges_a_json_body(text: str, body: object, why: str | None) -> None:
    assert JsonCondition.parse(text).check(body) == why


@pytest.mark.parametrize(("gateway", "extra", "expected"), [
    ("gateway:\n  canary_interval: -1\n", "",
     "providers.yaml: gateway: canary_interval: must be 0 (off) or more seconds, got -1"),
    ("gateway:\n  canary_prompt: ''\n", "",
     "providers.yaml: gateway: canary_prompt: must not be empty"),
    ("", "    canary_interval: -5\n",
     HEADER + "canary_interval: must be 0 (off) or more seconds, got -5"),
    ("", "    canary_model: 3\n", HEADER + "canary_model: must be a string, got int 3"),
])
def test_canary_settings_are_checked(tmp_path: Path, gateway: str, extra: str, expected: str,
                                     ) -> None:
    found = problems(tmp_path, "2xx", gateway=gateway, extra=extra)
    assert any(p.startswith(expected) for p in found), found


def test_canary_settings_load_with_off_by_default(tmp_path: Path) -> None:
    config = load(write(tmp_path, "2xx"), environ={})
    assert (config.gateway.canary_interval, config.gateway.canary_prompt) == (0.0, "ping")
    assert config.providers[0].canary_interval is None
    config = load(write(tmp_path, "2xx", gateway="gateway:\n  canary_interval: 30\n",
                        extra="    canary_interval: 5\n    canary_model: m-small\n"), environ={})
    p = config.providers[0]
    assert (config.gateway.canary_interval, p.canary_interval, p.canary_model) == (
        30.0, 5.0, "m-small")


def test_the_shipped_k2think2api3_is_ready_only_with_an_active_token() -> None:
    config = load(Path(__file__).resolve().parent.parent / "providers.yaml", environ={})
    ready = config.provider("k2think2api3").ready_when  # type: ignore[union-attr]
    assert ready.shown() == {"status": "2xx", "json": "tokens.active > 0"}
