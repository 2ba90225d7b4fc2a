"""Control endpoints: health, metrics, provider status and start/stop/restart, logs, the
request log, and the run-time config (the routes are listed in :mod:`gateway.routes`).

None of them may be driven or read by another web site in the user's browser. Every route
refuses a request whose ``Host`` is not one of the gateway's own names (DNS rebinding: a page
whose name re-resolves to 127.0.0.1 sends its own name as ``Host``), and one whose ``Origin``
is present and is not the gateway's own (CSRF), both in :class:`OriginDoor`;
the control routes that change something (POST, PUT) also need ``X-Unigw-Client: <anything>``
(a cross-site form cannot send a custom header, and a cross-site ``fetch`` with one needs a
CORS preflight this gateway never grants: it has no CORS middleware) or
``Authorization: Bearer <gateway.admin_key>``. When an admin key is configured, a client that
is not on this machine must present it.
"""

from __future__ import annotations

import asyncio
import hmac
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import metrics
from gateway.asgi import headers_of, parse_object, read_body, send_error
from gateway.errors import (
    OPENAI,
    BadRequest,
    Envelope,
    Forbidden,
    GatewayError,
    envelope_of,
)
from gateway.rows import ProviderRow
from gateway.strategies import STRATEGIES
from supervisor.config import ProviderConfig, is_loopback
from supervisor.config.secrets import SecretError, store
from supervisor.view import State

if TYPE_CHECKING:
    from gateway.app import Gateway

Endpoint = Callable[[Request], Awaitable[Response]]
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
MAX_ROWS = 10_000  # of GET /requests at once


class Guard:
    """The Host, Origin, CSRF and admin checks (see the module docstring).

    The gateway's own host names are the loopback ones, the configured ``host`` and
    ``allowed_hosts``, on any port (a port forward changes the port, not the name). Bound to
    every interface (``0.0.0.0``, ``::``) with no ``allowed_hosts``, any ``Host`` is accepted:
    clients then reach it by names and addresses it cannot know, keys are required for
    ``/v1/*``, and its read-only routes are open to the network already.
    """

    def __init__(self, host: str, port: int, admin_key: str,
                 allowed_hosts: tuple[str, ...] = ()) -> None:
        names = LOOPBACK_NAMES if is_loopback(host) else (host,)
        self.origins = {f"http://{name}:{port}" for name in names}
        wildcard = host in ("0.0.0.0", "::", "")
        self.any_host = wildcard and not allowed_hosts
        own = {*LOOPBACK_NAMES, *allowed_hosts, host}  # 0.0.0.0 too: the CLI may use it
        self.hosts = frozenset(_bracketed(name).lower() for name in own if name)
        self.admin = f"Bearer {admin_key}".encode() if admin_key else None

    def own_host(self, host: str) -> bool:
        """Whether a ``Host`` header names this gateway (any port)."""
        if self.any_host:
            return True
        name, port = host.lower(), ""
        if name.startswith("["):
            end = name.find("]") + 1
            name, port = name[:end], name[end:]
        elif name.count(":") == 1:
            name, _, rest = name.partition(":")
            port = ":" + rest
        if port and not (port[0] == ":" and port[1:].isascii() and port[1:].isdigit()):
            return False  # "localhost:80@evil.example", "localhost:80, evil": no port at all
        return name in self.hosts

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
        """Whether ``origin`` is this gateway's (``host``: the request's Host header, already
        found to be one of the gateway's own by :meth:`own_host`)."""
        return origin in self.origins or origin == f"http://{host}"


