"""The request log wired in: real calls through a real ``unigw gateway`` (the openai and
anthropic clients, streaming and not) against real echo providers, one failing with a real
provider's 502 first; the rows read back through ``GET /requests`` and from the SQLite file,
across a restart of the gateway, trimmed, and without a prompt unless ``log_bodies``."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
from support.gateway import Cluster, GatewayProc

ROUTES = {"echo-1": ["bad", "good"]}  # model_specific: bad first, then good
PROMPT = "zebra quokka 4711 marmalade"
FAILING = [("bad", ("--failure", "text-502")), ("good", ())]


def failing_first(tmp_path: Path, **gateway: Any) -> Cluster:
    return Cluster(tmp_path, FAILING, strategy="model_specific", routes=ROUTES, eject_after=1000,
                   **gateway)


def rows(url: str, **params: Any) -> list[dict[str, Any]]:
    r = httpx.get(url + "/requests", params=params, timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json()["requests"])


def wait_rows(url: str, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The log's rows once it has ``n`` (the writer flushes every half second)."""
    deadline = time.monotonic() + timeout
    while True:
        found = rows(url, n=1000)
        if len(found) >= n or time.monotonic() > deadline:
            assert len(found) == n, found
            return found
        time.sleep(0.1)


def calls(c: Cluster, text: str = PROMPT) -> None:
    """Five calls: two plain and two streamed OpenAI chats, one Anthropic message."""
    client = c.client()
    for _ in range(2):
        client.chat.completions.create(model="echo-1",
                                       messages=[{"role": "user", "content": text}])
    for _ in range(2):
        stream = client.chat.completions.create(
            model="echo-1", messages=[{"role": "user", "content": text}], stream=True,
            stream_options={"include_usage": True})
        assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    claude = anthropic.Anthropic(base_url=c.url, api_key="x", max_retries=0, timeout=20)
    claude.messages.create(model="echo-1", max_tokens=50,
                           messages=[{"role": "user", "content": text}])


def test_every_call_is_one_row_naming_each_provider_tried_and_how_it_failed(
        tmp_path: Path) -> None:
    with failing_first(tmp_path) as c:
        calls(c)
        found = wait_rows(c.url, 5)
        assert [r["api"] for r in found] == ["anthropic", "openai", "openai", "openai", "openai"]
        assert [r["stream"] for r in found] == [False, True, True, False, False]
        for row in found:
            assert (row["provider"], row["status"], row["ok"]) == ("good", 200, True)
            assert row["model_asked"] == row["model_sent"] == "echo-1"
            bad, good = row["tried"]
            assert (bad["provider"], bad["failure"]) == ("bad", "upstream_error")
            assert "Failed to call upstream" in bad["message"]
            assert (good["provider"], good["failure"], good["model"]) == ("good", None, "echo-1")
            assert row["prompt_tokens"] == 4 and row["completion_tokens"] == 4
            assert 0 < row["ttfb_ms"] <= row["total_ms"]
            assert 0 <= row["overhead_ms"] <= row["total_ms"]
            assert "request_body" not in row
        assert {r["route"] for r in found} == {"/v1/chat/completions", "/v1/messages"}


def test_the_log_filters_by_provider_and_outcome_and_keeps_failures(tmp_path: Path) -> None:
    with failing_first(tmp_path) as c:
        calls(c)
        pinned = httpx.post(c.url + "/v1/chat/completions?provider=bad", json={
            "model": "echo-1", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
        assert pinned.status_code == 502
        unknown = httpx.post(c.url + "/v1/chat/completions", json={"model": "echo-1"})
        assert unknown.status_code == 400
        wait_rows(c.url, 7)
        failed = rows(c.url, failed="true")
        assert [(r["status"], r["provider"]) for r in failed] == [(400, None), (502, None)]
        assert failed[1]["tried"][0]["failure"] == "upstream_error"
        assert failed[0]["tried"] == [] and failed[0]["overhead_ms"] is None
        assert len(rows(c.url, failed="false")) == 5
        assert len(rows(c.url, provider="bad")) == 6  # tried, though it never answered
        assert len(rows(c.url, provider="good")) == 5
        assert len(rows(c.url, n=2)) == 2
        assert rows(c.url, since=time.time() + 60) == []
        assert httpx.get(c.url + "/requests", params={"n": "x"}).status_code == 400
        for since in ("nan", "inf", "-inf", "soon"):  # float() takes the first three
            refused = httpx.get(c.url + "/requests", params={"since": since})
            assert refused.status_code == 400 and refused.json()["error"]["param"] == "since"


def test_the_rows_survive_a_restart_of_the_gateway(tmp_path: Path) -> None:
    with failing_first(tmp_path) as c:
        calls(c)
        before = wait_rows(c.url, 5)
        assert c.gateway is not None
        c.gateway.stop()  # SIGTERM: the log writes what it still holds
        c.gateway = GatewayProc(c.config)
        c.gateway.wait_up()
        c.wait_ready(2)
        assert rows(c.url, n=1000) == before
        c.client().chat.completions.create(model="echo-1",
                                           messages=[{"role": "user", "content": "again"}])
        after = wait_rows(c.url, 6)
        assert after[1:] == before and after[0]["id"] > before[0]["id"]


def test_the_log_keeps_only_the_newest_rows(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ())], request_log_rows=3) as c:
        client = c.client()
        for i in range(7):
            client.chat.completions.create(model="echo-1",
                                           messages=[{"role": "user", "content": f"call {i}"}])
        assert c.gateway is not None
        c.gateway.stop()  # every row written, then trimmed
        with sqlite3.connect(tmp_path / ".unigw" / "requests.db") as db:
            assert db.execute("SELECT count(*) FROM requests").fetchone()[0] == 3


def database_bytes(tmp_path: Path) -> bytes:
    folder = tmp_path / ".unigw"
    return b"".join(p.read_bytes() for p in sorted(folder.glob("requests.db*")))


def test_no_prompt_or_answer_is_stored_unless_log_bodies(tmp_path: Path) -> None:
    for log_bodies in (False, True):
        folder = tmp_path / str(log_bodies)
        folder.mkdir()
        with failing_first(folder, log_bodies=log_bodies) as c:
            calls(c)
            found = wait_rows(c.url, 5)
            assert (b"quokka" in database_bytes(folder)) is log_bodies  # the db and its WAL
            assert all(("request_body" in r) is log_bodies for r in found)
        if log_bodies:
            assert all(PROMPT in r["request_body"] and "quokka" in r["response_body"]
                       for r in found)


def test_with_the_log_off_nothing_is_written_and_get_requests_says_so(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ())], request_log=False) as c:
        c.client().chat.completions.create(model="echo-1",
                                           messages=[{"role": "user", "content": "hi"}])
        answer = httpx.get(c.url + "/requests").json()
        assert answer == {"requests": [], "enabled": False}
        assert not list((tmp_path / ".unigw").glob("requests.db*"))
