"""The public surface of DESIGN.md, pinned: the gateway's route table is exactly DESIGN.md's
"## HTTP" table (read from ``../shared/DESIGN.md`` beside the repository), every route answers
as itself, a control route takes only its method, and the strategy registry holds exactly the
seven names. The CLI commands are pinned in test_cli.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.routes import routes
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
DESIGN = Path(__file__).resolve().parents[2] / "shared" / "DESIGN.md"

# Routes DESIGN.md names that are not built yet, with the issue that builds them; each is
# checked to be really not served, so this list has to shrink when they come.
PENDING: dict[tuple[str, str], str] = {}
# Routes served that DESIGN.md does not name, with why (none: keep it so).
EXTRA: dict[tuple[str, str], str] = {
    ("POST", "/providers/{name}/secret"): "issue 14: the dashboard's field for a missing secret",
}

Surface = set[tuple[str, str]]


def design_routes(text: str) -> Surface:
    """The (method, path) pairs of DESIGN.md's "## HTTP" table and its "also served under" line.

    A cell's backticked items are ``METHOD /path``, a bare ``/segment`` that replaces the last
    segment of the item before (``/stop``), a ``:suffix`` that replaces what follows the colon
    (``:streamGenerateContent``), or a bare path with the method before it (``/ui/…``).
    """
    section = text.split("\n## HTTP", 1)[1].split("\n## ", 1)[0]
    found: Surface = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        method, path = "", ""
        for item in re.findall(r"`([^`]+)`", line.split(" | ")[0]):
            item = item.split("?", 1)[0]  # `GET /providers/{name}/logs?n=`: the query is no route
            if " " in item:
                method, path = item.split(" ", 1)
            elif item.startswith(":"):
                path = path.rsplit(":", 1)[0] + item
            elif item.count("/") == 1 and path.count("/") > 1:
                path = path.rsplit("/", 1)[0] + item
            else:
                path = item
            found.add((method, path))
    also = re.search(r"also served under `([^`]+):…`", section)
    assert also, "DESIGN.md no longer says where the Gemini routes are also served"
    prefix = also.group(1).rsplit("/", 1)[0] + "/"  # "/v1/models/"
    found |= {(m, p.replace("/v1beta/models/", prefix)) for m, p in found if ":" in p}
    return found


def served_routes(table: list) -> Surface:
    """The (method, path) pairs of a route table; HEAD comes with every GET (Starlette)."""
    found: Surface = set()
    for route in table:
        if isinstance(route, Mount):
            found.add(("GET", route.path + "/…"))
        else:
            assert isinstance(route, Route), route
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            found |= {(m, path) for m in route.methods or () if m != "HEAD"}
    return found

# (method, path, body, expected status): each a route of DESIGN.md, with nothing ready.
ROUTES = [
    ("POST", "/v1/chat/completions", {"model": "m1", "messages": [{"role": "user", "content": "x"}]}, 503),
    ("POST", "/v1/completions", {"model": "m1", "prompt": "x"}, 503),
    ("GET", "/v1/models", None, 200),
    ("POST", "/v1/messages", {"model": "m1", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, 503),
    ("POST", "/v1beta/models/m1:generateContent", {"contents": [{"parts": [{"text": "x"}]}]}, 503),
    ("POST", "/v1beta/models/m1:streamGenerateContent", {"contents": [{"parts": [{"text": "x"}]}]}, 503),
    ("POST", "/v1/models/m1:generateContent", {"contents": [{"parts": [{"text": "x"}]}]}, 503),
    ("POST", "/v1/models/m1:streamGenerateContent", {"contents": [{"parts": [{"text": "x"}]}]}, 503),
    ("POST", "/v1/test", {"message": "x"}, 503),
    ("GET", "/health", None, 503),
    ("GET", "/providers", None, 200),
    ("GET", "/providers/only", None, 200),
    ("GET", "/providers/only/logs", None, 200),
    ("POST", "/providers/only/start", None, 200),
    ("POST", "/providers/only/restart", None, 200),
    ("POST", "/providers/only/stop", None, 200),
    ("POST", "/providers/start-all", None, 200),
    ("POST", "/providers/stop-all", None, 200),
    ("GET", "/config", None, 200),
    ("PUT", "/config", {"retries": 1}, 200),
    ("GET", "/metrics", None, 200),
    ("GET", "/requests", None, 200),
    ("GET", "/", None, 200),
    ("GET", "/ui/app.js", None, 200),
]


@pytest.fixture(scope="module")
def client() -> TestClient:
    config = loads(CONFIG, Path("/nonexistent/providers.yaml"), environ={})
    # the gateway refuses a Host that is not its own (TestClient's default is "testserver")
    with TestClient(create_app(config, ExternalView(config)), base_url="http://127.0.0.1") as c:
        yield c


@pytest.mark.parametrize(("method", "path", "body", "status"), ROUTES)
def test_every_design_route_is_served(client: TestClient, method: str, path: str,
                                      body: object, status: int) -> None:
    resp = client.request(method, path, json=body, headers=CONTROL)
    assert resp.status_code == status, resp.text


def test_the_route_table_is_exactly_the_design(client: TestClient) -> None:
    assert DESIGN.is_file(), f"DESIGN.md not found at {DESIGN} (../shared/DESIGN.md beside the repo)"
    design = design_routes(DESIGN.read_text(encoding="utf-8"))
    assert ("POST", "/v1/models/{model}:streamGenerateContent") in design  # the parser works
    served = served_routes(routes(client.app.state.gateway))
    assert served - set(EXTRA) == design - set(PENDING), "routes served differ from DESIGN.md"
    assert set(PENDING) <= design and not set(PENDING) & served


def test_pending_routes_are_not_served_yet(client: TestClient) -> None:
    # every route DESIGN.md names is built now; one added to PENDING must really be absent
    served = {(m, p): client.request(m, p).status_code for m, p in sorted(PENDING)}
    assert all(status == 404 for status in served.values()), served


def test_an_unknown_provider_action_is_404(client: TestClient) -> None:
    resp = client.post("/providers/only/explode", headers=CONTROL)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/providers/only/start", "POST"),
    ("DELETE", "/providers/only/stop", "POST"),
    ("GET", "/providers/stop-all", "POST"),
    ("POST", "/providers", "GET, HEAD"),
    ("POST", "/providers/only", "GET, HEAD"),
    ("POST", "/providers/only/logs", "GET, HEAD"),
    ("POST", "/config", "GET, HEAD, PUT"),
    ("GET", "/v1/chat/completions", "POST"),
    ("PUT", "/health", "GET, HEAD"),
])
def test_a_route_takes_only_its_methods(client: TestClient, method: str, path: str,
                                        allow: str) -> None:
    resp = client.request(method, path, headers=CONTROL)
    assert resp.status_code == 405 and resp.headers["allow"] == allow
    assert resp.json()["error"]["code"] == "method_not_allowed"


def test_a_wrong_method_on_a_translated_route_is_405_in_its_own_envelope(
        client: TestClient) -> None:
    anthropic = client.get("/v1/messages")
    assert anthropic.status_code == 405 and anthropic.json()["type"] == "error"
    gemini = client.get("/v1/models/m1:generateContent")
    assert gemini.status_code == 405 and gemini.json()["error"]["code"] == 405


def test_an_unknown_route_is_404_in_the_envelope(client: TestClient) -> None:
    resp = client.get("/v2/nothing")
    assert resp.status_code == 404 and set(resp.json()["error"]) == {"message", "type", "param", "code"}


def test_the_seven_strategies_are_registered_by_name() -> None:
    assert sorted(STRATEGIES) == sorted([
        "round_robin", "least_connections", "response_time", "random",
        "weighted_round_robin", "health_based", "model_specific"])
