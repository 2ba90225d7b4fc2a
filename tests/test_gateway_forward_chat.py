"""``Gateway.forward_chat``, the entry point of translated routes, in process against real
echo providers: same failover and statistics as /v1/chat/completions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from support.echo import EchoProc, start_echo
from support.gateway import write_config

from gateway.app import Gateway, create_app
from gateway.errors import NotFound, ProviderFailed
from gateway.results import ChatResult, ChatStream
from supervisor.config import load
from supervisor.lifecycle.external import ExternalView

MESSAGES = [{"role": "user", "content": "one two three four"}]


@pytest.fixture(scope="module")
def echoes() -> Iterator[dict[str, EchoProc]]:
    procs = {"ok": start_echo(), "broken": start_echo("--status", "500"),
             "crashy": start_echo("--crash-mid-stream", "2", "--models", "crash-1")}
    yield procs
    for proc in procs.values():
        proc.stop()


@asynccontextmanager
async def running(tmp: Path, echoes: dict[str, EchoProc]) -> AsyncIterator[Gateway]:
    models = {"crashy": ["crash-1"]}
    providers = [{"name": n, "port": e.port, "models": models.get(n, ["echo-1"])}
                 for n, e in echoes.items()]
    config = load(write_config(tmp / "providers.yaml", providers, eject_after=100))
    view = ExternalView(config)
    app = create_app(config, view)
    await view.open()
    await view.probe_all()
    try:
        async with app.router.lifespan_context(app):
            yield app.state.gateway
    finally:
        await view.close()


def test_forward_chat_returns_the_answer_and_provider_after_failover(
        tmp_path: Path, echoes: dict[str, EchoProc]) -> None:
    async def scenario() -> None:
        async with running(tmp_path, echoes) as gw:
            for _ in range(4):  # round robin reaches "broken" too: it fails over to "ok"
                result = await gw.forward_chat({"model": "echo-1", "messages": MESSAGES})
                assert isinstance(result, ChatResult) and result.provider == "ok"
                assert result.body["choices"][0]["message"]["content"] == "one two three four"
            assert gw.stats.get("broken").errors >= 1
            with pytest.raises(NotFound):
                await gw.forward_chat({"model": "x", "messages": MESSAGES}, pin="nobody")
    asyncio.run(scenario())


def test_forward_chat_streams_parsed_chunks(tmp_path: Path,
                                            echoes: dict[str, EchoProc]) -> None:
    async def scenario() -> None:
        async with running(tmp_path, echoes) as gw:
            result = await gw.forward_chat({"model": "echo-1", "messages": MESSAGES},
                                           pin="ok", stream=True)
            assert isinstance(result, ChatStream) and result.provider == "ok"
            chunks = [c async for c in result.chunks]
            text = "".join(c["choices"][0]["delta"].get("content") or ""
                           for c in chunks if c["choices"])
            assert text == "one two three four"
            assert gw.stats.get("ok").in_flight == 0
    asyncio.run(scenario())


def test_a_stream_broken_mid_way_raises_with_a_status(tmp_path: Path,
                                                      echoes: dict[str, EchoProc]) -> None:
    async def scenario() -> None:
        async with running(tmp_path, echoes) as gw:
            result = await gw.forward_chat({"model": "crash-1", "messages": MESSAGES},
                                           stream=True)
            assert isinstance(result, ChatStream)
            got = []
            with pytest.raises(ProviderFailed) as exc:
                async for chunk in result.chunks:
                    got.append(chunk)
            assert exc.value.status_code == 502 and "crashy" in exc.value.message
            assert got and gw.stats.get("crashy").in_flight == 0
    asyncio.run(scenario())


def test_closing_an_unread_stream_releases_the_provider(tmp_path: Path,
                                                        echoes: dict[str, EchoProc]) -> None:
    async def scenario() -> None:
        async with running(tmp_path, echoes) as gw:
            result = await gw.forward_chat({"model": "echo-1", "messages": MESSAGES},
                                           pin="ok", stream=True)
            assert isinstance(result, ChatStream)
            assert gw.stats.get("ok").in_flight == 1
            await result.chunks.aclose()  # type: ignore[attr-defined]
            assert gw.stats.get("ok").in_flight == 0
    asyncio.run(scenario())
