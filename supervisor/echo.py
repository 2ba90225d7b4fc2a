"""The echo provider: a real OpenAI-compatible HTTP server that answers with what it was told.

Run as ``python -m supervisor.echo --port 8001``. ``unigw demo`` runs it in place of the real
providers, the tests use it as a stand-in for one, and benchmarks measure the gateway against it,
so it is a raw ASGI app on uvicorn (uvloop + httptools) with no per-request logging.

Routes::

    POST /v1/chat/completions   POST /v1/completions   GET /v1/models
    GET  /health                GET  /                 GET /_echo/stats   POST /_echo/config

What it answers is described in :mod:`supervisor.echo_replies`. Every knob is a flag and an
environment variable ``UNIGW_ECHO_<NAME>`` (the flag wins); ``python -m supervisor.echo --help``
lists them. ``latency``, ``chunk_delay``, ``error_rate``, ``status``, ``retry_after`` and
``hang`` can also be changed at run time with ``POST /_echo/config``. ``/_echo/*`` never needs
the API key and never hangs, so a test can always look inside and release a hang.
"""

from __future__ import annotations

import argparse
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
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import uvicorn

from supervisor.echo_replies import (
    EchoError,
    chat_completion,
    chat_stream,
    completion_stream,
    dumps,
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

ENV_PREFIX = "UNIGW_ECHO_"
CRASH_EXIT_CODE = 3
JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


# -- parsing one knob from a string (a flag, an env var, or str() of a JSON value) --------------

def _seconds(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError(f"{raw!r} is not a number of seconds >= 0")
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError(f"{raw!r} is not between 0 and 1")
    return value


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(f"{raw!r} is negative")
    return value


def _status(raw: str) -> int:
    value = int(raw)
    if not 200 <= value <= 599:
        raise ValueError(f"{raw!r} is not an HTTP status between 200 and 599")
    return value


def _retry_after(raw: str) -> str:
    return f"{_seconds(raw):g}"


def _models(raw: str) -> tuple[str, ...]:
    models = tuple(m.strip() for m in raw.split(",") if m.strip())
    if not models:
        raise ValueError("needs at least one model id")
    return models


def _flag(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{raw!r} is not a boolean")


def _opt(default: Any, parse: Callable[[str], Any], help: str) -> Any:
    """A config field: its default, how to parse it from text, and its --help line."""
    return dataclasses.field(default=default, metadata={"parse": parse, "help": help})


@dataclasses.dataclass(frozen=True)
class EchoConfig:
    """The echo provider's start-up settings; each field is a flag and an env var."""

    host: str = _opt("127.0.0.1", str, "interface to bind")
    port: int = _opt(8000, int, "TCP port (env also PORT)")
    models: tuple[str, ...] = _opt(("echo-1", "echo-2"), _models, "comma-separated model ids")
    api_key: str | None = _opt(None, str, "require 'Authorization: Bearer KEY' on /v1/*")
    latency: float = _opt(0.0, _seconds, "seconds before answering / before the first chunk")
    chunk_delay: float = _opt(0.0, _seconds, "seconds between stream chunks")
    error_rate: float = _opt(0.0, _fraction, "fraction of /v1/* requests answered 500")
    status: int | None = _opt(None, _status, "answer every /v1/* request with this status")
    retry_after: str | None = _opt(None, _retry_after, "Retry-After seconds with --status")
    crash_after: int | None = _opt(None, _count, "exit(3) after N /v1/* answers")
    crash_mid_stream: int | None = _opt(None, _count, "exit(3) after K content chunks")
    hang_after: int | None = _opt(None, _count, "after N /v1/* requests, never answer again")
    startup_delay: float = _opt(0.0, _seconds, "sleep S seconds before binding the port")
    exit_at_start: int | None = _opt(None, int, "exit with this code before binding")
    ignore_sigterm: bool = _opt(False, _flag, "ignore SIGTERM")
    strict_models: bool = _opt(False, _flag, "404 model_not_found for unknown models")
    spawn_child: bool = _opt(False, _flag, "spawn a grandchild that sleeps forever")
    seed: int = _opt(0, int, "seed of the error-rate random generator")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m supervisor.echo",
        description="unigw echo provider: an OpenAI-compatible server that echoes the prompt.",
        epilog=f"Every flag is also an environment variable {ENV_PREFIX}<NAME>; the flag wins.",
    )
    for f in dataclasses.fields(EchoConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (env {ENV_PREFIX}{f.name.upper()})"
        if f.metadata["parse"] is _flag:
            parser.add_argument(flag, action="store_const", const="1", help=help_text)
        else:
            parser.add_argument(flag, metavar=f.name.upper(), help=help_text)
    return parser


def parse_config(argv: list[str] | None, environ: Mapping[str, str]) -> EchoConfig:
    """Build the config from flags, then ``UNIGW_ECHO_*`` (and ``PORT``), then defaults."""
    parser = _build_parser()
    args = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    for f in dataclasses.fields(EchoConfig):
        env_name = ENV_PREFIX + f.name.upper()
        raw, source = args[f.name], "--" + f.name.replace("_", "-")
        if raw is None and environ.get(env_name):
            raw, source = environ[env_name], env_name
        if raw is None and f.name == "port" and environ.get("PORT"):
            raw, source = environ["PORT"], "PORT"
        if raw is None:
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            parser.error(f"{source}: {exc}")
    return EchoConfig(**values)


# -- run-time state ---------------------------------------------------------------------------

_KNOB_PARSERS: dict[str, Callable[[str], Any]] = {
    "latency": _seconds, "chunk_delay": _seconds, "error_rate": _fraction,
    "status": _status, "retry_after": _retry_after, "hang": _flag,
}
_NULLABLE = {"status", "retry_after"}


@dataclasses.dataclass
class Knobs:
    """The behaviour knobs that ``POST /_echo/config`` may change while running."""

    latency: float
    chunk_delay: float
    error_rate: float
    status: int | None
    retry_after: str | None
    hang: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        """Validate every change first, then apply them all (raise ``EchoError`` 400)."""
        parsed: dict[str, Any] = {}
        for name, value in changes.items():
            parse = _KNOB_PARSERS.get(name)
            if parse is None:
                raise EchoError(400, f"unknown knob {name!r}; known: {sorted(_KNOB_PARSERS)}")
            if value is None and name in _NULLABLE:
                parsed[name] = None
                continue
            try:
                parsed[name] = parse(str(value))
            except ValueError as exc:
                raise EchoError(400, f"knob {name!r}: {exc}") from None
        for name, value in parsed.items():
            setattr(self, name, value)


@dataclasses.dataclass
class Stats:
    """Counters shown by ``GET /_echo/stats``."""

    requests: int = 0
    answered: int = 0
    in_flight: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    streams_cancelled: int = 0
    by_path: Counter[str] = dataclasses.field(default_factory=Counter)


# -- the ASGI app ---------------------------------------------------------------------------------

async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _send_json(send: Send, status: int, obj: Any, headers: tuple = ()) -> None:
    body = dumps(obj)
    head = [JSON_TYPE, (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


class EchoApp:
    """The raw ASGI application. Constructing it does no I/O."""

    def __init__(self, config: EchoConfig) -> None:
        self.config = config
        self.knobs = Knobs(config.latency, config.chunk_delay, config.error_rate,
                           config.status, config.retry_after)
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
        model = self._model(body)
        serial = next(self._serial)
        reply = plan_chat(body, serial)
        rid, created = f"chatcmpl-echo-{serial}", int(time.time())
        if body.get("stream") is True:
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            await self._stream(chat_stream(reply, rid, model, created, usage), receive, send)
        else:
            await _send_json(send, 200, chat_completion(reply, rid, model, created))

    async def _completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = parse_body(await _read_body(receive))
        model = self._model(body)
        reply = plan_completion(body)
        rid, created = f"cmpl-echo-{next(self._serial)}", int(time.time())
        if body.get("stream") is True:
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            await self._stream(completion_stream(reply, rid, model, created, usage), receive, send)
        else:
            await _send_json(send, 200, text_completion(reply, rid, model, created))

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

    async def _pump(self, events: Iterator[tuple[bool, bytes]], watcher: asyncio.Future,
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
        self.knobs.update(parse_body(await _read_body(receive)))
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
    config = parse_config(argv, os.environ)
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
