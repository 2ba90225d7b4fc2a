"""Control routes (CSRF-safe), /config at run time, /metrics as Prometheus text."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.gateway import CLIENT, Cluster, chat, parse_prometheus


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("gw"), [("a", ()), ("b", ())],
                 api_keys=[], admin_key="") as c:
        yield c


def test_control_refuses_a_request_without_the_client_header(cluster: Cluster) -> None:
    r = httpx.post(cluster.url + "/providers/a/restart")
    assert r.status_code == 403
    err = r.json()["error"]
    assert "X-Unigw-Client" in err["message"] and err["type"] == "permission_error"
    assert httpx.put(cluster.url + "/config", json={"retries": 1}).status_code == 403
    assert httpx.post(cluster.url + "/providers/stop-all").status_code == 403
    assert httpx.get(cluster.url + "/providers/a").json()["state"] == "ready"


def test_control_refuses_a_cross_origin_request_even_with_the_header(cluster: Cluster) -> None:
    evil = {**CLIENT, "Origin": "https://evil.example"}
    r = httpx.post(cluster.url + "/providers/a/stop", headers=evil)
    assert r.status_code == 403 and "evil.example" in r.json()["error"]["message"]
    assert httpx.get(cluster.url + "/providers", headers=evil).status_code == 403
    own = {**CLIENT, "Origin": f"http://127.0.0.1:{cluster.gateway.port}"}  # type: ignore[union-attr]
    assert httpx.get(cluster.url + "/providers", headers=own).status_code == 200


def test_another_sites_page_cannot_use_the_v1_routes_through_the_browser(
        cluster: Cluster) -> None:
    """A text/plain POST needs no preflight, so the Origin is what gives it away."""
    body = '{"model": "echo-1", "messages": [{"role": "user", "content": "hi"}]}'
    evil = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
    r = httpx.post(cluster.url + "/v1/chat/completions", content=body, headers=evil)
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin"
    r = httpx.post(cluster.url + "/v1/messages", content=body, headers=evil)
    assert r.status_code == 403
    own = {"Origin": f"http://localhost:{cluster.gateway.port}"}  # type: ignore[union-attr]
    r = httpx.post(cluster.url + "/v1/chat/completions", content=body, headers=own)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "hi"


def test_a_rebound_host_is_refused_on_a_real_socket(cluster: Cluster) -> None:
    """DNS rebinding: the page's own name arrives as Host; the gateway's own names pass."""
    port = cluster.gateway.port  # type: ignore[union-attr]
    for path in ("/providers", "/config", "/metrics", "/v1/models", "/", "/providers/a/logs"):
        refused = raw_get(port, path, f"evil.example:{port}")
        assert refused.startswith(b"HTTP/1.1 403 "), refused[:200]
        assert b'"code":"host_not_allowed"' in refused
        assert raw_get(port, path, f"localhost:{port}").startswith(b"HTTP/1.1 200 ")


def raw_get(port: int, path: str, host: str) -> bytes:
    """One GET with exactly this Host header, as a rebinding browser would send it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                     .encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_a_cors_preflight_is_not_granted(cluster: Cluster) -> None:
    r = httpx.options(cluster.url + "/providers/a/stop", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-unigw-client"})
    assert "access-control-allow-origin" not in r.headers
    assert r.status_code >= 400


def test_stop_and_start_a_provider_changes_where_traffic_goes(cluster: Cluster) -> None:
    r = httpx.post(cluster.url + "/providers/b/stop", headers=CLIENT)
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    client = cluster.client()
    assert {chat(client)[0] for _ in range(4)} == {"a"}
    r = httpx.post(cluster.url + "/providers/b/start", headers=CLIENT)
    assert r.json()["state"] == "ready"
    assert {chat(client)[0] for _ in range(4)} == {"a", "b"}


def test_start_all_and_stop_all(cluster: Cluster) -> None:
    r = httpx.post(cluster.url + "/providers/stop-all", headers=CLIENT)
    assert r.json()["summary"] == {"ready": 0, "total": 2}
    r = httpx.post(cluster.url + "/providers/start-all", headers=CLIENT)
    assert r.json()["summary"] == {"ready": 2, "total": 2}


def test_unknown_provider_is_404_on_every_control_route(cluster: Cluster) -> None:
    assert httpx.get(cluster.url + "/providers/ghost").status_code == 404
    assert httpx.get(cluster.url + "/providers/ghost/logs").status_code == 404
    assert httpx.post(cluster.url + "/providers/ghost/start", headers=CLIENT).status_code == 404


def test_providers_rows_carry_gateway_numbers(cluster: Cluster) -> None:
    chat(cluster.client(), extra_query={"provider": "a"})
    body = httpx.get(cluster.url + "/providers").json()
    assert body["strategy"] and body["summary"]["total"] == 2
    row = next(r for r in body["providers"] if r["name"] == "a")
    assert row["reqs"] >= 1 and row["errors"] == 0 and row["in_flight"] == 0
    assert row["latency_ms"] > 0 and row["state"] == "ready" and row["port"]


def test_logs_route_answers_name_and_lines(cluster: Cluster) -> None:
    r = httpx.get(cluster.url + "/providers/a/logs", params={"n": 5})
    assert r.status_code == 200 and r.json() == {"name": "a", "lines": []}


def test_config_is_redacted_and_changes_at_run_time(cluster: Cluster) -> None:
    before = httpx.get(cluster.url + "/config").json()
    assert before["gateway"]["strategy"] == "round_robin"
    r = httpx.put(cluster.url + "/config", json={"strategy": "least_connections",
                                                 "retries": 4}, headers=CLIENT)
    assert r.status_code == 200
    assert (r.json()["gateway"]["strategy"], r.json()["gateway"]["retries"]) == (
        "least_connections", 4)
    after = httpx.get(cluster.url + "/config").json()["gateway"]
    assert (after["strategy"], after["retries"]) == ("least_connections", 4)
    bad = httpx.put(cluster.url + "/config", json={"strategy": "fastest"}, headers=CLIENT)
    assert bad.status_code == 400 and "round_robin" in bad.json()["error"]["message"]
    for body in ({"retries": -1}, {"retries": "2"}, {"port": 1}):
        assert httpx.put(cluster.url + "/config", json=body, headers=CLIENT).status_code == 400
    httpx.put(cluster.url + "/config", json={"strategy": "round_robin", "retries": 2},
              headers=CLIENT)


def test_admin_key_opens_control_without_the_client_header(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ())], admin_key="adm-1") as c:
        ok = httpx.post(c.url + "/providers/a/restart",
                        headers={"Authorization": "Bearer adm-1"})
        assert ok.status_code == 200
        redacted = httpx.get(c.url + "/config").json()["gateway"]["admin_key"]
        assert redacted == "***"


