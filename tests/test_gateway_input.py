"""Bad input never reaches a provider or causes a 500; gateway keys; the refused public bind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from support.echo import REPO_ROOT
from support.gateway import Cluster, write_config

LIMIT = 4096
MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("gw"), [("a", ())], max_body_bytes=LIMIT) as c:
        yield c


def envelope(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


@pytest.mark.parametrize("body, field", [
    ({"messages": MSGS}, "model"),
    ({"model": 5, "messages": MSGS}, "model"),
    ({"model": ""}, "model"),
    ({"model": "echo-1"}, "messages"),
    ({"model": "echo-1", "messages": []}, "messages"),
    ({"model": "echo-1", "messages": "hi"}, "messages"),
    ({"model": "echo-1", "messages": ["hi"]}, "messages[0]"),
    ({"model": "echo-1", "messages": [{"content": "no role"}]}, "messages[0]"),
    ({"model": "echo-1", "messages": MSGS, "stream": "yes"}, "stream"),
])
def test_wrong_chat_fields_are_400_naming_the_field(cluster: Cluster, body: dict[str, Any],
                                                     field: str) -> None:
    r = httpx.post(cluster.url + "/v1/chat/completions", json=body)
    err = envelope(r, 400)
    assert f"'{field}'" in err["message"] and err["type"] == "invalid_request_error"


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_400(cluster: Cluster, raw: bytes) -> None:
    r = httpx.post(cluster.url + "/v1/chat/completions", content=raw)
    envelope(r, 400)


def test_completions_without_prompt_is_400(cluster: Cluster) -> None:
    r = httpx.post(cluster.url + "/v1/completions", json={"model": "echo-1"})
    assert "'prompt'" in envelope(r, 400)["message"]


def test_a_body_over_the_limit_is_413(cluster: Cluster) -> None:
    big = {"model": "echo-1", "messages": [{"role": "user", "content": "x" * LIMIT}]}
    envelope(httpx.post(cluster.url + "/v1/chat/completions", json=big), 413)

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"model": "echo-1", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    envelope(httpx.post(cluster.url + "/v1/chat/completions", content=chunked()), 413)
    assert cluster.chat_requests("a") == 0


def test_the_openai_client_sees_bad_requests_as_400(cluster: Cluster) -> None:
    with pytest.raises(openai.BadRequestError):
        cluster.client().chat.completions.create(model="echo-1", messages=[])


def test_unknown_routes_and_methods_answer_in_the_envelope(cluster: Cluster) -> None:
    envelope(httpx.get(cluster.url + "/v1/nothing"), 404)
    envelope(httpx.get(cluster.url + "/v1/chat/completions"), 405)


def test_v1_test_refuses_a_message_that_is_not_a_non_empty_string(cluster: Cluster) -> None:
    for bad in ("", 5, ["ping"]):
        r = httpx.post(cluster.url + "/v1/test", json={"message": bad})
        assert "'message'" in envelope(r, 400)["message"]


def test_v1_test_without_a_message_sends_the_canary_prompt(cluster: Cluster) -> None:
    r = httpx.post(cluster.url + "/v1/test", json={}, timeout=20)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and r.json()["reply"] == "ping"  # gateway.canary_prompt


def test_gateway_keys_are_required_on_v1_when_configured(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ())], api_keys=["sk-gw-1"]) as c:
        url = c.url + "/v1/chat/completions"
        body = {"model": "echo-1", "messages": MSGS}
        missing = envelope(httpx.post(url, json=body), 401)
        assert missing["type"] == "authentication_error"
        assert "'Authorization: Bearer KEY', 'x-api-key: KEY' or 'x-goog-api-key" in missing[
            "message"]
        for bad in ({"Authorization": "Bearer nope"}, {"x-api-key": "nope"}):
            wrong = envelope(httpx.post(url, json=body, headers=bad), 401)["message"]
            assert wrong == "the API key sent is not one of the gateway's keys (gateway.api_keys)"
            assert "nope" not in wrong
        envelope(httpx.get(c.url + "/v1/models"), 401)
        ok = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-gw-1"})
        assert ok.status_code == 200
        assert httpx.post(url, json=body, headers={"x-api-key": "sk-gw-1"}).status_code == 200
        assert httpx.get(c.url + "/health").status_code == 200  # not under /v1
        with pytest.raises(openai.AuthenticationError):
            c.client(api_key="wrong").models.list()
        assert c.client(api_key="sk-gw-1").models.list().data


def test_the_unigw_api_key_environment_variable_is_a_gateway_key(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ())], env={"UNIGW_API_KEY": "sk-env"}) as c:
        envelope(httpx.get(c.url + "/v1/models"), 401)
        assert httpx.get(c.url + "/v1/models",
                         headers={"Authorization": "Bearer sk-env"}).status_code == 200


def test_a_public_bind_without_a_key_is_refused_at_start(tmp_path: Path) -> None:
    config = write_config(tmp_path / "providers.yaml", [], host="0.0.0.0")
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "supervisor.cli", "gateway", "--config", str(config)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "refusing to listen on 0.0.0.0" in done.stderr and "api_keys" in done.stderr
