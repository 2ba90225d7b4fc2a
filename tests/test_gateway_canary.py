"""The canary: with no client traffic, one tiny real chat per quiet ready provider feeds its
``serving``; off by default, per provider, and the same check behind ``POST /v1/test``. Real
echo provider processes behind the real gateway app (its lifespan runs the canary)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.echo import EchoProc, spawn_echoes
from support.gateway import Cluster, write_config

from gateway.app import Gateway, create_app
from gateway.stats import Serving
from supervisor.config import load
from supervisor.lifecycle.external import ExternalView

spawn = pytest.fixture(spawn_echoes, name="spawn")


def run_gateway(tmp_path: Path, echoes: dict[str, EchoProc], body: Callable[[Gateway],
                Awaitable[None]], fields: dict[str, dict[str, Any]] | None = None,
                **gateway: Any) -> None:
    """The gateway app in this process (no HTTP server: nothing but the canary calls out)."""
    items = [{"name": n, "port": e.port, **(fields or {}).get(n, {})} for n, e in echoes.items()]
    config = load(write_config(tmp_path / "providers.yaml", items, **gateway), environ={})

    async def main() -> None:
        view = ExternalView(config)
        app = create_app(config, view)
        await view.open()
        await view.probe_all()
        try:
            async with app.state.gateway.lifespan(app):
                await asyncio.wait_for(body(app.state.gateway), 30)
        finally:
            await view.close()

    asyncio.run(main())


async def until(cond: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def chats(echo: EchoProc) -> int:
    stats = httpx.get(echo.url + "/_echo/stats", timeout=5).json()
    return int(stats["by_path"].get("/v1/chat/completions", 0))


def test_the_canary_finds_a_failing_provider_without_any_client_traffic(
        tmp_path: Path, spawn: Callable[..., EchoProc]) -> None:
    echoes = {"good": spawn(), "bad": spawn("--failure", "text-502")}

    async def body(gw: Gateway) -> None:
        def serving(name: str) -> Serving:
            return gw.stats.get(name).serving(time.monotonic())

        await until(lambda: serving("bad") is Serving.FAILING and serving("good") is Serving.OK,
                    "the canary's verdicts")
        bad = gw.stats.get("bad")
        assert bad.last_failure is not None
        assert "Failed to call upstream" in bad.last_failure.message
        assert gw.stats.get("good").errors == 0
        log = gw.calls.log
        assert log is not None
        log.flush()  # each canary is a row of the request log, as any call is
        rows = log.query(limit=100)
        assert {r["route"] for r in rows} == {"/v1/test"}
        assert {(r["provider"], r["status"]) for r in rows if r["ok"]} == {("good", 200)}
        failed = [r for r in rows if not r["ok"]]
        assert failed and all(r["status"] == 502 and r["tried"][0]["provider"] == "bad"
                              for r in failed)

    run_gateway(tmp_path, echoes, body, canary_interval=0.2)
    assert chats(echoes["good"]) >= 1 and chats(echoes["bad"]) >= 1


def test_the_canary_is_off_by_default_and_per_provider(
        tmp_path: Path, spawn: Callable[..., EchoProc]) -> None:
    echoes = {"quiet": spawn(), "checked": spawn(), "own": spawn("--models", "m1,m2")}
    fields = {"own": {"models": ["m1", "m2"], "canary_interval": 0.2, "canary_model": "m2"}}

    async def body(gw: Gateway) -> None:
        await until(lambda: gw.stats.get("own").requests >= 2, "two canaries of 'own'")
        result = await gw.canary.check("own")  # its canary_model
        assert (result.ok, result.model, result.reply) == (True, "m2", "ping")

    run_gateway(tmp_path, dict(echoes), body, fields)  # gateway.canary_interval: 0, off
    assert chats(echoes["quiet"]) == 0 and chats(echoes["checked"]) == 0
    assert chats(echoes["own"]) >= 2


def test_a_provider_with_traffic_gets_no_canary_until_it_is_quiet(
        tmp_path: Path, spawn: Callable[..., EchoProc]) -> None:
    echoes = {"busy": spawn()}

    async def body(gw: Gateway) -> None:
        stats = gw.stats.get("busy")
        await until(lambda: stats.requests >= 1, "the first canary")
        assert gw.canary.due(time.monotonic()) == []  # it was just tried
        assert gw.canary.due(time.monotonic() + 60) == ["busy"]

    run_gateway(tmp_path, echoes, body, canary_interval=30)


@pytest.fixture
def failing(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path, [("good", ()), ("bad", ("--failure", "text-502"))]) as c:
        yield c


def test_v1_test_reports_a_failing_provider_in_its_answer(failing: Cluster) -> None:
    with failing.http() as http:
        body = http.post("/v1/test", json={"provider": "bad"}).json()
        assert (body["provider"], body["ok"], body["serving"], body["status"]) == (
            "bad", False, "failing", 502)
        assert body["error"] == "Failed to call upstream" and body["reply"] is None
        assert failing.chat_requests("good") == 0  # pinned: no failover
        row = http.get("/providers/bad").json()
        assert (row["reqs"], row["errors"]) == (1, 1)  # recorded like a real call
        body = http.post("/v1/test", json={"provider": "good", "message": "hello there"}).json()
        assert (body["ok"], body["serving"], body["reply"]) == (True, "ok", "hello")
