"""The gateway application: ``create_app(config, view)`` and its run-time state, :class:`Gateway`.

The app reads providers only through ``view`` (a :class:`~supervisor.view.ProviderView`). Its
lifespan opens the one pooled upstream client (:class:`~gateway.upstream.Upstream`) and the
request log (:mod:`gateway.calls`, :mod:`gateway.requestlog`), runs the opt-in canary
(:mod:`gateway.canary`), and closes them. ``app.state.gateway`` is the :class:`Gateway`:
``apply_config`` hot-reloads routing settings, and ``forward_chat`` is the entry point for
translated APIs (see :meth:`gateway.proxy.Proxy.forward_chat`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from gateway.asgi import send_error
from gateway.calls import Calls, Trace
from gateway.canary import Canary, CanarySettings
from gateway.control import Guard, OriginDoor
from gateway.ejection import OutlierPolicy
from gateway.errors import AttemptFailed, GatewayError, NotFound, envelope_of, handle_error
from gateway.proxy import Proxy
from gateway.requestlog import LogSettings, RequestLog
from gateway.results import ChatResult, ChatStream
from gateway.routes import HotPaths, routes
from gateway.routing import Backend, Router, RoutingSettings
from gateway.rows import ProviderRow
from gateway.scrub import Secrets
from gateway.server import server_config
from gateway.stats import Stats
from gateway.strategies import STRATEGIES, make
from gateway.truth import ErrorPatterns
from gateway.upstream import Upstream
from supervisor.config import Config, is_loopback
from supervisor.view import ProviderStatus, ProviderView

T = TypeVar("T")
log = logging.getLogger("unigw.gateway")
DISCOVERY_TIMEOUT_S = 5.0


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed (uvicorn[standard] brings it), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def check_bind(config: Config) -> str | None:
    """Why the gateway must not listen where the config says, or None if it may."""
    gw = config.gateway
    if is_loopback(gw.host) or gw.api_keys:
        return None
    return (f"refusing to listen on {gw.host}:{gw.port} without a gateway key: anyone who can "
            "reach that address could use every provider. Set gateway.api_keys in "
            f"{config.path.name} (e.g. [\"${{UNIGW_API_KEY}}\"]) or the UNIGW_API_KEY "
            "environment variable, or listen on 127.0.0.1.")


class Gateway:
    """Everything the routes share: config, view, router, statistics, proxy, keys."""

    def __init__(self, config: Config, view: ProviderView) -> None:
        gw = config.gateway
        self.view = view
        self.stats = Stats(OutlierPolicy.of(gw))
        self.router = Router(view, self.stats, RoutingSettings.of(gw))
        self.router.on_ready = self._discover
        self.proxy = Proxy(self.router, self.stats, make(gw.strategy), retries=gw.retries,
                           first_byte_timeout=gw.first_byte_timeout,
                           read_timeout=gw.read_timeout)  # the rest is set by _apply
        self.strategy_name = gw.strategy
        self.calls = Calls(self.stats, request_log(config))
        self.canary = Canary(self.router, self.proxy, CanarySettings(),  # settings: _apply
                             self.calls)
        self.started_at = time.time()
        self._tasks: set[asyncio.Task[None]] = set()
        self.config = config
        self._apply(config)

    def _apply(self, config: Config) -> None:
        gw = config.gateway
        self.config = config
        self.api_keys = tuple(k.encode() for k in gw.api_keys)
        self.max_body_bytes = gw.max_body_bytes
        self.guard = Guard(gw.host, gw.port, gw.admin_key, gw.allowed_hosts)
        self.router.configure(RoutingSettings.of(gw))
        self.stats.on_outcome = OutlierPolicy.of(gw)
        self.proxy.first_byte_timeout = gw.first_byte_timeout
        self.proxy.read_timeout = gw.read_timeout
        self.proxy.first_content_timeout = gw.first_content_timeout
        self.proxy.hold_max_bytes = gw.hold_max_bytes
        self.proxy.error_patterns = {p.name: ErrorPatterns.of(p.error_patterns)
                                     for p in config.providers if p.error_patterns}
        self.canary.settings = CanarySettings.of(config)
        self.proxy.secrets = Secrets.of(config)

    def apply_config(self, config: Config) -> None:
        """Hot reload: routing, keys, limits; strategy and retries if the file changed them."""
        old = self.config.gateway
        self._apply(config)
        # every provider ready after the reload is new to the next table, so its models are
        # learned again: a changed provider may have restarted too fast to be seen not ready
        self.router.reset()
        gw = config.gateway
        self.change(strategy=gw.strategy if gw.strategy != old.strategy else None,
                    retries=gw.retries if gw.retries != old.retries else None)

    def change(self, *, strategy: str | None = None, retries: int | None = None) -> None:
        """Switch the strategy (a fresh instance) and/or the retries, at run time."""
        if strategy is not None and strategy != self.strategy_name:
            self.proxy.strategy = make(strategy)
            self.strategy_name = strategy
        if retries is not None:
            self.proxy.retries = retries

    def runtime_config(self) -> dict[str, Any]:
        """``config.redacted()`` with the strategy and retries in force now, and the strategies."""
        data = self.config.redacted()
        data["gateway"].update(strategy=self.strategy_name, retries=self.proxy.retries)
        data["strategies"] = list(STRATEGIES)  # what PUT /config accepts (the dashboard's list)
        return data

    async def forward_chat(self, request: dict[str, Any], *, pin: str | None = None,
                           stream: bool = False, trace: Trace | None = None,
                           ) -> ChatResult | ChatStream:
        """See :meth:`gateway.proxy.Proxy.forward_chat`."""
        return await self.proxy.forward_chat(request, pin=pin, stream=stream, trace=trace)

    # -- status rows ---------------------------------------------------------------------------
    def with_stats(self, status: ProviderStatus) -> ProviderRow:
        """A supervisor status row plus the gateway's numbers for that provider."""
        return ProviderRow.of(status, self.stats.get(status.name))

    def rows(self) -> list[ProviderRow]:
        return [self.with_stats(status) for status in self.view.status()]

    def instances(self, group: str) -> list[str]:
        """The instances (``NAME#k``) of provider ``group`` with ``instances:``; [] when
        ``group`` is not one."""
        return [s.name for s in self.view.status() if s.group and s.group == group]

    def row(self, name: str) -> ProviderRow:
        for status in self.view.status():
            if status.name == name:
                return self.with_stats(status)
        raise self.unknown_provider(name)

    def unknown_provider(self, name: str) -> NotFound:
        """The 404 for a provider name this gateway does not know, naming the ones it does."""
        names = list(dict.fromkeys(s.group or s.name for s in self.view.status()))
        known = ", ".join(names) if names else "none"
        return NotFound(f"unknown provider {name!r} (known: {known})", code="provider_not_found")

    # -- lifespan and model discovery ----------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        gw = self.config.gateway
        self.proxy.upstream = Upstream(max_connections=gw.max_connections,
                                       connect_timeout=gw.connect_timeout,
                                       total_timeout=gw.total_timeout,
                                       max_response_bytes=gw.max_response_bytes)
        self.router.reset()  # so providers already ready get their models discovered
        self.calls.open()
        self.canary.start()
        try:
            yield
        finally:
            await self.canary.stop()
            for task in list(self._tasks):
                task.cancel()
            await self.proxy.upstream.aclose()
            self.calls.close()

    def _discover(self, backend: Backend) -> None:
        """A provider just became ready: learn its models from its /v1/models, in the background."""
        if self.proxy.upstream is None:
            return
        task = asyncio.get_running_loop().create_task(self._learn(backend))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _learn(self, backend: Backend) -> None:
        upstream = self.proxy.upstream
        assert upstream is not None
        try:
            data = backend.head("GET", "/v1/models") + b"0\r\n\r\n"
            response = await upstream.request(backend.origin, data, DISCOVERY_TIMEOUT_S)
            try:
                body = await response.read(DISCOVERY_TIMEOUT_S)
            finally:
                response.close()
            if response.status == 200:
                models = [m["id"] for m in json.loads(body)["data"] if isinstance(m["id"], str)]
                self.router.learn_models(backend.name, models)
        except (AttemptFailed, ValueError, KeyError, TypeError) as exc:
            log.debug("%s: could not list its models: %s", backend.name, exc)
        except Exception:  # the top of a background task: log, never crash the gateway
            log.exception("%s: model discovery failed", backend.name)


