"""``unigw test [NAME…]`` against a running ``unigw up -d`` instance: one line per provider,
serving or failing with the provider's error, exit 1 while one fails, 0 once all serve, 3 when
nothing runs. Real subprocesses and sockets throughout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_cli_instance import Instance, cleanup, unigw, until


@pytest.fixture
def one_failing(tmp_path: Path) -> Iterator[Instance]:
    """Providers a (echo) and b (answers chats like the Go Z.ai proxies: 502 text/plain)."""
    inst = Instance(tmp_path)
    inst.providers[1]["start"] += ["--failure", "text-502"]
    inst.write()
    try:
        out = unigw(inst.path, "up", "-d")
        assert out.returncode == 0, out.stderr
        until(lambda: all(r["state"] == "ready" for r in inst.rows().values()), 30, "ready")
        yield inst
        unigw(inst.path, "down")
    finally:
        cleanup(tmp_path)


def columns(stdout: str) -> dict[str, list[str]]:
    """NAME → [NAME, serving|failing, LATENCY, ERROR...] for each line printed."""
    return {line.split()[0]: line.split(maxsplit=3) for line in stdout.splitlines()}


def test_unigw_test_prints_each_provider_and_exits_1_while_one_fails(one_failing: Instance,
                                                                     ) -> None:
    out = unigw(one_failing.path, "test")
    assert out.returncode == 1, out.stderr
    got = columns(out.stdout)
    assert len(out.stdout.splitlines()) == 2 and set(got) == {"a", "b"}
    assert got["a"][1] == "serving" and got["a"][2].endswith("ms") and len(got["a"]) == 3
    assert got["b"][1] == "failing" and got["b"][3] == "HTTP 502: Failed to call upstream"
    assert one_failing.rows()["b"]["errors"] >= 1  # the canary counts like a real call

    out = unigw(one_failing.path, "test", "b", "--json")
    assert out.returncode == 1
    (answer,) = json.loads(out.stdout)["providers"]
    assert (answer["provider"], answer["ok"], answer["serving"], answer["status"]) == (
        "b", False, "failing", 502)

    b_url = f"http://127.0.0.1:{one_failing.providers[1]['port']}/_echo/config"
    httpx.post(b_url, json={"failure": None}).raise_for_status()
    out = unigw(one_failing.path, "test")
    assert out.returncode == 0, out.stdout + out.stderr
    assert {name: cols[1] for name, cols in columns(out.stdout).items()} == {
        "a": "serving", "b": "serving"}
    out = unigw(one_failing.path, "test", "a", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["ok"] is True


def test_unigw_test_of_a_provider_it_cannot_check_says_why(one_failing: Instance) -> None:
    unigw(one_failing.path, "stop", "a")
    out = unigw(one_failing.path, "test", "a", "ghost")
    assert out.returncode == 1
    got = columns(out.stdout)
    assert got["a"][1] == "failing" and "provider 'a' is not ready (stopped)" in got["a"][3]
    assert got["ghost"][1] == "failing" and "unknown provider 'ghost'" in got["ghost"][3]


def test_unigw_test_exits_3_when_nothing_runs(tmp_path: Path) -> None:
    inst = Instance(tmp_path)
    out = unigw(inst.path, "test")
    assert out.returncode == 3 and "not running" in out.stderr


def test_unigw_test_sends_the_gateway_key_when_the_gateway_wants_one(tmp_path: Path) -> None:
    inst = Instance(tmp_path)
    inst.gateway["api_keys"] = ["k-one", "k-two"]
    inst.write()
    try:
        assert unigw(inst.path, "up", "-d").returncode == 0
        until(lambda: all(r["state"] == "ready" for r in inst.rows().values()), 30, "ready")
        assert httpx.post(inst.url("/v1/test"), json={}).status_code == 401  # a key is needed
        out = unigw(inst.path, "test")
        assert out.returncode == 0, out.stdout + out.stderr
        assert {name: cols[1] for name, cols in columns(out.stdout).items()} == {
            "a": "serving", "b": "serving"}
        unigw(inst.path, "down")
    finally:
        cleanup(tmp_path)
