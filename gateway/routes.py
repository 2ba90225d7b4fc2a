"""The gateway's route table: every route it serves, in one list (DESIGN.md, "HTTP").

:func:`routes` is the table; ``tests/test_public_surface.py`` pins it equal to DESIGN.md's.
Most endpoints are Starlette request/response functions. The proxied and translated routes
are raw ASGI apps (a ``Route`` whose endpoint is an ASGI app serves it as is), because on
them Starlette's request and response objects would cost more than the proxying itself.

:class:`HotPaths` dispatches the raw ASGI routes without parameters (the OpenAI hot path and
``/v1/messages``) by one dict lookup, in front of Starlette's exception middleware and router;
the dict is built from this table, so the table stays the one list of routes. A request the
dict does not hold, a wrong method included, goes through Starlette's router as usual.

What guards what: :class:`~gateway.control.OriginDoor` (outermost) refuses a ``Host`` that
is not the gateway's own and a foreign ``Origin`` on every route; ``guarded(...)`` marks the
control routes that change something; every ``/v1*`` endpoint checks the gateway keys itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import dashboard
from gateway.control import ACTIONS, Control
from gateway.openai_routes import OpenAI, Proxied
from gateway.translated_routes import APIS, Translated

if TYPE_CHECKING:
    from gateway.app import Gateway

GET, POST, PUT = ["GET"], ["POST"], ["PUT"]  # Starlette adds HEAD to every GET route


class ProviderName(Convertor[str]):
    """``{name:provider}``: one path segment, but not ``start-all`` / ``stop-all``, so that
    ``GET /providers/stop-all`` is a wrong method (405), not an unknown provider."""

    regex = r"(?!(?:start|stop)-all$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("provider", ProviderName())


def routes(gateway: Gateway) -> list[BaseRoute]:
    """Every route of the gateway, the hot path first (Starlette tries them in order)."""
    openai, control = OpenAI(gateway), Control(gateway)
    guarded = control.guarded
    anthropic, gemini = APIS["anthropic"], APIS["gemini"]
    return [
        Route("/v1/chat/completions", Proxied(gateway, "/v1/chat/completions"), methods=POST),
        Route("/v1/completions", Proxied(gateway, "/v1/completions"), methods=POST),
        Route("/v1/models", openai.models, methods=GET),
        Route("/v1/messages", Translated(gateway, anthropic), methods=POST),
        *(Route(f"{version}/models/{{model:path}}:{method}",
                Translated(gateway, gemini, stream=stream), methods=POST)
          for version in ("/v1beta", "/v1")  # google-genai with a custom base URL says "v1"
          for method, stream in (("generateContent", False), ("streamGenerateContent", True))),
        Route("/v1/test", openai.test, methods=POST),
        Route("/health", control.health, methods=GET),
        Route("/metrics", control.metrics, methods=GET),
        Route("/providers", control.providers, methods=GET),
        Route("/providers/start-all", guarded(control.act_all("start")), methods=POST),
        Route("/providers/stop-all", guarded(control.act_all("stop")), methods=POST),
        Route("/providers/{name:provider}", control.provider, methods=GET),  # not *-all
        Route("/providers/{name}/logs", control.logs, methods=GET),
        Route("/providers/{name}/secret", guarded(control.store_secret), methods=POST),
        *(Route(f"/providers/{{name}}/{action}", guarded(control.act(action)), methods=POST)
          for action in ACTIONS),
        Route("/requests", control.requests, methods=GET),
        Route("/config", control.get_config, methods=GET),
        Route("/config", guarded(control.put_config), methods=PUT),
        Route("/", dashboard.index, methods=GET),
        Mount("/ui", app=dashboard.frontend_files()),
    ]


class HotPaths:
    """Raw ASGI: the table's raw ASGI routes without parameters, by ``(method, path)``."""

    def __init__(self, app: ASGIApp, table: list[BaseRoute]) -> None:
        self.app = app
        self.hot: dict[tuple[str, str], ASGIApp] = {
            (method, route.path): route.app
            for route in table
            if isinstance(route, Route) and route.app is route.endpoint  # raw, no middleware
            and not route.param_convertors
            for method in route.methods or ()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.hot.get((scope["method"], scope["path"]))
            if endpoint is not None:
                scope["endpoint"], scope["path_params"] = endpoint, {}
                return await endpoint(scope, receive, send)
        await self.app(scope, receive, send)
