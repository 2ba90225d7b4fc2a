"""The public surface of DESIGN.md, pinned: every HTTP route answers as itself (not as an
unknown route), and the strategy registry holds exactly the seven names. The CLI commands are
pinned in test_cli.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.strategies import STRATEGIES
from supervisor.config import loads
from supervisor.lifecycle.external import ExternalView

CONFIG = """
gateway: {port: 7990}
providers:
  - {name: only, port: 7991, runtime: python, start: ['{python}', -m, supervisor.demo.echo],
     models: [m1], enabled: false}
"""
CONTROL = {"X-Unigw-Client": "test"}

# (method, path, body, expected status): each a route of DESIGN.md, with nothing ready.
ROUTES = [
    ("POST", "/v1/chat/completions", {"model": "m1", "messages": [{"role": "user", "content": "x"}]}, 503),
    ("POST", "/v1/completions", {"model": "m1", "prompt": "x"}, 503),
    ("GET", "/v1/models", None, 200),
    ("POST", "/v1/messages", {"model": "m1", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, 503),
    ("POST", "/v1beta/models/m1:generateContent", {"contents": [{"parts": [{"text": "x"}]}]}, 503),
    ("POST", "/v1beta/models/m1:streamGenerateContent", {"contents": [{"parts": [{"text": "x"}]}]}, 503),
    ("POST", "/v1/test", {"message": "x"}, 503),
    ("GET", "/health", None, 503),
    ("GET", "/providers", None, 200),
    ("GET", "/providers/only", None, 200),
    ("POST", "/providers/only/stop", None, 200),
    ("POST", "/providers/stop-all", None, 200),
    ("GET", "/config", None, 200),
    ("PUT", "/config", {"retries": 1}, 200),
    ("GET", "/metrics", None, 200),
    ("GET", "/", None, 200),
]


@pytest.fixture(scope="module")
def client() -> TestClient:
    config = loads(CONFIG, Path("/nonexistent/providers.yaml"), environ={})
    with TestClient(create_app(config, ExternalView(config))) as c:
        yield c


@pytest.mark.parametrize(("method", "path", "body", "status"), ROUTES)
def test_every_design_route_is_served(client: TestClient, method: str, path: str,
                                      body: object, status: int) -> None:
    resp = client.request(method, path, json=body, headers=CONTROL)
    assert resp.status_code == status, resp.text


def test_an_unknown_route_is_404_in_the_envelope(client: TestClient) -> None:
    resp = client.get("/v2/nothing")
    assert resp.status_code == 404 and set(resp.json()["error"]) == {"message", "type", "code"}


def test_the_seven_strategies_are_registered_by_name() -> None:
    assert sorted(STRATEGIES) == sorted([
        "round_robin", "least_connections", "response_time", "random",
        "weighted_round_robin", "health_based", "model_specific"])