def request_log(config: Config) -> RequestLog | None:
    """The request log the config asks for (``<state_dir>/requests.db``), or None when off.

    Its settings are read once, at start: a reload does not move or resize it.
    """
    gw = config.gateway
    if not gw.request_log:
        return None
    return RequestLog(LogSettings(config.state_dir / "requests.db", max_rows=gw.request_log_rows,
                                  max_age=gw.request_log_days * 86400.0,
                                  log_bodies=gw.log_bodies))


def create_app(config: Config, view: ProviderView) -> Starlette:
    """The gateway as an ASGI app; ``app.state.gateway`` is its :class:`Gateway`.

    The routes are :func:`gateway.routes.routes`; every error becomes an answer in
    :func:`gateway.errors.handle_error` (Starlette's handler for all of them: ours, its own
    404/405 and the unexpected 500) or, on the raw ASGI endpoints, in the same
    :func:`gateway.errors.answer`.
    """
    gateway = Gateway(config, view)
    app = GatewayApp(gateway, routes(gateway))
    app.state.gateway = gateway
    return app


class GatewayApp(Starlette):
    """Starlette, with :class:`~gateway.control.OriginDoor` (no other site) and
    :class:`~gateway.routes.HotPaths` (the hot path skips the router) in front of its
    middleware stack rather than inside it: a proxied call reaches its endpoint without
    passing Starlette's error middleware, whose frames and ``send`` wrapper cost about 1% of
    a call's instructions (PROFILE.md). Every other request goes on through the stack as
    before. An unexpected exception on the hot path is answered as that middleware would
    have (a 500 in the route's envelope, if the answer had not begun) and raised on, so the
    server logs it.
    """

    def __init__(self, gateway: Gateway, table: list[BaseRoute]) -> None:
        super().__init__(
            routes=table,
            exception_handlers={GatewayError: handle_error, HTTPException: handle_error,
                                Exception: handle_error},
            lifespan=gateway.lifespan)
        self.front = OriginDoor(HotPaths(self._stack, table), gateway=gateway, table=table)

    async def _stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        scope["app"] = self
        try:
            await self.front(scope, receive, send)
        except Exception:
            with contextlib.suppress(Exception):  # the answer had begun: nothing more to send
                await send_error(send, GatewayError("internal error in the gateway (see its "
                                                    "log)"), envelope_of(scope))
            raise


__all__ = ["Gateway", "check_bind", "create_app", "run_loop", "server_config"]