def _bracketed(host: str) -> str:
    """An IPv6 address as it appears in a ``Host`` header: ``[::1]``."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class OriginDoor:
    """Raw ASGI, outermost: no route answers a request another web site's page sent or reads.

    First the ``Host``: a page at ``http://evil.example:7999`` whose name re-resolves to
    127.0.0.1 (DNS rebinding) is same-origin to itself, so its browser lets it read any GET
    and sends no ``Origin``; only its ``Host: evil.example:7999`` gives it away, so a ``Host``
    that is not the gateway's own is refused (403 ``host_not_allowed``). A request without
    ``Host`` (HTTP/1.0) comes from no browser and passes. Then the ``Origin``: browsers put it
    on every cross-origin request that is not a plain GET of a resource; other clients (the
    CLI, SDKs, curl) send none. So a present, foreign ``Origin`` is refused on every route:
    the control routes, and ``/v1/*``, which a page elsewhere could otherwise drive through
    the user's browser with a form-encoded or text/plain POST. (A query string that is not
    ASCII, which HTTP forbids, is a 400 here too: Starlette fails decoding it.) Each refusal
    is answered in the envelope of the route the request was for.
    """

    def __init__(self, app: ASGIApp, gateway: Gateway, table: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.gateway = gateway
        self.table = table  # the route table, to answer a refusal in its route's envelope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                return await send_error(send, refusal, self.envelope(scope))
        await self.app(scope, receive, send)

    def envelope(self, scope: Scope) -> Envelope:
        """The envelope of the route this request is for (only a refusal pays for the lookup)."""
        for route in self.table:
            match, child = route.matches(scope)
            if match is not Match.NONE:
                return envelope_of(child)
        return OPENAI

    def refusal(self, scope: Scope) -> GatewayError | None:
        """Why this request is refused at the door, or None."""
        if not scope.get("query_string", b"").isascii():  # Starlette's URL decodes it as UTF-8
            return BadRequest("the query string must be ASCII (percent-encode other bytes)")
        origin = host = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        guard = self.gateway.guard
        if host is not None and not guard.own_host(host):
            return Forbidden(f"request refused: Host {host!r} is not this gateway's (add it "
                             "to gateway.allowed_hosts if it is)", code="host_not_allowed")
        if origin is not None and not guard.own(origin, host or ""):
            return Forbidden(f"cross-origin request refused (Origin {origin!r} is not this "
                             "gateway)", code="cross_origin")
        return None


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
        """One provider's row; for a provider with ``instances:``, ``{"group", "providers"}``
        (its instances' rows)."""
        name = request.path_params["name"]
        members = self.gateway.instances(name)
        if members:
            return JSONResponse(_group_json(name, [self.gateway.row(n) for n in members]))
        return JSONResponse(self.gateway.row(name).to_json())

    async def logs(self, request: Request) -> Response:
        """A provider's last lines; a group's are its instances' in turn, each after a
        ``==> NAME#k <==`` line (as ``tail`` shows several files); a ``url:`` provider's
        begin with a line saying that its output is where it runs."""
        name = request.path_params["name"]
        count = _count(request.query_params.get("n", "200"), "lines", 10_000)
        view, members = self.gateway.view, self.gateway.instances(name)
        if members:
            lines: list[str] | None = [line for m in members for line in (
                f"==> {m} <==", *(view.log_tail(m, count) or []))]
        else:
            lines = view.log_tail(name, count)
        if lines is None:
            raise self.gateway.unknown_provider(name)
        url = None if members else self.gateway.row(name).status.url
        if url is not None:  # (what `unigw logs NAME` says too)
            lines = [f"{name} runs at {url}, not here: unigw has no log of its output "
                     "(read it where it runs)", *lines]
        return JSONResponse({"name": name, "lines": list(lines)})

    def act(self, action: str) -> Endpoint:
        """``POST /providers/{name}/<action>``: its row afterwards; a provider with
        ``instances:`` acts on every instance and answers ``{"group", "providers"}``."""
        async def act(request: Request) -> Response:
            name = request.path_params["name"]
            members = self.gateway.instances(name)
            if members:
                rows = await asyncio.gather(*(_act(self.gateway, n, action) for n in members))
                return JSONResponse(_group_json(name, rows))
            row = await _act(self.gateway, name, action)
            return JSONResponse(row.to_json())
        return act

    def act_all(self, action: str) -> Endpoint:
        """``POST /providers/<action>-all``: every provider, then the list."""
        async def act_all(request: Request) -> Response:
            names = [p.name for p in self.gateway.view.providers()]
            await asyncio.gather(*(_act(self.gateway, name, action) for name in names))
            return await self.providers(request)
        return act_all

    async def store_secret(self, request: Request) -> Response:
        """``POST /providers/{name}/secret`` ``{"name", "value"}``: the dashboard's field for a
        missing secret. Stored like ``unigw secret set`` (``.env``, 0600); a running ``unigw
        up`` sees ``.env`` change and starts the providers that waited. The value is never
        answered, logged or kept anywhere else.

        For a provider with ``instances:``, ``name`` is any secret one of its instances reads:
        the provider's own variable (every instance without a ``secrets:`` mapping for it reads
        that one) or an instance's own ``.env`` name."""
        asked = request.path_params["name"]
        config = self.gateway.config
        members = config.members(asked)
        if not members:
            raise self.gateway.unknown_provider(asked)
        raw = await read_body(headers_of(request.scope), request.receive, 1024 * 1024)
        body = parse_object(raw)
        name, value = body.get("name"), body.get("value")
        referenced = list(dict.fromkeys(n for p in members for n in p.secret_names))
        if not isinstance(name, str) or name not in referenced:
            raise BadRequest(_not_referenced(asked, members, referenced))
        if not isinstance(value, str) or not value.strip():
            raise BadRequest("'value' must be a non-empty string")
        try:
            store(config.dotenv_path, name, value, config.secrets_dir)
        except SecretError as exc:
            raise BadRequest(str(exc)) from None
        return JSONResponse({"stored": name, "needed_by": config.needing(name)})

    async def get_config(self, request: Request) -> Response:
        return JSONResponse(self.gateway.runtime_config())

    async def put_config(self, request: Request) -> Response:
        raw = await read_body(headers_of(request.scope), request.receive, 64 * 1024)
        self.gateway.change(**_config_changes(parse_object(raw)))
        return JSONResponse(self.gateway.runtime_config())


def _count(n: str, what: str, most: int) -> int:
    """A query's ``n``: ASCII digits only ('²'.isdigit() is true and int('²') fails), at most
    ``most`` (and never an int() of thousands of digits)."""
    if not (n.isascii() and n.isdigit()):
        raise BadRequest(f"'n' must be a whole number of {what}", param="n")
    return min(int(n), most) if len(n) <= 9 else most


def _not_referenced(asked: str, members: Sequence[ProviderConfig],
                    referenced: Sequence[str]) -> str:
    """Why a secret's name is refused for ``asked`` (a provider, or a group of instances)."""
    names = ", ".join(referenced) or "none"
    if len(members) == 1 and members[0].name == asked:
        return f"'name' must be one of the secrets {asked} references: {names}"
    return (f"'name' must be one of the secrets the instances of {asked} read: {names} (an "
            "instance whose secrets: maps a variable reads it from its own .env name: store "
            "that name)")


def _group_json(group: str, rows: Sequence[ProviderRow]) -> dict[str, Any]:
    return {"group": group, "providers": [row.to_json() for row in rows]}


async def _act(gateway: Gateway, name: str, action: str) -> ProviderRow:
    """start / stop / restart one provider through the view; its row afterwards."""
    view = gateway.view
    method = {"start": view.start, "stop": view.stop, "restart": view.restart}[action]
    try:
        status = await method(name)
    except KeyError:
        raise gateway.unknown_provider(name) from None
    return gateway.with_stats(status)


def _log_query(params: Mapping[str, str]) -> dict[str, Any]:
    """The checked arguments of :meth:`gateway.requestlog.RequestLog.query` (400 if bad)."""
    n, failed, since = params.get("n", "100"), params.get("failed"), params.get("since")
    limit = _count(n, "rows", MAX_ROWS)
    if failed not in (None, "", "true", "false", "1", "0"):
        raise BadRequest("'failed' must be true or false")
    try:
        start = float(since) if since else None
    except ValueError:
        start = math.nan
    if start is not None and not math.isfinite(start):  # float() reads "nan" and "inf" too
        raise BadRequest("'since' must be a time in unix seconds", param="since")
    return {"limit": limit, "provider": params.get("provider") or None,
            "failed": None if not failed else failed in ("true", "1"), "since": start}


def _config_changes(body: dict[str, Any]) -> dict[str, Any]:
    """The checked ``{"strategy"?, "retries"?}`` of a PUT /config (400 on anything else)."""
    unknown = set(body) - {"strategy", "retries"}
    if unknown:
        raise BadRequest(f"only 'strategy' and 'retries' can be changed at run time, not "
                         f"{', '.join(sorted(unknown))}")
    strategy, retries = body.get("strategy"), body.get("retries")
    if strategy is not None and not isinstance(strategy, str):
        raise BadRequest(f"'strategy' must be a string (known: {', '.join(STRATEGIES)})")
    if strategy is not None and strategy not in STRATEGIES:
        raise BadRequest(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})",
                         code="unknown_strategy")
    if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool)
                                or not 0 <= retries <= 20):
        raise BadRequest("'retries' must be a whole number from 0 to 20")
    return {"strategy": strategy, "retries": retries}