def test_metrics_parse_as_prometheus_text(cluster: Cluster) -> None:
    client = cluster.client()
    for _ in range(4):
        chat(client)
    r = httpx.get(cluster.url + "/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    samples = parse_prometheus(r.text)
    reqs = {labels["provider"]: v for labels, v in samples["unigw_requests_total"]}
    assert set(reqs) == {"a", "b"} and sum(reqs.values()) >= 4
    assert {labels["provider"] for labels, _ in samples["unigw_errors_total"]} == {"a", "b"}
    buckets = [v for labels, v in samples["unigw_latency_seconds_bucket"]
               if labels["provider"] == "a"]
    assert buckets == sorted(buckets) and buckets[-1] >= 1
    count = dict((labels["provider"], v) for labels, v in samples["unigw_latency_seconds_count"])
    assert count["a"] == buckets[-1]
    states = [(labels["state"], v) for labels, v in samples["unigw_provider_state"]
              if labels["provider"] == "a"]
    assert ("ready", 1.0) in states and sum(v for _, v in states) == 1
    assert samples["unigw_in_flight"]
    attempts = {(labels["provider"], labels["outcome"]): v
                for labels, v in samples["unigw_attempts_total"]}
    outcomes = {"ok", "unreachable", "timeout", "upstream_error", "rate_limited", "auth_failed",
                "client_error"}
    assert set(attempts) == {(p, o) for p in "ab" for o in outcomes}
    assert attempts["a", "ok"] == count["a"] and attempts["a", "ok"] + attempts["b", "ok"] >= 4
