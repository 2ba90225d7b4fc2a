"""Probes as Kubernetes defines them: any answer means alive, readiness wants 2xx (or any) and,
with a json condition, a body that meets it; readiness only moves ready ⇄ unhealthy (no
restart), with the probe's reason in last_error, and the provider's key is sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.supervisor import (
    echo,
    free_port,
    row,
    run,
    until,
    until_state,
    write_config,
)

from supervisor.config import JsonCondition, ProviderConfig, ReadyWhen
from supervisor.lifecycle.manager import Supervisor
from supervisor.lifecycle.probe import Prober, ProbeResult
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


def test_a_lying_health_with_a_json_condition_takes_the_provider_out_of_ready(
        tmp_path: Path) -> None:
    """k2think2api3's /health stays 200 "healthy" once its only token went bad; the json
    condition on tokens.active sees it: unhealthy (not restarted), the reason in last_error."""
    port = free_port()
    k2 = echo("k2", port, "--health", "k2think2api3", "--health-fail-after", "1",
              "--failure", "k2think-500", "--failure-delay", "0",
              ready_when={"status": "2xx", "json": "tokens.active > 0"})
    config = write_config(tmp_path, [k2])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "k2", "ready")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            chat = {"model": "echo-1", "messages": [{"role": "user", "content": "hi"}]}
            assert (await client.post("/v1/chat/completions", json=chat)).status_code == 500
            health = await client.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "healthy"
            assert health.json()["tokens"]["active"] == 0
        await until_state(sup, "k2", "unhealthy")
        r = row(sup, "k2")
        assert r.last_error == "health probe: tokens.active > 0 is false (tokens.active = 0)"
        assert r.probe_ok is False and r.restarts == 0 and not sup.providers()[0].ready

    run(config, body)


def test_a_json_condition_on_an_answer_without_the_path_is_not_ready(tmp_path: Path) -> None:
    nopath = echo("nopath", free_port(), health="/v1/models",
                  ready_when={"status": "2xx", "json": "tokens.active > 0"})
    config = write_config(tmp_path, [nopath])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "nopath", "unhealthy")
        assert row(sup, "nopath").last_error == (
            "health probe: tokens.active > 0 is false (tokens.active is missing)")
        assert row(sup, "nopath").restarts == 0

    run(config, body)


async def _serve_once(body: bytes, content_type: bytes = b"text/plain") -> tuple[int, Any]:
    """A one-route HTTP server on a free port answering 200 with ``body``; (port, server)."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %b\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%b" % (content_type, len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server.sockets[0].getsockname()[1], server


@pytest.mark.parametrize(("body", "why"), [
    (b"OK", "HTTP 200, an answer that is not JSON, so tokens.active > 0 cannot be checked"),
    (b'{"tokens": {"active": 0}}', "tokens.active > 0 is false (tokens.active = 0)"),
    (b'{"tokens": {"active": 2}, "pad": "' + b"x" * 70_000 + b'"}',
     "HTTP 200, an answer over 64 KiB, so tokens.active > 0 cannot be checked"),
    (b'{"tokens": {"active": 2}}', None),
])
def test_the_prober_reads_the_body_only_to_judge_a_json_condition(body: bytes, why: str | None,
                                                                  ) -> None:
    async def main() -> ProbeResult:
        port, server = await _serve_once(body)
        prober = Prober(2.0)
        provider = ProviderConfig("p", port, "python", ("x",), health="/health",
                                  ready_when=ReadyWhen("2xx", JsonCondition.parse(
                                      "tokens.active > 0")))
        try:
            return await prober.probe(provider)
        finally:
            await prober.close()
            server.close()

    result = asyncio.run(main())
    assert result.alive and result.status == 200
    assert (result.ready, result.error) == (why is None, why)
    assert result.describe() == (why or "HTTP 200")
