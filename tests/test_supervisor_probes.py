"""Probes as Kubernetes defines them: any answer means alive, readiness wants 2xx (or any),
readiness only moves ready ⇄ unhealthy (no restart), and the provider's key is sent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from support.supervisor import (
    echo,
    free_port,
    row,
    run,
    until,
    until_state,
    write_config,
)

from supervisor.lifecycle.manager import Supervisor
from supervisor.view import State


def test_failing_readiness_makes_it_unhealthy_and_back_without_a_restart(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, [echo("a", port, health="/v1/models")])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "a", "ready")
        pid = row(sup, "a").pid
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            (await client.post("/_echo/config", json={"status": 503})).raise_for_status()
            await until_state(sup, "a", "unhealthy")
            assert row(sup, "a").probe_ok is False
            assert not sup.providers()[0].ready
            await asyncio.sleep(1.5)  # many probe intervals: unhealthy is not dead
            assert row(sup, "a").state is State.UNHEALTHY
            (await client.post("/_echo/config", json={"status": None})).raise_for_status()
        await until_state(sup, "a", "ready")
        r = row(sup, "a")
        assert r.pid == pid and r.restarts == 0 and r.probe_ok is True

    run(config, body)


def test_any_http_answer_is_alive_and_ready_when_any_accepts_it(tmp_path: Path) -> None:
    strict = echo("strict", free_port(), "--status", "500", health="/v1/models")
    lenient = echo("lenient", free_port(), "--status", "500", health="/v1/models",
                   ready_when="any")
    config = write_config(tmp_path, [strict, lenient], liveness_failures=1)

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "lenient", "ready")
        await until_state(sup, "strict", "unhealthy")
        await asyncio.sleep(1.0)
        assert row(sup, "strict").state is State.UNHEALTHY
        assert row(sup, "strict").restarts == 0  # answered 500: alive, just not ready
        assert row(sup, "lenient").probe_ok is True

    run(config, body)


def test_probe_sends_the_providers_key(tmp_path: Path) -> None:
    keyed = echo("keyed", free_port(), "--api-key", "sk-right", health="/v1/models",
                 key="sk-right")
    wrong = echo("wrong", free_port(), "--api-key", "sk-right", health="/v1/models",
                 key="sk-wrong")
    config = write_config(tmp_path, [keyed, wrong])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "keyed", "ready")
        await until_state(sup, "wrong", "unhealthy")  # 401: alive, not ready
        assert row(sup, "wrong").restarts == 0

    run(config, body)


def test_failed_provider_is_tried_again_after_the_cooldown(tmp_path: Path) -> None:
    gate = echo("gate", free_port())
    gate["cwd"] = "later"  # a folder that does not exist yet: failed, not a crash loop
    config = write_config(tmp_path, [gate], failed_cooldown=1.5)

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "gate", "failed")
        assert "later does not exist" in row(sup, "gate").last_error
        (tmp_path / "later").mkdir()
        await until(lambda: row(sup, "gate").state is State.READY, 15, "a retry after cooldown")

    run(config, body)
