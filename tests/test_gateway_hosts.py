"""DNS rebinding: a request whose Host is not the gateway's own is refused on every route."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.control import Guard
from supervisor.config import loads
from supervisor.lifecycle.external import ExternalView

PORT = 7990
READS = ["/providers", "/config", "/metrics", "/v1/models", "/", "/providers/only/logs",
         "/health", "/providers/only", "/ui/app.js"]


def client(**gateway: object) -> TestClient:
    fields = ", ".join(f"{k}: {v}" for k, v in {"port": PORT, **gateway}.items())
    text = (f"gateway: {{{fields}}}\nproviders:\n  - {{name: only, port: 7991, runtime: python, "
            "start: [x], models: [m1], enabled: false}\n")
    config = loads(text, Path("/nonexistent/providers.yaml"), environ={})
    return TestClient(create_app(config, ExternalView(config)), base_url=f"http://127.0.0.1:{PORT}")


@pytest.mark.parametrize("path", READS)
def test_a_rebound_host_cannot_read_any_route(path: str) -> None:
    with client() as c:
        r = c.get(path, headers={"Host": f"evil.example:{PORT}"})
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "host_not_allowed" and "evil.example" in error["message"]
    assert error["param"] is None


@pytest.mark.parametrize("host", [f"localhost:{PORT}", "localhost", f"127.0.0.1:{PORT}",
                                  f"[::1]:{PORT}", "LOCALHOST:1234"])
def test_the_gateways_own_names_are_served_on_any_port(host: str) -> None:
    with client() as c:
        assert c.get("/providers", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", [f"localhost:{PORT}@evil.example", f"LocalHost:{PORT}, evil",
                                  "localhost:", f"[::1]:{PORT}x", "localhost:-80"])
def test_an_own_name_with_anything_but_a_port_after_it_is_refused(host: str) -> None:
    with client() as c:
        r = c.get("/providers", headers={"Host": host})
    assert r.status_code == 403 and r.json()["error"]["code"] == "host_not_allowed"


def test_a_rebound_host_is_refused_in_the_routes_own_envelope() -> None:
    chat = {"model": "m1", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    with client() as c:
        anthropic = c.post("/v1/messages", json=chat, headers={"Host": "evil.example"})
        gemini = c.post("/v1beta/models/m1:generateContent", json={"contents": []},
                        headers={"Host": "evil.example"})
        openai = c.post("/v1/chat/completions", json=chat, headers={"Host": "evil.example"})
    assert anthropic.status_code == 403 and anthropic.json()["error"]["type"] == "permission_error"
    assert anthropic.json()["type"] == "error"
    assert gemini.status_code == 403 and gemini.json()["error"]["status"] == "PERMISSION_DENIED"
    assert openai.status_code == 403 and openai.json()["error"]["code"] == "host_not_allowed"


def test_allowed_hosts_adds_names_and_the_configured_host_is_one() -> None:
    with client(allowed_hosts="[unigw.lan]") as c:
        assert c.get("/providers", headers={"Host": "unigw.lan:7999"}).status_code == 200
        assert c.get("/providers", headers={"Host": "other.lan"}).status_code == 403
    guard = Guard("192.168.1.5", PORT, "")
    assert guard.own_host(f"192.168.1.5:{PORT}") and guard.own_host("localhost")
    assert not guard.own_host("evil.example")


def test_bound_to_every_interface_any_host_passes_unless_allowed_hosts_is_set() -> None:
    assert Guard("0.0.0.0", PORT, "").own_host("gateway.internal:7999")
    assert Guard("::", PORT, "").own_host("10.0.0.7")
    locked = Guard("0.0.0.0", PORT, "", ("gateway.internal",))
    assert locked.own_host("gateway.internal:80") and locked.own_host("127.0.0.1")
    assert locked.own_host("0.0.0.0:7999")  # the instance record's URL, which the CLI uses
    assert not locked.own_host("evil.example")


def test_an_origin_of_an_allowed_host_is_the_gateways_own() -> None:
    with client(allowed_hosts="[unigw.lan]") as c:
        own = c.put("/config", json={"retries": 1},
                    headers={"Host": "unigw.lan:7999", "Origin": "http://unigw.lan:7999",
                             "X-Unigw-Client": "t"})
        cross = c.put("/config", json={"retries": 1},
                      headers={"Host": "unigw.lan:7999", "Origin": "http://evil.example",
                               "X-Unigw-Client": "t"})
    assert own.status_code == 200, own.text
    assert cross.status_code == 403 and cross.json()["error"]["code"] == "cross_origin"
