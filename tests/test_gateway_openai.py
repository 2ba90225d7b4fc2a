"""The OpenAI-compatible surface, through the official client: answers, pinning, models, aliases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from support.gateway import Cluster, chat


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("gw")
    fields = {"a": {"models": ["GLM-4.5", "echo-1"]}, "b": {"models": ["GLM-4.5"]},
              "c": {"models": ["qwen-max"], "key": "sk-c-own-key"}}
    with Cluster(tmp, [("a", ("--models", "GLM-4.5,echo-1")), ("b", ("--models", "GLM-4.5")),
                       ("c", ("--models", "qwen-max", "--api-key", "sk-c-own-key"))],
                 provider_fields=fields, aliases={"gpt-4": "qwen-max"}) as c:
        yield c


def test_openai_client_gets_an_echo_answer_naming_the_provider(cluster: Cluster) -> None:
    provider, reply = chat(cluster.client(), "hello gateway", model="GLM-4.5")
    assert reply == "hello gateway" and provider in {"a", "b"}


def test_callers_key_is_replaced_by_the_providers_own(cluster: Cluster) -> None:
    # c refuses any key but its own; the caller sends a different one
    provider, reply = chat(cluster.client(api_key="sk-caller"), "keyed", model="qwen-max")
    assert (provider, reply) == ("c", "keyed")


def test_stream_passes_every_chunk_through(cluster: Cluster) -> None:
    stream = cluster.client().chat.completions.create(
        model="GLM-4.5", messages=[{"role": "user", "content": "one two three"}], stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "one two three"


def test_pin_by_query_and_by_header(cluster: Cluster) -> None:
    client = cluster.client()
    for _ in range(3):
        assert chat(client, model="GLM-4.5", extra_query={"provider": "b"})[0] == "b"
        assert chat(client, model="GLM-4.5", extra_headers={"X-Unigw-Provider": "a"})[0] == "a"


def test_pin_to_an_unknown_provider_is_404(cluster: Cluster) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        chat(cluster.client(), model="GLM-4.5", extra_query={"provider": "nobody"})
    assert "nobody" in exc.value.message


def test_models_is_the_union_owned_by_providers(cluster: Cluster) -> None:
    models = {m.id: m for m in cluster.client().models.list()}
    assert {"GLM-4.5", "echo-1", "qwen-max"} <= set(models)
    assert models["qwen-max"].owned_by == "c"
    assert models["GLM-4.5"].owned_by in {"a", "b"}


def test_an_alias_reaches_the_provider_of_its_target(cluster: Cluster) -> None:
    client = cluster.client()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4", messages=[{"role": "user", "content": "aliased"}])
    assert raw.headers["x-unigw-provider"] == "c"
    assert raw.parse().model == "qwen-max"


def test_an_unknown_model_is_rewritten_to_a_providers_default(cluster: Cluster) -> None:
    raw = cluster.client().chat.completions.with_raw_response.create(
        model="gpt-3.5-turbo", messages=[{"role": "user", "content": "anything"}])
    defaults = {"a": "GLM-4.5", "b": "GLM-4.5", "c": "qwen-max"}
    assert raw.parse().model == defaults[raw.headers["x-unigw-provider"]]


def test_completions_route_is_proxied(cluster: Cluster) -> None:
    got = cluster.client().completions.create(model="qwen-max", prompt="say this")
    assert got.choices[0].text == "say this"


def test_v1_test_checks_one_provider(cluster: Cluster) -> None:
    with cluster.http() as http:
        r = http.post("/v1/test", json={"message": "ping", "provider": "b"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["provider"], body["model"], body["reply"]) == ("b", "GLM-4.5", "ping")
        assert body["latency_ms"] > 0
        assert (body["ok"], body["serving"], body["status"], body["error"]) == (
            True, "ok", None, None)
        r = http.post("/v1/test", json={"message": "ping", "provider": "ghost"})
        assert r.status_code == 404 and r.json()["error"]["message"]


def test_health_reports_ready_and_total(cluster: Cluster) -> None:
    r = httpx.get(cluster.url + "/health")
    assert r.status_code == 200 and r.json() == {"status": "ok", "ready": 3, "total": 3}


def test_reject_policy_answers_404_listing_models(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ())], unknown_model="reject",
                 aliases={"gpt-4": "echo-2"}) as c:
        client = c.client()
        with pytest.raises(openai.NotFoundError) as exc:
            chat(client, model="gpt-3.5-turbo")
        assert "echo-1" in exc.value.message and "echo-2" in exc.value.message
        assert chat(client, "via alias", model="gpt-4") == ("a", "via alias")
