"""Each strategy's behaviour end to end: real gateway, real echo providers, the openai client."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from support.gateway import CLIENT, Cluster, chat


def test_round_robin_rotates_exactly(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ()), ("b", ()), ("c", ())], strategy="round_robin") as c:
        client = c.client()
        assert [chat(client)[0] for _ in range(9)] == list("abcabcabc")


def test_weighted_round_robin_3_to_1_is_exact_and_interleaved(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ()), ("b", ())], strategy="weighted_round_robin",
                 provider_fields={"a": {"weight": 3}}) as c:
        client = c.client()
        seq = "".join(chat(client)[0] for _ in range(400))
        assert abs(seq.count("a") - 300) <= 12  # within a few percent (it is exact here)
        assert "aaaa" not in seq and "bb" not in seq  # interleaved, never a burst


def test_least_connections_sends_less_to_a_slow_provider(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("fast", ()), ("slow", ("--latency", "0.3"))],
                 strategy="least_connections") as c:
        client = c.client()
        with ThreadPoolExecutor(6) as pool:
            got = Counter(pool.map(lambda i: chat(client)[0], range(120)))
        assert got["slow"] < got["fast"] / 3, got


def test_response_time_strongly_prefers_the_fast_provider(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("slow", ("--latency", "0.05")), ("fast", ())],
                 strategy="response_time") as c:
        client = c.client()
        got = Counter(chat(client)[0] for _ in range(60))
        assert got["fast"] >= 55, got


def test_health_based_starves_a_provider_with_a_high_error_rate(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("good", ()), ("flaky", ("--error-rate", "0.8"))],
                 strategy="health_based", eject_after=1000) as c:
        client = c.client()
        for i in range(200):
            assert chat(client, f"n{i}")[1] == f"n{i}"  # flaky's failures are retried
        good, flaky = c.chat_requests("good"), c.chat_requests("flaky")
        assert flaky < good / 10, (good, flaky)


def test_model_specific_follows_the_table_and_falls_back(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ()), ("b", ()), ("c", ())], strategy="model_specific",
                 routes={"echo-2": ["c", "b"]}) as c:
        client = c.client()
        assert [chat(client, model="echo-2")[0] for _ in range(4)] == ["c"] * 4
        r = httpx.post(c.url + "/providers/c/stop", headers=CLIENT)
        assert r.status_code == 200 and r.json()["state"] == "stopped"
        assert [chat(client, model="echo-2")[0] for _ in range(3)] == ["b"] * 3
        assert [chat(client, model="echo-1")[0] for _ in range(4)] == ["a", "b", "a", "b"]


def test_the_strategy_can_be_switched_at_run_time(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ()), ("b", ())], strategy="random") as c:
        c.set_strategy("round_robin")
        client = c.client()
        assert [chat(client)[0] for _ in range(4)] == ["a", "b", "a", "b"]
        assert httpx.get(c.url + "/providers").json()["strategy"] == "round_robin"
