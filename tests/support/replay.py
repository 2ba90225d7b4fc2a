"""Providers that replay exact bytes, behind the real gateway app, all on one background loop.

    with Bench(tmp_path, {"bad": Replay(stream=[HEAD_SSE, b"data: ...\\n\\n"]), "good": good()},
               strategy="model_specific", routes={"m": ["bad", "good"]}) as b:
        b.client().chat.completions.create(model="m", ...)
        b.stats("bad").last_failure

Each :class:`Replay` is a raw asyncio TCP server on a free port: ``GET`` anything is a 200
health answer; a ``POST`` gets the steps of its ``stream`` or ``plain`` script, in order
(``bytes`` are written, a ``float`` is a pause), and then the connection is closed. The gateway
is ``gateway.app.create_app`` with a :class:`~supervisor.lifecycle.external.ExternalView`, served by uvicorn on
the same loop, so a test can use the official clients over real sockets and read the gateway's
own :class:`~gateway.stats.ProviderStats`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import uvicorn
from support.gateway import write_config

from gateway.app import Gateway, create_app, server_config
from gateway.stats import ProviderStats
from supervisor.config import load
from supervisor.lifecycle.external import ExternalView

T = TypeVar("T")
Step = bytes | float
MODEL = "m"
HEAD_SSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
HEALTH = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"data":[]}'


def head(status: int, content_type: str = "application/json", **headers: str) -> bytes:
    """A close-delimited response head."""
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", "Connection: close"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def event(data: dict[str, Any] | str) -> bytes:
    """One SSE data event."""
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return event({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def completion(text: str) -> bytes:
    return json.dumps({"id": "c1", "object": "chat.completion", "created": 0, "model": MODEL,
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text}}]}).encode()


ROLE = chunk({"role": "assistant"})


def good_stream(text: str = "hello there") -> list[Step]:
    words = text.split(" ")
    parts = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    return [HEAD_SSE, ROLE, *(chunk({"content": p}) for p in parts),
            chunk({}, "stop"), b"data: [DONE]\n\n"]


class Replay:
    """A provider that answers with scripted bytes; see the module docstring."""

    def __init__(self, stream: list[Step] | None = None, plain: list[Step] | None = None
                 ) -> None:
        self.stream = stream if stream is not None else good_stream()
        self.plain = plain if plain is not None else [
            head(200, **{"Content-Length": str(len(completion("hello there")))}),
            completion("hello there")]
        self.posts = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                request_head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in request_head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                if not request_head.startswith(b"POST"):
                    writer.write(HEALTH)
                    continue
                self.posts += 1
                stream = json.loads(body).get("stream") is True
                for step in self.stream if stream else self.plain:
                    if isinstance(step, float):
                        await writer.drain()
                        await asyncio.sleep(step)
                    else:
                        writer.write(step)
                await writer.drain()
                break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


class Bench:
    """Replay providers and the gateway app on a background loop; a context manager."""

    def __init__(self, tmp: Path, providers: dict[str, Replay],
                 fields: dict[str, dict[str, Any]] | None = None, **gateway: Any) -> None:
        self.providers = providers
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        for replay in providers.values():
            self.run(replay.start())
        items = [{"name": n, "port": r.port, "models": [MODEL], **(fields or {}).get(n, {})}
                 for n, r in providers.items()]
        gateway.setdefault("eject_after", 100)
        self.config = load(write_config(tmp / "providers.yaml", items, **gateway))
        self.view = ExternalView(self.config)
        app = create_app(self.config, self.view)
        self.gateway: Gateway = app.state.gateway
        self.server = uvicorn.Server(server_config(app, self.config))
        self.url = f"http://127.0.0.1:{self.config.gateway.port}"
        self.run(self._open())

    async def _open(self) -> None:
        await self.view.open()
        await self.view.probe_all()
        self._serving = asyncio.get_running_loop().create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the background loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(30)

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key="sk-test", max_retries=0,
                             timeout=20)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20)

    def stats(self, name: str) -> ProviderStats:
        return self.gateway.stats.get(name)

    async def _close(self) -> None:
        self.server.should_exit = True
        await self._serving
        await self.view.close()
        for replay in self.providers.values():
            await replay.stop()

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self._close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()
