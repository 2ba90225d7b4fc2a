"""Each load-balancing strategy, as a pure object, with fake candidates."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import pytest

from gateway.stats import Outcome, ProviderStats, Stats
from gateway.strategies import STRATEGIES, PickContext, make
from supervisor.config.checks import STRATEGY_NAMES


@dataclass(eq=False)
class Fake:
    name: str
    index: int
    weight: int = 1
    stats: ProviderStats = field(default=None)  # type: ignore[assignment]
    probe_ok: bool | None = None
    probe_ms: float | None = None

    def __post_init__(self) -> None:
        self.stats = ProviderStats(self.name)


def fakes(*names: str, **weights: int) -> list[Fake]:
    return [Fake(n, i, weights.get(n, 1)) for i, n in enumerate(names)]


def ctx(model: str = "m", now: float = 1000.0, routes: dict | None = None,
        seed: int = 1) -> PickContext:
    return PickContext(model, now, routes or {}, random.Random(seed))


def picks(strategy_name: str, cands: list[Fake], n: int, c: PickContext | None = None) -> list[str]:
    s = make(strategy_name)
    c = c or ctx()
    return [s.pick(cands, c).name for _ in range(n)]


def test_registry_names_the_seven_strategies() -> None:
    assert set(STRATEGIES) == {"round_robin", "least_connections", "response_time", "random",
                               "weighted_round_robin", "health_based", "model_specific"}
    for name, cls in STRATEGIES.items():
        assert cls.name == name


def test_registry_names_equal_the_names_the_config_accepts() -> None:
    assert tuple(STRATEGIES) == STRATEGY_NAMES


def test_round_robin_rotates_strictly_in_config_order() -> None:
    assert picks("round_robin", fakes("a", "b", "c"), 7) == ["a", "b", "c", "a", "b", "c", "a"]


def test_round_robin_continues_after_the_last_pick_when_candidates_change() -> None:
    rr = make("round_robin")
    a, b, c = fakes("a", "b", "c")
    assert rr.pick([a, b, c], ctx()).name == "a"
    assert rr.pick([a, c], ctx()).name == "c"  # b left: the next after a is c
    assert rr.pick([a, b, c], ctx()).name == "a"


def test_least_connections_picks_fewest_in_flight() -> None:
    a, b, c = fakes("a", "b", "c")
    a.stats.in_flight, b.stats.in_flight, c.stats.in_flight = 3, 1, 2
    assert set(picks("least_connections", [a, b, c], 20)) == {"b"}


def test_least_connections_breaks_ties_at_random_not_toward_the_first() -> None:
    got = Counter(picks("least_connections", fakes("a", "b", "c"), 3000))
    assert set(got) == {"a", "b", "c"}
    assert all(800 < n < 1200 for n in got.values()), got


def test_response_time_tries_unmeasured_providers_first() -> None:
    a, b = fakes("a", "b")
    a.stats.ewma_s, a.stats.last_sample = 0.001, 1000.0
    assert picks("response_time", [a, b], 1) == ["b"]


def test_response_time_prefers_the_lowest_smoothed_latency() -> None:
    a, b, c = fakes("a", "b", "c")
    for f, lat in ((a, 0.2), (b, 0.01), (c, 0.05)):
        f.stats.ewma_s, f.stats.last_sample = lat, 999.0
    assert set(picks("response_time", [a, b, c], 10)) == {"b"}


def test_response_time_counts_an_error_as_slow() -> None:
    stats = Stats()
    a, b = fakes("a", "b")
    a.stats, b.stats = stats.get("a"), stats.get("b")
    for f in (a, b):
        stats.start(f.stats)
        stats.observe(f.stats, Outcome.OK, 0.01)
    stats.start(a.stats)
    stats.observe(a.stats, Outcome.FAIL, 0.001)  # a fast failure is still slow
    assert make("response_time").pick([a, b], ctx(now=a.stats.last_sample)).name == "b"


def test_response_time_remeasures_a_provider_whose_sample_is_stale() -> None:
    a, b = fakes("a", "b")
    a.stats.ewma_s, a.stats.last_sample = 0.001, 1000.0
    b.stats.ewma_s, b.stats.last_sample = 0.5, 900.0  # 100 s old
    assert make("response_time").pick([a, b], ctx(now=1000.0)).name == "b"


def test_random_is_uniform() -> None:
    got = Counter(picks("random", fakes("a", "b", "c", "d"), 4000))
    assert all(850 < n < 1150 for n in got.values()), got


def test_weighted_round_robin_interleaves_5_1_1_like_nginx() -> None:
    seq = picks("weighted_round_robin", fakes("a", "b", "c", a=5), 7)
    assert seq == ["a", "a", "b", "a", "c", "a", "a"]


def test_weighted_round_robin_keeps_exact_ratios() -> None:
    got = Counter(picks("weighted_round_robin", fakes("a", "b", a=3), 400))
    assert got == {"a": 300, "b": 100}


def test_health_based_starves_a_provider_with_recent_failures() -> None:
    stats = Stats()
    good, bad = fakes("good", "bad")
    good.stats, bad.stats = stats.get("good"), stats.get("bad")
    for i in range(20):
        for f, ok in ((good, True), (bad, i % 4 == 0)):
            stats.start(f.stats)
            stats.observe(f.stats, Outcome.OK if ok else Outcome.FAIL, 0.01)
    now = good.stats.recent[-1][0]
    got = Counter(picks("health_based", [good, bad], 2000, ctx(now=now)))
    assert got["bad"] < 0.1 * got["good"], got


def test_health_based_halves_a_provider_whose_probe_failed() -> None:
    a, b = fakes("a", "b")
    b.probe_ok = False
    got = Counter(picks("health_based", [a, b], 3000))
    assert 0.35 < got["b"] / got["a"] < 0.7, got


def test_model_specific_follows_the_route_table_first_ready_wins() -> None:
    a, b, c = fakes("a", "b", "c")
    routes = {"GLM-4.5": ["c", "b"]}
    assert picks("model_specific", [a, b, c], 3, ctx("GLM-4.5", routes=routes)) == ["c"] * 3
    assert picks("model_specific", [a, b], 2, ctx("GLM-4.5", routes=routes)) == ["b", "b"]


def test_model_specific_falls_back_to_round_robin() -> None:
    routes = {"GLM-4.5": ["x"]}
    assert picks("model_specific", fakes("a", "b"), 4, ctx("GLM-4.5", routes=routes)) == [
        "a", "b", "a", "b"]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_returns_one_of_the_candidates(name: str) -> None:
    cands = fakes("a", "b", "c")
    for chosen in picks(name, cands[1:], 10):
        assert chosen in {"b", "c"}
