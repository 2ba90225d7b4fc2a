"""Model resolution, aliases, pinning, outlier ejection and check_bind, without processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.app import check_bind
from gateway.ejection import OutlierPolicy
from gateway.errors import (
    BadStatus,
    ConnectFailed,
    FirstByteTimeout,
    NoProviderReady,
    NotFound,
    ProviderFailed,
    ProviderTimeout,
    all_failed,
)
from gateway.routing import Router, RoutingSettings
from gateway.stats import Outcome, Stats
from gateway.strategies import PickContext, make
from supervisor.config import loads
from supervisor.view import ProviderInfo, State


@dataclass
class FakeView:
    infos: list[ProviderInfo] = field(default_factory=list)
    version: int = 0

    def providers(self) -> list[ProviderInfo]:
        return self.infos

    def set(self, name: str, state: State) -> None:
        self.infos = [ProviderInfo(i.name, state, i.base_url, i.key, i.models) if i.name == name
                      else i for i in self.infos]
        self.version += 1


def info(name: str, port: int, *models: str, state: State = State.READY) -> ProviderInfo:
    return ProviderInfo(name, state, f"http://127.0.0.1:{port}", "k", models)


def router(view: FakeView, **settings: Any) -> Router:
    return Router(view, Stats(), RoutingSettings(**settings))  # type: ignore[arg-type]


@pytest.fixture
def view() -> FakeView:
    return FakeView([info("z1", 1, "GLM-4.5", "GLM-4.5-Air"), info("z2", 2, "GLM-4.5"),
                     info("q", 3, "qwen-max")])


def names(plan: Any) -> list[str]:
    return [b.name for b in plan.candidates]


def test_a_served_model_goes_to_the_ready_providers_that_serve_it(view: FakeView) -> None:
    plan = router(view).plan("GLM-4.5")
    assert names(plan) == ["z1", "z2"]
    assert plan.upstream_model(plan.candidates[0]) == "GLM-4.5"


def test_an_alias_is_rewritten_to_its_target(view: FakeView) -> None:
    plan = router(view, aliases={"gpt-4": "qwen-max"}).plan("gpt-4")
    assert names(plan) == ["q"] and plan.upstream_model(plan.candidates[0]) == "qwen-max"


def test_an_unknown_model_goes_anywhere_with_each_providers_default_model(view: FakeView) -> None:
    plan = router(view).plan("gpt-3.5-turbo")
    assert names(plan) == ["z1", "z2", "q"]
    assert [plan.upstream_model(b) for b in plan.candidates] == ["GLM-4.5", "GLM-4.5", "qwen-max"]


def test_reject_policy_gives_404_listing_the_models(view: FakeView) -> None:
    with pytest.raises(NotFound) as exc:
        router(view, reject_unknown=True).plan("gpt-4")
    assert "GLM-4.5-Air" in exc.value.message and "qwen-max" in exc.value.message


def test_no_ready_provider_for_a_served_model_is_503(view: FakeView) -> None:
    view.set("q", State.UNHEALTHY)
    with pytest.raises(NoProviderReady) as exc:
        router(view).plan("qwen-max")
    assert exc.value.headers["Retry-After"]


def test_the_table_is_rebuilt_only_when_the_view_version_changes(view: FakeView) -> None:
    r = router(view)
    table = r.table()
    assert r.table() is table
    view.set("z2", State.UNHEALTHY)
    assert names(r.plan("GLM-4.5")) == ["z1"]


def test_pinning_unknown_is_404_and_not_ready_is_503(view: FakeView) -> None:
    r = router(view)
    with pytest.raises(NotFound):
        r.pinned("nope", "GLM-4.5")
    view.set("q", State.BACKOFF)
    with pytest.raises(NoProviderReady):
        r.pinned("q", "qwen-max")
    plan = r.pinned("z2", "gpt-4")
    assert names(plan) == ["z2"] and plan.upstream_model(plan.candidates[0]) == "GLM-4.5"


def test_learned_models_are_routed_after_the_configured_ones(view: FakeView) -> None:
    r = router(view)
    r.learn_models("q", ["qwen-turbo"])
    assert names(r.plan("qwen-turbo")) == ["q"]


K2 = {"K2-Think": ["MBZUAI-IFM/K2-Think", "k2-think", "k2think"]}


@pytest.fixture
def k2_view() -> FakeView:
    return FakeView([info("k2a", 1, "k2-think", "k2think", "deepseek-r1"),
                     info("k2b", 2, "MBZUAI-IFM/K2-Think", "MBZUAI-IFM/K2-Think-nothink"),
                     info("q", 3, "qwen-max")])


def test_a_group_request_goes_to_each_member_server_asked_by_its_own_name(
        k2_view: FakeView) -> None:
    r = router(k2_view, groups=K2)
    for asked in ("K2-Think", "k2-think", "MBZUAI-IFM/K2-Think"):
        plan = r.plan(asked)
        assert names(plan) == ["k2a", "k2b"] and plan.model == "K2-Think"
        sent = {b.name: plan.upstream_model(b) for b in plan.candidates}
        assert sent["k2b"] == "MBZUAI-IFM/K2-Think"
        assert sent["k2a"] == "k2-think"  # the first member it serves, in the group's order
    plan = r.plan("k2think")  # a member a provider serves is sent as asked, to that provider
    assert {b.name: plan.upstream_model(b) for b in plan.candidates} == {
        "k2a": "k2think", "k2b": "MBZUAI-IFM/K2-Think"}


def test_an_alias_of_a_group_member_routes_to_the_whole_group(k2_view: FakeView) -> None:
    plan = router(k2_view, groups=K2, aliases={"k2": "k2think"}).plan("k2")
    assert names(plan) == ["k2a", "k2b"]
    assert [plan.upstream_model(b) for b in plan.candidates] == ["k2think", "MBZUAI-IFM/K2-Think"]


def test_a_group_without_ready_members_is_503_naming_every_member_server(
        k2_view: FakeView) -> None:
    k2_view.set("k2a", State.UNHEALTHY)
    k2_view.set("k2b", State.BACKOFF)
    with pytest.raises(NoProviderReady) as exc:
        router(k2_view, groups=K2).plan("K2-Think")
    assert "served by: k2a, k2b" in exc.value.message


def test_a_group_no_provider_lists_is_an_unknown_model(k2_view: FakeView) -> None:
    groups = {"GLM": ["GLM-4.5", "glm-4.5"], **K2}
    with pytest.raises(NotFound) as exc:
        router(k2_view, groups=groups, reject_unknown=True).plan("GLM")
    assert "available models: K2-Think, k2-think" in exc.value.message  # groups, then models
    plan = router(k2_view, groups=groups).plan("glm-4.5")  # default: anyone, own default model
    assert names(plan) == ["k2a", "k2b", "q"] and plan.upstream_model(plan.candidates[2]) == (
        "qwen-max")


def test_pinning_a_group_asks_the_pinned_provider_for_the_member_it_serves(
        k2_view: FakeView) -> None:
    r = router(k2_view, groups=K2, reject_unknown=True)
    plan = r.pinned("k2b", "k2-think")
    assert names(plan) == ["k2b"] and plan.upstream_model(plan.candidates[0]) == (
        "MBZUAI-IFM/K2-Think")
    assert r.pinned("k2a", "K2-Think").upstream_model(r.table().by_name["k2a"]) == "k2-think"
    with pytest.raises(NotFound):
        r.pinned("q", "K2-Think")


def test_model_list_shows_a_group_once_with_its_members_and_providers(
        k2_view: FakeView) -> None:
    data = router(k2_view, groups=K2).model_list()
    assert [m["id"] for m in data] == ["K2-Think", "deepseek-r1", "MBZUAI-IFM/K2-Think-nothink",
                                       "qwen-max"]
    group = data[0]
    assert group["owned_by"] == "k2a" and group["providers"] == ["k2a", "k2b"]
    assert group["members"] == ["MBZUAI-IFM/K2-Think", "k2-think", "k2think"]
    assert "members" not in data[1] and data[1]["providers"] == ["k2a"]
    k2_view.set("k2b", State.UNHEALTHY)
    group = router(k2_view, groups=K2).model_list()[0]
    assert group["providers"] == ["k2a"] and group["members"] == ["k2-think", "k2think"]


def test_model_specific_routes_a_group_by_its_group_name(k2_view: FakeView) -> None:
    r = router(k2_view, groups=K2, routes={"K2-Think": ["k2b", "k2a"]})
    plan = r.plan("k2-think")
    ctx = PickContext(plan.model, 0.0, r.settings.routes)
    assert make("model_specific").pick(plan.candidates, ctx).name == "k2b"


def test_outlier_ejection_grows_while_failing_and_resets_on_success() -> None:
    policy = OutlierPolicy(after=2, base=5, cap=12)
    stats = Stats(policy)
    s = stats.get("a")
    for _ in range(2):
        stats.start(s)
        stats.observe(s, Outcome.FAIL, 0.01)
    first = s.ejected_until
    assert s.ejections == 1 and first > 0
    s.ejected_until = 0  # the cool-down has passed; it fails again at once
    stats.start(s)
    stats.observe(s, Outcome.FAIL, 0.01)
    assert s.ejections == 2 and s.ejected_until - first > 4
    stats.start(s)
    stats.observe(s, Outcome.OK, 0.01)
    assert s.ejections == 0 and s.consecutive_failures == 0


def test_retry_after_cools_the_provider_for_that_long() -> None:
    stats = Stats(OutlierPolicy(after=10))
    s = stats.get("a")
    stats.start(s)
    stats.observe(s, Outcome.FAIL, 0.01, retry_after=30)
    assert s.ejected_until > s.recent[-1][0] + 29


def test_in_flight_never_drifts() -> None:
    stats = Stats()
    s = stats.get("a")
    for outcome in (Outcome.OK, Outcome.FAIL, Outcome.CANCELLED):
        stats.start(s)
        stats.observe(s, outcome, 0.01)
    assert s.in_flight == 0 and s.requests == 3 and s.errors == 1


def test_when_all_fail_the_last_failure_picks_the_status_and_each_is_named() -> None:
    err = all_failed([("a", BadStatus(500, "")), ("b", ConnectFailed("refused"))])
    assert isinstance(err, ProviderFailed) and err.status_code == 502
    assert "a: HTTP 500 [upstream_error]" in err.message
    assert "b: connect error: refused [unreachable]" in err.message
    assert isinstance(all_failed([("a", FirstByteTimeout("slow"))]), ProviderTimeout)
    limited = all_failed([("a", BadStatus(429, "", retry_after=7))])
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"


def _config(tmp_path: Path, gateway: str, environ: dict[str, str] | None = None) -> Any:
    text = f"gateway: {{{gateway}}}\nproviders: []\n"
    return loads(text, tmp_path / "providers.yaml", environ=environ or {})


def test_check_bind_refuses_a_public_address_without_a_key(tmp_path: Path) -> None:
    problem = check_bind(_config(tmp_path, "host: 0.0.0.0"))
    assert problem and "0.0.0.0" in problem and "api_keys" in problem
    assert check_bind(_config(tmp_path, "host: 0.0.0.0, api_keys: [s3cret]")) is None
    assert check_bind(_config(tmp_path, "host: 127.0.0.1")) is None
    assert check_bind(_config(tmp_path, "host: '::1'")) is None
    # the loader takes UNIGW_API_KEY from the environment as one more gateway key
    assert check_bind(_config(tmp_path, "host: 0.0.0.0", {"UNIGW_API_KEY": "k"})) is None


def test_apply_config_reloads_routing_and_keeps_a_run_time_strategy_choice(
        tmp_path: Path, monkeypatch: Any) -> None:
    from gateway.app import Gateway

    monkeypatch.delenv("UNIGW_API_KEY", raising=False)
    gw = Gateway(_config(tmp_path, "strategy: random, aliases: {gpt-4: a}"), FakeView())
    gw.change(strategy="round_robin")
    gw.apply_config(_config(tmp_path, "strategy: random, retries: 5, aliases: {gpt-4: b}"))
    assert gw.strategy_name == "round_robin"  # the file's strategy did not change: kept
    assert gw.proxy.retries == 5 and gw.router.settings.aliases == {"gpt-4": "b"}
    gw.apply_config(_config(tmp_path, "strategy: health_based, api_keys: [k]"))
    assert gw.strategy_name == "health_based" and gw.api_keys == (b"k",)
    assert gw.runtime_config()["gateway"]["strategy"] == "health_based"
