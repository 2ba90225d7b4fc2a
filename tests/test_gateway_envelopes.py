"""The gateway's error answers, read by each official SDK: every field arrives where it expects.

The SDKs talk to the gateway app in process: a mock transport hands each request to a
Starlette TestClient of the app and the app's answer back, so what the SDK parses is exactly
what the gateway sends. The app has a key, a small body limit and no provider ready, so it can
give a 400, 401, 404, 413 and 503 of its own. Each answer must parse into the SDK's exception
with the gateway's status, type, code, param and message, and validate against the SDK's own
error model: OpenAI's ``ErrorObject`` (``ErrorResponse`` in its OpenAPI schema requires
``message``, ``type``, ``param`` and ``code``), Anthropic's ``ErrorResponse``, and
google-genai's ``APIError`` (``code``, ``message``, ``status``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from starlette.testclient import TestClient

from gateway.app import create_app
from supervisor.config import loads
from supervisor.lifecycle.external import ExternalView

BASE = "http://127.0.0.1:7990"
LIMIT = 4096
CONFIG = f"""
gateway: {{port: 7990, api_keys: [k], max_body_bytes: {LIMIT}}}
providers:
  - {{name: only, port: 7991, runtime: python, start: [x], models: [m1], enabled: false}}
"""
BIG = "x" * (LIMIT * 2)


@pytest.fixture(scope="module")
def gateway() -> Iterator[TestClient]:
    config = loads(CONFIG, Path("/nonexistent/providers.yaml"), environ={})
    with TestClient(create_app(config, ExternalView(config)), base_url=BASE) as client:
        yield client


def relay(gateway: TestClient, http: Any) -> Callable[[Any], Any]:
    """A mock transport handler (for ``http``: httpx or httpx2) that asks the gateway app."""
    def handle(request: Any) -> Any:
        skip = {"host", "content-length", "transfer-encoding"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        answer = gateway.request(request.method, request.url.raw_path.decode("ascii"),
                                 headers=headers, content=request.content)
        kept = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        return http.Response(answer.status_code, headers=kept, content=answer.content)
    return handle


# -- OpenAI ------------------------------------------------------------------------------------

def openai_error(gateway: TestClient, key: str = "k", **kw: Any) -> openai.APIStatusError:
    http = httpx2.Client(transport=httpx2.MockTransport(relay(gateway, httpx2)))
    client = openai.OpenAI(api_key=key, base_url=BASE + "/v1", http_client=http, max_retries=0)
    request: dict[str, Any] = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(**{**request, **kw})
    return info.value


@pytest.mark.parametrize(("kw", "status", "code", "param"), [
    ({"messages": []}, 400, "bad_request", "messages"),
    ({"key": "wrong"}, 401, "invalid_api_key", None),
    ({"extra_query": {"provider": "ghost"}}, 404, "provider_not_found", None),
    ({"messages": [{"role": "user", "content": BIG}]}, 413, "body_too_large", None),
    ({}, 503, "no_provider_ready", None),
], ids=["400", "401", "404", "413", "503"])
def test_openai_reads_every_field_of_the_gateways_error(
        gateway: TestClient, kw: dict[str, Any], status: int, code: str,
        param: str | None) -> None:
    exc = openai_error(gateway, **kw)
    assert exc.status_code == status and exc.code == code and exc.param == param
    body = exc.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
    parsed = openai.types.ErrorObject.model_validate(body)  # the SDK's own model of it
    assert (parsed.code, parsed.param, parsed.type) == (code, param, exc.type)
    assert parsed.message and parsed.message in exc.message


# -- Anthropic ---------------------------------------------------------------------------------

def anthropic_error(gateway: TestClient, key: str = "k", **kw: Any) -> anthropic.APIStatusError:
    http = httpx2.Client(transport=httpx2.MockTransport(relay(gateway, httpx2)))
    client = anthropic.Anthropic(api_key=key, base_url=BASE, http_client=http, max_retries=0)
    request: dict[str, Any] = {"model": "m1", "max_tokens": 8,
                               "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(**{**request, **kw})
    return info.value


@pytest.mark.parametrize(("kw", "status", "kind"), [
    ({"max_tokens": 0}, 400, "invalid_request_error"),
    ({"key": "wrong"}, 401, "authentication_error"),
    ({"extra_headers": {"X-Unigw-Provider": "ghost"}}, 404, "not_found_error"),
    ({"messages": [{"role": "user", "content": BIG}]}, 413, "request_too_large"),
    ({}, 503, "overloaded_error"),
], ids=["400", "401", "404", "413", "503"])
def test_anthropic_reads_every_field_of_the_gateways_error(
        gateway: TestClient, kw: dict[str, Any], status: int, kind: str) -> None:
    exc = anthropic_error(gateway, **kw)
    assert exc.status_code == status and exc.type == kind and exc.api_message
    body = exc.body
    assert isinstance(body, dict) and body["type"] == "error" and set(body["error"]) == {
        "type", "message"}
    if status == 413:  # Anthropic's docs name it request_too_large; the SDK's union lacks it
        return
    parsed = anthropic.types.ErrorResponse.model_validate(body)  # the SDK's own model of it
    assert parsed.error.type == kind and parsed.error.message == exc.api_message


# -- Gemini ------------------------------------------------------------------------------------

def gemini_error(gateway: TestClient, key: str = "k", headers: dict[str, str] | None = None,
                 **kw: Any) -> genai_errors.APIError:
    options = genai_types.HttpOptions(
        base_url=BASE, headers=headers,
        httpx_client=httpx.Client(transport=httpx.MockTransport(relay(gateway, httpx))))
    client = genai.Client(api_key=key, http_options=options)
    with pytest.raises(genai_errors.APIError) as info:
        client.models.generate_content(model="m1", **{"contents": "hi", **kw})
    return info.value


@pytest.mark.parametrize(("kw", "status", "name"), [
    ({"config": genai_types.GenerateContentConfig(candidate_count=2)}, 400, "INVALID_ARGUMENT"),
    ({"key": "wrong"}, 401, "UNAUTHENTICATED"),
    ({"headers": {"X-Unigw-Provider": "ghost"}}, 404, "NOT_FOUND"),
    ({"contents": BIG}, 413, "INVALID_ARGUMENT"),
    ({}, 503, "UNAVAILABLE"),
], ids=["400", "401", "404", "413", "503"])
def test_google_genai_reads_every_field_of_the_gateways_error(
        gateway: TestClient, kw: dict[str, Any], status: int, name: str) -> None:
    exc = gemini_error(gateway, **kw)
    assert exc.code == status and exc.status == name and exc.message
    details = exc.details
    assert isinstance(details, dict) and set(details["error"]) == {"code", "message", "status"}
    again = genai_errors.APIError(status, details)  # the SDK's own reading of the body alone
    assert (again.code, again.status, again.message) == (status, name, exc.message)
