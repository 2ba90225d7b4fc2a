"""gateway.routes: the hot-path dispatch is built from the route table, and errors anywhere are
answered in the envelope."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.routes import HotPaths, routes
from supervisor.config import loads
from supervisor.lifecycle.external import ExternalView

CONFIG = """
gateway: {port: 7990}
providers:
  - {name: only, port: 7991, runtime: python, start: [x], models: [m1], enabled: false}
"""


def app() -> TestClient:
    config = loads(CONFIG, Path("/nonexistent/providers.yaml"), environ={})
    return TestClient(create_app(config, ExternalView(config)), raise_server_exceptions=False,
                      base_url="http://localhost")  # its own Host (the default is refused)


def test_the_hot_paths_are_the_tables_raw_routes_without_parameters() -> None:
    with app() as client:
        hot = HotPaths(client.app, routes(client.app.state.gateway)).hot
    assert set(hot) == {("POST", "/v1/chat/completions"), ("POST", "/v1/completions"),
                        ("POST", "/v1/messages")}


def test_a_hot_path_error_is_answered_in_its_envelope() -> None:
    with app() as client:
        openai = client.post("/v1/chat/completions", content=b"{not json")
        anthropic = client.post("/v1/messages", content=b"[]")
    assert openai.status_code == 400 and openai.json()["error"]["type"] == "invalid_request_error"
    assert anthropic.status_code == 400 and anthropic.json()["type"] == "error"


def test_an_unexpected_exception_is_a_500_in_the_envelope() -> None:
    with app() as client:
        gateway = client.app.state.gateway

        def broken() -> list[object]:
            raise RuntimeError("boom")

        gateway.view.providers = broken  # type: ignore[method-assign]
        resp = client.post("/providers/start-all", headers={"X-Unigw-Client": "t"})
    assert resp.status_code == 500 and resp.json()["error"]["type"] == "server_error"
