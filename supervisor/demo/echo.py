"""The echo provider: a real OpenAI-compatible HTTP server that answers with what it was told.

Run as ``python -m supervisor.demo.echo --port 8001``. ``unigw demo`` runs it in place of the real
providers, the tests use it as a stand-in for one, and benchmarks measure the gateway against it,
so it is a raw ASGI app on uvicorn (uvloop + httptools) with no per-request logging.

Routes::

    POST /v1/chat/completions   POST /v1/completions   GET /v1/models
    GET  /health                GET  /                 GET /_echo/stats   POST /_echo/config

What it answers is described in :mod:`supervisor.demo.replies`. Every knob is a flag and an
environment variable ``UNIGW_ECHO_<NAME>`` (the flag wins);
``python -m supervisor.demo.echo --help`` lists them. ``latency``, ``chunk_delay``,
``error_rate``, ``status``, ``retry_after``, ``hang`` and the failure knobs below can also be
changed at run time with ``POST /_echo/config``. ``/_echo/*`` never needs the API key and never
hangs, so a test can always look inside and release a hang.

To fail like a real provider, ``--failure SHAPE`` (``--fail-first N`` of the chat calls,
``--failure-delay S``) and ``--health k2think2api3`` (``--health-fail-after K``): see
:mod:`supervisor.demo.failures`; ``{"failure": null}`` on ``/_echo/config`` stops failing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn

from supervisor.demo import failures
from supervisor.demo.knobs import EchoConfig, Knobs, Stats, parse_config, read_key_file
from supervisor.demo.replies import (
    EchoError,
    Headers,
    chat_completion,
    chat_stream,
    completion_stream,
    dumps,
    error_text_reply,
    include_usage,
    parse_body,
    plan_chat,
    plan_completion,
    text_completion,
)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

CRASH_EXIT_CODE = 3
JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


# -- the ASGI app ---------------------------------------------------------------------------------

async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _send_body(send: Send, status: int, body: bytes, headers: Headers = ()) -> None:
    head = [JSON_TYPE, (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, obj: Any, headers: Headers = ()) -> None:
    await _send_body(send, status, dumps(obj), headers)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _header(scope: Scope, name: bytes) -> bytes | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value
    return None


class EchoApp:
    """The raw ASGI application. Constructing it does no I/O."""

    def __init__(self, config: EchoConfig) -> None:
        self.config = config
        self.knobs = Knobs.from_config(config)
        self._failed = 0  # chat calls failed since --failure / --fail-first were set
        self._token_failures = 0  # failed chats the lying /health counts
        self.hang_after = config.hang_after
        self.stats = Stats()
        self.created = int(time.time())
        self._rng = random.Random(config.seed)
        self._serial = itertools.count(1)
        self._release = asyncio.Event()
        self._dying = False
        self._auth = f"Bearer {config.api_key}".encode() if config.api_key else None
        self._routes: dict[str, dict[str, Handler]] = {
            "/v1/chat/completions": {"POST": self._chat},
            "/v1/completions": {"POST": self._completions},
            "/v1/models": {"GET": self._models},
            "/health": {"GET": self._health},
            "/": {"GET": self._root},
            "/_echo/stats": {"GET": self._stats},
            "/_echo/config": {"POST": self._config},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # uvicorn installs its own SIGTERM handler when it starts serving: undo that.
                if self.config.ignore_sigterm:
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _hanging(self) -> bool:
        after = self.hang_after
        past = after is not None and self.stats.requests >= after
        return self._dying or self.knobs.hang or past

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        methods = self._routes.get(path)
        v1 = methods is not None and path.startswith("/v1/")
        hang = not path.startswith("/_echo/") and self._hanging()
        stats = self.stats
        stats.by_path[path if methods is not None else "(unknown)"] += 1
        if v1:
            stats.requests += 1
            stats.in_flight += 1
        try:
            while hang:
                await self._release.wait()
                hang = self._dying
            await self._dispatch(methods, v1, scope, receive, send)
        except EchoError as exc:
            await _send_json(send, exc.status, exc.body(), exc.headers)
        finally:
            if v1:
                stats.in_flight -= 1
                self._answered()

    async def _dispatch(self, methods: dict[str, Handler] | None, v1: bool,
                        scope: Scope, receive: Receive, send: Send) -> None:
        if methods is None:
            raise EchoError(404, f"no such route: {scope['path']}", "not_found")
        handler = methods.get(scope["method"])
        if handler is None:
            allow = ((b"allow", ", ".join(methods).encode()),)
            raise EchoError(405, f"method {scope['method']} not allowed", "method_not_allowed",
                            allow)
        if v1:
            await self._gate(scope)
        await handler(scope, receive, send)

    async def _gate(self, scope: Scope) -> None:
        """Auth, then the latency and failure knobs, before any /v1/* answer."""
        if self._auth is not None and _header(scope, b"authorization") != self._auth:
            raise EchoError(401, "invalid or missing API key", "invalid_api_key")
        knobs = self.knobs
        if knobs.latency:
            await asyncio.sleep(knobs.latency)
        if knobs.status is not None:
            extra = ((b"retry-after", knobs.retry_after.encode()),) if knobs.retry_after else ()
            raise EchoError(knobs.status, f"echo: forced status {knobs.status}",
                            "forced_status", extra)
        if knobs.error_rate and self._rng.random() < knobs.error_rate:
            raise EchoError(500, "echo: injected error", "injected_error")

    def _answered(self) -> None:
        self.stats.answered += 1
        limit = self.config.crash_after
        if limit is not None and self.stats.answered >= limit and not self._dying:
            # Let the answer leave the socket buffer first; new requests hang until then.
            self._dying = True
            asyncio.get_running_loop().call_later(0.05, os._exit, CRASH_EXIT_CODE)

    def _model(self, body: dict[str, Any]) -> str:
        model = body.get("model", self.config.models[0])
        if not isinstance(model, str):
            raise EchoError(400, "'model' must be a string")
        if self.config.strict_models and model not in self.config.models:
            raise EchoError(404, f"The model `{model}` does not exist", "model_not_found")
        return model

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = parse_body(await _read_body(receive))
        model, serial = self._model(body), next(self._serial)
        reply = plan_chat(body, serial)
        shape = self._failure_due()
        if shape == "error-as-content":
            reply = error_text_reply(reply, failures.K2THINK_REFRESH)
        rid, created = f"chatcmpl-echo-{serial}", int(time.time())
        stream = body.get("stream") is True
        if stream:
            answer: Iterator[tuple[bool, bytes]] | bytes = chat_stream(
                reply, rid, model, created, include_usage(body))
        else:
            answer = dumps(chat_completion(reply, rid, model, created))
        if shape is None:
            await self._answer(answer, receive, send)
            return
        normal = (answer,) if isinstance(answer, bytes) else tuple(e for _, e in answer)
        ask = failures.Ask(stream, model, serial, created, normal, self._token_active())
        self._token_failures += 1
        await failures.send(failures.build(shape, ask, self.knobs.failure_delay), send)

    async def _completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = parse_body(await _read_body(receive))
        model = self._model(body)
        reply = plan_completion(body)
        rid, created = f"cmpl-echo-{next(self._serial)}", int(time.time())
        if body.get("stream") is True:
            usage = include_usage(body)
            await self._answer(completion_stream(reply, rid, model, created, usage), receive, send)
        else:
            await self._answer(dumps(text_completion(reply, rid, model, created)), receive, send)

    async def _answer(self, answer: Iterator[tuple[bool, bytes]] | bytes, receive: Receive,
                      send: Send) -> None:
        """A JSON body, or a stream of SSE events."""
        if isinstance(answer, bytes):
            await _send_body(send, 200, answer)
        else:
            await self._stream(answer, receive, send)

    def _failure_due(self) -> str | None:
        """The failure shape this chat call gets, counting it; None when it answers normally."""
        knobs = self.knobs
        if knobs.failure is None:
            return None
        if knobs.fail_first is not None and self._failed >= knobs.fail_first:
            return None
        self._failed += 1
        self.stats.chats_failed += 1
        return knobs.failure

    def _token_active(self) -> bool:
        """k2think2api3's one token: good until ``health_fail_after`` failed chats."""
        return self._token_failures < self.knobs.health_fail_after

    async def _stream(self, events: Iterator[tuple[bool, bytes]], receive: Receive,
                      send: Send) -> None:
        """Send SSE events, counting whether the client stayed to the end."""
        self.stats.streams_started += 1
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        completed = False
        try:
            completed = await self._pump(events, watcher, send)
        finally:
            watcher.cancel()
            if completed:
                self.stats.streams_completed += 1
            else:
                self.stats.streams_cancelled += 1

    async def _pump(self, events: Iterator[tuple[bool, bytes]], watcher: asyncio.Future[None],
                    send: Send) -> bool:
        """Send every event; False as soon as the client has gone."""
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        crash_at, content_sent = self.config.crash_mid_stream, 0
        for index, (is_content, data) in enumerate(events):
            if index and self.knobs.chunk_delay:
                await asyncio.sleep(self.knobs.chunk_delay)
            if crash_at is not None and content_sent >= crash_at:
                await asyncio.sleep(0.02)  # let the chunks already sent reach the client
                os._exit(CRASH_EXIT_CODE)
            if watcher.done():
                return False
            await send({"type": "http.response.body", "body": data, "more_body": True})
            content_sent += is_content
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        data = [{"id": m, "object": "model", "created": self.created, "owned_by": "echo"}
                for m in self.config.models]
        await _send_json(send, 200, {"object": "list", "data": data})

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.knobs.health == "k2think2api3":
            body = failures.k2think_health(self._token_active(), self._token_failures)
            await _send_body(send, 200, body)
        else:
            await _send_json(send, 200, {"status": "ok"})

    async def _root(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, {
            "name": "unigw-echo",
            "description": "unigw echo provider: OpenAI-compatible, answers with the prompt",
            "models": list(self.config.models),
            "routes": sorted(self._routes),
        })

    async def _stats(self, scope: Scope, receive: Receive, send: Send) -> None:
        stats = dataclasses.asdict(self.stats)
        stats["by_path"] = dict(self.stats.by_path)
        await _send_json(send, 200, {**stats, "pid": os.getpid()})

    async def _config(self, scope: Scope, receive: Receive, send: Send) -> None:
        changes = parse_body(await _read_body(receive))
        self.knobs.update(changes)
        if changes.keys() & {"failure", "fail_first"}:
            self._failed = 0  # --fail-first counts from the change
        if changes.keys() & {"health", "health_fail_after"}:
            self._token_failures = 0  # a fresh token
        if not self.knobs.hang and self.hang_after is not None:
            self.hang_after = None  # hang=false also lifts --hang-after
        if not self.knobs.hang:
            self._release.set()
            self._release = asyncio.Event()
        await _send_json(send, 200, dataclasses.asdict(self.knobs))


# -- start-up ---------------------------------------------------------------------------------

def _spawn_child() -> None:
    """A grandchild in our process group that outlives nothing on its own: it sleeps."""
    code = "import time\nwhile True:\n    time.sleep(3600)\n"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
    print(f"echo: spawned child pid {child.pid}", file=sys.stderr, flush=True)


def _bind(config: EchoConfig) -> socket.socket:
    """Bind and listen here, so the port accepts connections once the banner is printed."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        print(f"echo: cannot bind {config.host}:{config.port}: {exc}", file=sys.stderr)
        sys.exit(1)
    sock.listen(2048)
    return sock


def main(argv: list[str] | None = None) -> None:
    """Parse the knobs, honour the start-up ones, then serve until SIGINT/SIGTERM."""
    config = read_key_file(parse_config(argv, os.environ))
    if config.exit_at_start is not None:
        print(f"echo: exiting at start with code {config.exit_at_start}", file=sys.stderr)
        sys.exit(config.exit_at_start)
    if config.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if config.spawn_child:
        _spawn_child()
    if config.startup_delay:
        time.sleep(config.startup_delay)
    sock = _bind(config)
    port = sock.getsockname()[1]
    models = ",".join(config.models)
    print(f"echo provider listening on http://{config.host}:{port} (models: {models})",
          file=sys.stderr, flush=True)
    server_config = uvicorn.Config(
        EchoApp(config), log_level="warning", access_log=False, lifespan="on",
        loop="uvloop", http="httptools", timeout_graceful_shutdown=2,
    )
    uvicorn.Server(server_config).run(sockets=[sock])


if __name__ == "__main__":
    main()
