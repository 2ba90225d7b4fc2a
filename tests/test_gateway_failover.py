"""Failover and passive health, against real echo providers that fail, stall and die."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from support.gateway import Cluster, chat


def kill(cluster: Cluster, name: str) -> None:
    os.killpg(cluster.echoes[name].proc.pid, signal.SIGKILL)
    cluster.echoes[name].proc.wait(5)


def test_a_provider_killed_between_calls_costs_no_failed_call(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ()), ("b", ()), ("c", ())]) as c:
        client = c.client()
        assert {chat(client)[0] for _ in range(6)} == {"a", "b", "c"}
        kill(c, "b")
        served = [chat(client, f"call {i}") for i in range(30)]
        assert all(reply == f"call {i}" for i, (_, reply) in enumerate(served))
        assert {p for p, _ in served} == {"a", "c"}


def test_a_provider_killed_during_a_burst_costs_no_failed_call(tmp_path: Path) -> None:
    with Cluster(tmp_path, [(n, ("--latency", "0.02")) for n in "abc"],
                 strategy="least_connections") as c:
        client = c.client()
        started = threading.Event()

        def one(i: int) -> str:
            if i == 60:
                started.set()
            return chat(client, f"burst {i}")[1]

        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(one, i) for i in range(240)]
            started.wait(10)
            kill(c, "a")
            replies = [f.result() for f in futures]  # any failed call raises here
        assert replies == [f"burst {i}" for i in range(240)]
        rows = {r["name"]: r for r in httpx.get(c.url + "/providers").json()["providers"]}
        assert all(r["in_flight"] == 0 for r in rows.values())


def test_a_retry_never_returns_to_a_provider_that_failed_the_request(tmp_path: Path) -> None:
    failing = ("--status", "500")
    with Cluster(tmp_path, [("a", failing), ("b", failing), ("c", failing)], retries=5,
                 eject_after=100) as c:
        client = c.client()
        for _ in range(4):
            with pytest.raises(openai.InternalServerError) as exc:
                chat(client)
            assert exc.value.status_code == 502
            for name in "abc":
                assert f"{name}: HTTP 500" in exc.value.message
        assert [c.chat_requests(n) for n in "abc"] == [4, 4, 4]


def test_failed_attempts_are_retried_on_a_healthy_provider(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ("--status", "503")), ("b", ()), ("c", ("--status", "500"))],
                 retries=2, eject_after=100) as c:
        client = c.client()
        assert [chat(client, f"r{i}") for i in range(9)] == [("b", f"r{i}") for i in range(9)]


def test_429_with_retry_after_cools_the_provider(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ("--status", "429", "--retry-after", "30")), ("b", ())],
                 eject_after=100) as c:
        client = c.client()
        assert [chat(client)[0] for _ in range(10)] == ["b"] * 10
        assert c.chat_requests("a") == 1  # tried once, then cooled for 30 s


def test_consecutive_failures_eject_a_provider_for_a_while(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ()), ("b", ())], eject_after=2, eject_base=60) as c:
        client = c.client()
        c.echo_config("a", status=500)
        for _ in range(6):
            assert chat(client)[0] == "b"
        assert c.chat_requests("a") == 2
        metrics = httpx.get(c.url + "/metrics").text
        assert 'unigw_provider_ejected{provider="a"} 1' in metrics


def test_when_every_candidate_is_ejected_they_are_tried_anyway(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ()), ("b", ())], eject_after=1, eject_base=60,
                 retries=1) as c:
        client = c.client()
        c.echo_config("a", status=500)
        c.echo_config("b", status=503)  # not the same failure: not excused as the request's
        with pytest.raises(openai.InternalServerError):
            chat(client)
        metrics = httpx.get(c.url + "/metrics").text
        assert all(f'unigw_provider_ejected{{provider="{n}"}} 1' in metrics for n in "ab")
        c.echo_config("a", status=None)
        c.echo_config("b", status=None)
        assert chat(client, "recovered")[1] == "recovered"  # panic mode: not a 503


def test_a_provider_silent_past_the_first_byte_timeout_is_504(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ("--latency", "3"))], first_byte_timeout=0.5) as c:
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as exc:
            chat(c.client())
        assert exc.value.status_code == 504
        assert "a: timed out before the first byte" in exc.value.message
        assert time.monotonic() - started >= 0.5


def test_no_ready_provider_is_503_with_retry_after(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ())]) as c:
        kill(c, "a")
        deadline = time.monotonic() + 10
        while httpx.get(c.url + "/health").status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        r = httpx.post(c.url + "/v1/chat/completions",
                       json={"model": "echo-1", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 503 and r.headers["retry-after"]
        assert r.json()["error"]["type"] == "service_unavailable"
        health = httpx.get(c.url + "/health")
        assert health.status_code == 503 and health.json()["ready"] == 0
