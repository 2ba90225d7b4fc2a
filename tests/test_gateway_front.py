"""The app's front (:class:`gateway.app.GatewayApp`): the door and the hot paths run in front of
Starlette's middleware stack, so an unexpected exception on a hot path is answered there, as
Starlette's error middleware answers it on every other route: a 500 in the route's envelope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from supervisor.config import loads
from supervisor.lifecycle.external import ExternalView

BASE = "http://127.0.0.1:7990"
CONFIG = """
gateway: {port: 7990, request_log: false}
providers:
  - {name: only, port: 7991, runtime: python, start: [x], models: [m1], enabled: false}
"""
CHAT = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture()
def broken() -> Iterator[TestClient]:
    """The app, with a bug in the routing that every proxied call reaches."""
    config = loads(CONFIG, Path("/nonexistent/providers.yaml"), environ={})
    app = create_app(config, ExternalView(config))

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the gateway")

    app.state.gateway.router.plan = bug
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        yield client


def test_a_bug_on_the_openai_hot_path_is_a_500_in_openai_s_envelope(broken: TestClient) -> None:
    answer = broken.post("/v1/chat/completions", json=CHAT)
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["message"] == "internal error in the gateway (see its log)"
    assert "a bug" not in answer.text  # the exception's text stays in the log


def test_a_bug_on_the_anthropic_hot_path_is_a_500_in_anthropic_s_envelope(
        broken: TestClient) -> None:
    answer = broken.post("/v1/messages", json={**CHAT, "max_tokens": 5})
    assert answer.status_code == 500
    body = answer.json()
    assert body["type"] == "error"
    assert body["error"]["message"] == "internal error in the gateway (see its log)"


def test_other_routes_still_pass_the_door_and_starlette_s_stack(broken: TestClient) -> None:
    assert broken.get("/providers").status_code == 200
    assert broken.get("/no/such/route").status_code == 404
    refused = broken.get("/providers", headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "cross_origin"
