"""Control endpoints: health, metrics, provider status and start/stop/restart, logs, the
request log, and the run-time config (the routes are listed in :mod:`gateway.routes`).

None of them may be driven by another web site in the user's browser (CSRF). Every route
refuses a request whose ``Origin`` is present and is not the gateway's own (:class:`OriginDoor`);
the control routes that change something (POST, PUT) also need ``X-Unigw-Client: <anything>``
(a cross-site form cannot send a custom header, and a cross-site ``fetch`` with one needs a
CORS preflight this gateway never grants: it has no CORS middleware) or
``Authorization: Bearer <gateway.admin_key>``. When an admin key is configured, a client that
is not on this machine must present it.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import metrics
from gateway.asgi import headers_of, parse_object, read_body, send_error
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.rows import ProviderRow
from gateway.strategies import STRATEGIES
from supervisor.config import is_loopback
from supervisor.view import State

if TYPE_CHECKING:
    from gateway.app import Gateway

Endpoint = Callable[[Request], Awaitable[Response]]
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
MAX_ROWS = 10_000  # of GET /requests at once


class Guard:
    """The CSRF and admin checks of the control routes (see the module docstring)."""

    def __init__(self, host: str, port: int, admin_key: str) -> None:
        names = LOOPBACK_NAMES if is_loopback(host) else (host,)
        self.origins = {f"http://{name}:{port}" for name in names}
        self.any_host = host in ("0.0.0.0", "::", "")
        self.admin = f"Bearer {admin_key}".encode() if admin_key else None

    def check(self, request: Request) -> None:
        """The admin and client-header checks of a route that changes something (the Origin
        was checked by :class:`OriginDoor`)."""
        headers = request.headers
        auth = headers.get("authorization", "").encode()
        admin_ok = self.admin is not None and hmac.compare_digest(auth, self.admin)
        client = request.client.host if request.client else ""
        if self.admin is not None and not admin_ok and not is_loopback(client):
            raise Forbidden("this control route needs 'Authorization: Bearer <admin_key>'",
                            code="admin_key_required")
        if not admin_ok and not headers.get("x-unigw-client"):
            raise Forbidden("control routes need the header 'X-Unigw-Client' (any value) or "
                            "'Authorization: Bearer <admin_key>'", code="client_header_missing")

    def own(self, origin: str, host: str) -> bool:
        """Whether ``origin`` is this gateway's (``host``: the request's Host header)."""
        return origin in self.origins or (self.any_host and origin == f"http://{host}")


class OriginDoor:
    """Raw ASGI, outermost: no route answers a request that another web site's page sent.

    Browsers put ``Origin`` on every cross-origin request that is not a plain GET of a
    resource; other clients (the CLI, SDKs, curl) send none. So a present, foreign ``Origin``
    is refused on every route: the control routes, and ``/v1/*``, which a page elsewhere
    could otherwise drive through the user's browser with a form-encoded or text/plain POST.
    """

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            origin = host = None
            for name, value in scope["headers"]:
                if name == b"origin":
                    origin = value.decode("latin-1")
                elif name == b"host":
                    host = value.decode("latin-1")
            if origin is not None and not self.gateway.guard.own(origin, host or ""):
                refusal = Forbidden(f"cross-origin request refused (Origin {origin!r} is not "
                                    "this gateway)", code="cross_origin")
                return await send_error(send, refusal)
        await self.app(scope, receive, send)


ACTIONS = ("start", "stop", "restart")


class Control:
    """The control endpoints; each reads the gateway's live state.

    The ones that change something are wrapped in :meth:`guarded` where the route table lists
    them, so the table shows which routes the guard protects.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.registry = metrics.registry(gateway)

    def guarded(self, endpoint: Endpoint) -> Endpoint:
        """``endpoint`` behind the admin and client-header checks of :class:`Guard`."""
        async def run(request: Request) -> Response:
            self.gateway.guard.check(request)
            return await endpoint(request)
        return run

    async def health(self, request: Request) -> Response:
        """200 while at least one provider is ready, else 503 with ``Retry-After``."""
        table = self.gateway.router.table()
        ready, total = len(table.ready), len(table.backends)
        body = {"status": "ok" if ready else "unavailable", "ready": ready, "total": total}
        if ready:
            return JSONResponse(body)
        return JSONResponse(body, 503, headers={"Retry-After": "2"})

    async def metrics(self, request: Request) -> Response:
        """The Prometheus text."""
        return Response(metrics.render(self.registry), media_type=metrics.CONTENT_TYPE)

    async def requests(self, request: Request) -> Response:
        """``GET /requests?n=&provider=&failed=&since=``: the request log, newest first."""
        query = _log_query(request.query_params)
        log = self.gateway.calls.log
        rows = [] if log is None else await asyncio.to_thread(lambda: log.query(**query))
        return JSONResponse({"requests": rows, "enabled": log is not None})

    async def providers(self, request: Request) -> Response:
        rows = self.gateway.rows()
        ready = sum(1 for row in rows if row.status.state is State.READY)
        return JSONResponse({"providers": [row.to_json() for row in rows],
                             "strategy": self.gateway.strategy_name,
                             "summary": {"ready": ready, "total": len(rows)}})

    async def provider(self, request: Request) -> Response:
        return JSONResponse(self.gateway.row(request.path_params["name"]).to_json())

    async def logs(self, request: Request) -> Response:
        name, n = request.path_params["name"], request.query_params.get("n", "200")
        if not n.isdigit():
            raise BadRequest("'n' must be a whole number of lines")
        lines = self.gateway.view.log_tail(name, min(int(n), 10_000))
        if lines is None:
            raise NotFound(f"unknown provider {name!r}", code="provider_not_found")
        return JSONResponse({"name": name, "lines": list(lines)})

    def act(self, action: str) -> Endpoint:
        """``POST /providers/{name}/<action>``: its row afterwards."""
        async def act(request: Request) -> Response:
            row = await _act(self.gateway, request.path_params["name"], action)
            return JSONResponse(row.to_json())
        return act

    def act_all(self, action: str) -> Endpoint:
        """``POST /providers/<action>-all``: every provider, then the list."""
        async def act_all(request: Request) -> Response:
            names = [p.name for p in self.gateway.view.providers()]
            await asyncio.gather(*(_act(self.gateway, name, action) for name in names))
            return await self.providers(request)
        return act_all

    async def get_config(self, request: Request) -> Response:
        return JSONResponse(self.gateway.runtime_config())

    async def put_config(self, request: Request) -> Response:
        raw = await read_body(headers_of(request.scope), request.receive, 64 * 1024)
        self.gateway.change(**_config_changes(parse_object(raw)))
        return JSONResponse(self.gateway.runtime_config())


async def _act(gateway: Gateway, name: str, action: str) -> ProviderRow:
    """start / stop / restart one provider through the view; its row afterwards."""
    view = gateway.view
    method = {"start": view.start, "stop": view.stop, "restart": view.restart}[action]
    try:
        status = await method(name)
    except KeyError:
        raise NotFound(f"unknown provider {name!r}", code="provider_not_found") from None
    return gateway.with_stats(status)


def _log_query(params: Mapping[str, str]) -> dict[str, Any]:
    """The checked arguments of :meth:`gateway.requestlog.RequestLog.query` (400 if bad)."""
    n, failed, since = params.get("n", "100"), params.get("failed"), params.get("since")
    if not n.isdigit():
        raise BadRequest("'n' must be a whole number of rows")
    if failed not in (None, "", "true", "false", "1", "0"):
        raise BadRequest("'failed' must be true or false")
    try:
        start = float(since) if since else None
    except ValueError:
        raise BadRequest("'since' must be a time in unix seconds") from None
    return {"limit": min(int(n), MAX_ROWS), "provider": params.get("provider") or None,
            "failed": None if not failed else failed in ("true", "1"), "since": start}


def _config_changes(body: dict[str, Any]) -> dict[str, Any]:
    """The checked ``{"strategy"?, "retries"?}`` of a PUT /config (400 on anything else)."""
    unknown = set(body) - {"strategy", "retries"}
    if unknown:
        raise BadRequest(f"only 'strategy' and 'retries' can be changed at run time, not "
                         f"{', '.join(sorted(unknown))}")
    strategy, retries = body.get("strategy"), body.get("retries")
    if strategy is not None and strategy not in STRATEGIES:
        raise BadRequest(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})",
                         code="unknown_strategy")
    if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool)
                                or not 0 <= retries <= 20):
        raise BadRequest("'retries' must be a whole number from 0 to 20")
    return {"strategy": strategy, "retries": retries}
