"""Hostile input on every route: never a 5xx of the gateway's own, always the route's envelope.

A generator of our own (``random.Random(SEED)``, a bounded count) builds requests for every
route of :func:`gateway.routes.routes`: malformed JSON, a wrong type in every known field of
each API's request, deep nesting, lone surrogates (escaped and as raw bytes), bodies over the
limit (with and without Content-Length, in many small pieces), odd methods, paths, queries and
headers (a bad Content-Length, non-ASCII bytes). They go straight to the ASGI app, in process,
in front of one real echo provider (so valid requests are really proxied), with a raw ASGI
driver, so any header bytes can be sent and an exception escaping the app (a traceback and a
plain-text 500 under uvicorn) is seen as such.

Each answer the gateway made itself must be JSON in the route's envelope: OpenAI's with
``message``, ``type``, ``param`` and ``code``; Anthropic's on ``/v1/messages``; Gemini's on
the Gemini routes. A 5xx is allowed only when it is about the provider (502/503/504 with a
provider code or message), never a 500.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Mount, Route
from support.asgi import http_scope
from support.echo import EchoProc, start_echo

from gateway.app import create_app
from gateway.routes import routes
from supervisor.config import loads
from supervisor.lifecycle.external import ExternalView

SEED = 20240612
COUNT = 3000
LIMIT = 64 * 1024
CLIENT = (b"x-unigw-client", b"fuzz")
PROVIDER_CODES = {"no_provider_ready", "provider_failed", "provider_timeout",
                  "request_failed_everywhere"}
PROVIDER_TEXT = ("no provider", "every provider tried failed", "failed mid-stream", "provider ")
ANTHROPIC_TYPES = {"invalid_request_error", "authentication_error", "billing_error",
                   "permission_error", "not_found_error", "request_too_large", "rate_limit_error",
                   "timeout_error", "api_error", "overloaded_error"}
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND", "get", "X"]


# -- the raw ASGI driver -----------------------------------------------------------------------

@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    error: BaseException | None = None


@dataclass
class Case:
    """One request, the envelope its errors must come in, and the statuses it may get."""

    what: str
    method: str
    path: str
    envelope: str = "openai"
    query: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: [CLIENT])
    pieces: list[bytes] = field(default_factory=lambda: [b""])
    expect: frozenset[int] | None = None


async def call(app: Any, port: int, case: Case) -> Answer:
    """``case`` sent to ``app`` as uvicorn would (path percent-decoded), the answer collected."""
    host = [(b"host", b"127.0.0.1:%d" % port)] if all(
        k != b"host" for k, _ in case.headers) else []
    scope = http_scope(case.method, case.path, port, [*host, *case.headers], case.query)
    pieces, done = list(case.pieces), asyncio.Event()

    async def receive() -> dict[str, Any]:
        if pieces:
            body = pieces.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(pieces)}
        await done.wait()  # after the body: nothing until the answer is complete
        return {"type": "http.disconnect"}

    answer = Answer(0, {}, b"")
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status, answer.headers = message["status"], dict(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    try:
        await asyncio.wait_for(app(scope, receive, send), 30)
    except BaseException as exc:  # an exception out of the app is what uvicorn logs as one
        answer.error = exc
    done.set()
    answer.body = b"".join(chunks)
    return answer


@asynccontextmanager
async def running(app: Any, view: ExternalView) -> AsyncIterator[None]:
    """The app's lifespan, and the view probing the echo provider until it is ready."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                      "state": {}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    await view.open()
    try:
        for _ in range(100):
            await view.probe_all()
            if all(p.ready for p in view.providers()):
                break
            await asyncio.sleep(0.05)
        yield
    finally:
        await view.close()
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


# -- what to send ------------------------------------------------------------------------------

class Raw:
    """JSON text spliced into a body as it is (what ``json.dumps`` cannot or will not write)."""

    def __init__(self, text: str) -> None:
        self.text = text


def hostile_values() -> list[Any]:
    deep_list: Any = []
    for _ in range(150):
        deep_list = [deep_list]
    deep_dict: Any = {}
    for _ in range(120):
        deep_dict = {"a": deep_dict}
    shallow: Any = "x"
    for _ in range(40):
        shallow = [{"k": shallow}]
    return [None, True, False, 0, -1, 2**70, 1.5, -1e308, "", "x", "a\ud800b", "\udfff", "😀",
            "\x00", "²", "x" * 3000, [], [None], [1, "a", {}], {}, {"a": None}, {"type": 5},
            deep_list, deep_dict, shallow, Raw("[" * 5000 + "]" * 5000),
            Raw('{"a":' * 3000 + "1" + "}" * 3000), Raw("NaN"), Raw("-Infinity"), Raw("1e999"),
            Raw("1" * 5000), Raw('"\\ud800"'), Raw('"\\udc00\\ud800"')]


MSG = [{"role": "user", "content": "hi"}]
SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
BASES: dict[str, dict[str, Any]] = {
    "chat": {"model": "echo-1", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "image_url", "image_url": {"url": "data:x"}}]}],
        "temperature": 0.5, "top_p": 1, "n": 1, "max_tokens": 8, "stop": ["x"],
        "presence_penalty": 0, "frequency_penalty": 0, "logprobs": False, "top_logprobs": 0,
        "logit_bias": {"1": 1}, "user": "u", "seed": 1, "stream": False,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}],
        "tool_choice": "auto", "response_format": {"type": "text"},
        "stream_options": {"include_usage": True}, "parallel_tool_calls": True},
    "completions": {"model": "echo-1", "prompt": "hi", "max_tokens": 8, "stream": False,
                    "temperature": 0, "suffix": "", "echo": False, "logprobs": 0, "n": 1},
    "anthropic": {"model": "echo-1", "max_tokens": 16, "system": [{"type": "text", "text": "s"}],
                  "messages": [
                      {"role": "user", "content": [{"type": "text", "text": "hi"}, {
                          "type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                      "data": "AA=="}}]},
                      {"role": "assistant", "content": [
                          {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": "b"}}]},
                      {"role": "user", "content": [
                          {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}],
                  "temperature": 0.2, "top_p": 1, "top_k": 3, "stop_sequences": ["x"],
                  "stream": False, "metadata": {"user_id": "u"},
                  "tools": [{"name": "f", "description": "d", "input_schema": SCHEMA}],
                  "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True}},
    "gemini": {"contents": [
        {"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png",
                                                                   "data": "AA=="}}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": "b"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"r": 1}}}]}],
        "systemInstruction": {"parts": [{"text": "s"}]},
        "generationConfig": {"temperature": 0.1, "topP": 1, "maxOutputTokens": 8,
                             "stopSequences": ["x"], "candidateCount": 1, "seed": 2,
                             "presencePenalty": 0, "frequencyPenalty": 0,
                             "responseMimeType": "application/json",
                             "responseSchema": {"type": "OBJECT", "nullable": True,
                                                "properties": {"a": {"type": "STRING"}},
                                                "items": {"type": "STRING"},
                                                "anyOf": [{"type": "STRING"}]}},
        "tools": [{"functionDeclarations": [{"name": "f", "description": "d",
                                             "parameters": {"type": "OBJECT"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                                 "allowedFunctionNames": ["f"]}}},
    "test": {"message": "hi", "provider": "echo", "model": "echo-1"},
    "config": {"strategy": "round_robin", "retries": 2},
}


def field_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every field of a base body, nested ones included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from field_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*prefix, i)
            yield from field_paths(item, (*prefix, i))


def replaced(base: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of ``base`` with the field at ``path`` set to ``value``."""
    copy = json.loads(json.dumps(base))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def encode(body: Any, raw_surrogates: bool = False) -> bytes:
    """``body`` as JSON bytes, :class:`Raw` values spliced in as they are."""
    raws: list[str] = []

    def default(obj: Any) -> str:
        raws.append(obj.text)
        return f"\x01RAW{len(raws) - 1}\x01"

    text = json.dumps(body, default=default)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x01RAW{i}\x01"), raw)
    data = text.encode()
    if raw_surrogates:  # the surrogate as UTF-8-style bytes, which json.loads also accepts
        data = data.replace(b"\\ud800", b"\xed\xa0\x80").replace(b"\\udfff", b"\xed\xbf\xbf")
    return data


def split(data: bytes, rng: random.Random) -> list[bytes]:
    """``data`` in 1 to 8 pieces, as a client may send it."""
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(0, 8)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@dataclass(frozen=True)
class Target:
    """One route of the table, ready to be called."""

    method: str
    path: str
    envelope: str
    base: str | None  # the base body's name, for routes that read a body


def targets() -> list[Target]:
    """Every route of the gateway's table, a concrete path for each."""
    config = loads(config_text(1, 2), Path("/nonexistent/providers.yaml"), environ={})
    out = []
    for route in routes(create_app(config, ExternalView(config)).state.gateway):
        if isinstance(route, Mount):
            out.append(Target("GET", "/ui/app.js", "openai", None))
            continue
        assert isinstance(route, Route)
        path = (route.path.replace("{model:path}", "echo-1").replace("{name:provider}", "ghost")
                .replace("{name}", "ghost"))
        for method in sorted(route.methods or ()):
            out.append(Target(method, path, envelope_of_path(path), body_of(method, path)))
    return out


def envelope_of_path(path: str) -> str:
    if path == "/v1/messages":
        return "anthropic"
    return "gemini" if "Content" in path and path.startswith(("/v1beta/models/", "/v1/models/")) \
        else "openai"


def body_of(method: str, path: str) -> str | None:
    if method == "PUT":
        return "config"
    names = {"/v1/chat/completions": "chat", "/v1/completions": "completions",
             "/v1/messages": "anthropic", "/v1/test": "test"}
    return names.get(path) or ("gemini" if envelope_of_path(path) == "gemini" else None)


# -- the generators: each makes one case -------------------------------------------------------

def wrong_field(rng: random.Random, target: Target, values: list[Any]) -> Case:
    base = BASES[target.base or "chat"]
    path = rng.choice(list(field_paths(base)))
    body = replaced(base, path, rng.choice(values))
    data = encode(body, raw_surrogates=rng.random() < 0.3)
    return Case(f"{target.path} {path}", target.method, target.path, target.envelope,
                pieces=split(data, rng))


MALFORMED = [b"", b"{", b"{not json", b'{"a":1,}', b"null", b"[]", b"1", b'"text"', b"\xff\xfe",
             b'\xef\xbb\xbf{"a":1}', b'{"a":"\xed\xa0\x80"}', b"[" * 60_000, b'{"a":NaN}',
             b'{"model":' + b"9" * 5000 + b"}", '{"a":"é"}'.encode("utf-16"), b"\x00" * 10]


def malformed(rng: random.Random, target: Target, values: list[Any]) -> Case:
    data = rng.choice(MALFORMED)
    if rng.random() < 0.3:
        good = encode(BASES[target.base or "chat"])
        data = good[: rng.randrange(len(good))]
    return Case(f"{target.path} malformed {data[:20]!r}", target.method, target.path,
                target.envelope, pieces=split(data, rng),
                expect=frozenset({400}) if target.base else None)


def huge(rng: random.Random, target: Target, values: list[Any]) -> Case:
    data = b'{"model":"' + b"x" * (LIMIT + rng.randrange(1, 5000)) + b'"}'
    headers = [CLIENT]
    if rng.random() < 0.5:
        headers.append((b"content-length", b"%d" % len(data)))
    pieces = [data[i:i + 1024] for i in range(0, len(data), 1024)]
    limit = 64 * 1024 if target.base == "config" else LIMIT
    return Case(f"{target.path} huge", target.method, target.path, target.envelope, headers=headers,
                pieces=pieces, expect=frozenset({413}) if target.base and len(data) > limit
                else None)


def odd_method(rng: random.Random, target: Target, values: list[Any]) -> Case:
    method = rng.choice(METHODS)
    return Case(f"{method} {target.path}", method, target.path, target.envelope,
                pieces=[encode(BASES[target.base])] if target.base else [b""])


ODD_PATHS = ["/v1/chat/completions/", "/v1//chat/completions", "/v1/chat/completions%00",
             "/providers/%ED%A0%80", "/providers/" + "a" * 5000, "/providers/a/b/c",
             "/providers/%00/logs", "/ui/../../etc/passwd", "/ui/%2e%2e/%2e%2e/etc/passwd",
             "/ui/%00", "/ui/" + "x" * 3000, "/ui/", "/v2/nothing", "/%ff", "/v1beta/models/",
             "/v1beta/models/x:unknownMethod", "/config/x", "/metrics/", "/health%20", "/\\",
             "/providers/start-all/x", "/v1/models/x", "//", "/v1/models/%ED%A0%80"]


def odd_path(rng: random.Random, target: Target, values: list[Any]) -> Case:
    path = rng.choice(ODD_PATHS)
    return Case(f"odd path {path[:40]}", rng.choice(["GET", "POST"]), path)


PATHED = ["/v1beta/models/a/b:generateContent", "/v1/models/models%2Fx:streamGenerateContent",
          "/v1beta/models/%ED%A0%80:generateContent", "/v1beta/models/:generateContent"]
QUERIES = [b"n=%C2%B2", b"n=" + b"9" * 5000, b"n=-1", b"n=", b"n=1&n=x", b"provider=%ff",
           b"provider=", b"provider=ghost", b"provider=echo", b"alt=sse", b"alt=%00",
           b"key=x", b"a=%zz", b"x" * 5000, b"&&&==", b"provider=\xff"]


def odd_query(rng: random.Random, target: Target, values: list[Any]) -> Case:
    path = rng.choice(PATHED) if rng.random() < 0.2 else target.path
    body = [encode(BASES[target.base])] if target.base else [b""]
    return Case(f"{path} ?query", target.method, path, envelope_of_path(path),
                query=rng.choice(QUERIES), pieces=body)


ODD_HEADERS = [(b"content-length", b"abc"), (b"content-length", b"-1"),
               (b"content-length", b"9" * 40), (b"content-length", b"0"),
               (b"content-length", "²".encode()), (b"transfer-encoding", b"chunked"),
               (b"content-type", b"application/json; charset=utf-16"),
               (b"content-type", b"\xff\xfe"), (b"x-unigw-provider", b"\xff\xfe"),
               (b"x-unigw-provider", b""), (b"x-unigw-provider", b"ghost"),
               (b"x-unigw-provider", b"echo"), (b"authorization", b"Bearer \xff"),
               (b"authorization", b"bearer"), (b"x-api-key", b"\x00"),
               (b"x-goog-api-key", b"\xe9"), (b"origin", b"http://127.0.0.1"),
               (b"host", b"localhost"), (b"host", b"[::1]:1"), (b"host", b"LOCALHOST:7"),
               (b"x-\xff", b"\xff"), (b"accept", b"\x00"), (b"expect", b"100-continue")]


def odd_headers(rng: random.Random, target: Target, values: list[Any]) -> Case:
    headers = [CLIENT, *rng.sample(ODD_HEADERS, rng.randrange(1, 4))]
    body = encode(BASES[target.base]) if target.base else b""
    return Case(f"{target.method} {target.path} {headers[1:]}", target.method, target.path,
                target.envelope, headers=headers, pieces=split(body, rng))


def foreign(rng: random.Random, target: Target, values: list[Any]) -> Case:
    header = rng.choice([(b"host", b"evil.example:7999"), (b"host", b"127.0.0.2"),
                         (b"origin", b"http://evil.example"), (b"origin", b"null")])
    return Case(f"{target.path} {header}", target.method, target.path, target.envelope,
                headers=[CLIENT, header], expect=frozenset({403}))


Generator = Callable[[random.Random, Target, list[Any]], Case]
# (generator, weight); the first three need a route that reads a body
BODY_GENERATORS: list[tuple[Generator, int]] = [(wrong_field, 10), (malformed, 3), (huge, 1)]
GENERATORS: list[tuple[Generator, int]] = [(odd_method, 2), (odd_path, 2), (odd_query, 2),
                                           (odd_headers, 3), (foreign, 1)]


def cases(seed: int, count: int) -> list[Case]:
    """``count`` cases, the same ones for the same ``seed``."""
    rng = random.Random(seed)
    values, table = hostile_values(), targets()
    any_route = [g for g, weight in GENERATORS for _ in range(weight)]
    body_route = [g for g, weight in BODY_GENERATORS for _ in range(weight)] + any_route
    out = []
    for _ in range(count):
        target = rng.choice(table)
        kind = rng.choice(body_route if target.base else any_route)
        out.append(kind(rng, target, values))
    return out


# -- judging one answer ------------------------------------------------------------------------

def problem(case: Case, answer: Answer) -> str | None:
    """What is wrong with ``answer`` to ``case``, or None."""
    if answer.error is not None:
        return f"an exception escaped the app: {answer.error!r}"
    if case.expect is not None and answer.status not in case.expect:
        return f"status {answer.status}, expected {sorted(case.expect)}: {answer.body[:200]!r}"
    if answer.status < 400 or b"x-unigw-provider" in answer.headers:
        return None  # a success, or the provider's own answer passed through unchanged
    try:
        body = json.loads(answer.body)
        envelope_ok = ENVELOPES[case.envelope](body, answer.status)
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"status {answer.status}, not in the {case.envelope} envelope: {answer.body[:200]!r}"
    if not envelope_ok:
        return f"status {answer.status}, not in the {case.envelope} envelope: {body}"
    if answer.status >= 500 and not about_the_provider(body, answer.status):
        return f"a gateway {answer.status}: {body}"
    return None


def openai_ok(body: dict[str, Any], status: int) -> bool:
    err = body["error"]
    return (set(err) == {"message", "type", "param", "code"} and isinstance(err["message"], str)
            and isinstance(err["type"], str) and (err["param"] is None or
                                                  isinstance(err["param"], str)))


def anthropic_ok(body: dict[str, Any], status: int) -> bool:
    err = body["error"]
    return (body["type"] == "error" and set(err) == {"type", "message"}
            and err["type"] in ANTHROPIC_TYPES and isinstance(err["message"], str))


def gemini_ok(body: dict[str, Any], status: int) -> bool:
    err = body["error"]
    return (set(err) == {"code", "message", "status"} and err["code"] == status
            and isinstance(err["message"], str) and err["status"].isupper())


ENVELOPES = {"openai": openai_ok, "anthropic": anthropic_ok, "gemini": gemini_ok}


def about_the_provider(body: dict[str, Any], status: int) -> bool:
    """A 502/503/504 the provider caused (or no provider ready), not the gateway."""
    err = body["error"]
    code = err.get("code") if isinstance(err.get("code"), str) else None
    message = err["message"].lower()
    return status in (502, 503, 504) and (code in PROVIDER_CODES or (
        code is None and message.startswith(PROVIDER_TEXT)))


# -- the test ----------------------------------------------------------------------------------

def config_text(gateway_port: int, echo_port: int) -> str:
    return (f"gateway: {{port: {gateway_port}, max_body_bytes: {LIMIT}, retries: 0}}\n"
            "supervisor: {probe_interval: 60}\n"
            f"providers:\n  - {{name: echo, port: {echo_port}, runtime: python, start: [x], "
            "models: [echo-1, echo-2]}\n")


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoProc]:
    proc = start_echo()
    try:
        yield proc
    finally:
        proc.stop()


def run_all(echo: EchoProc, batch: list[Case]) -> list[tuple[Case, Answer]]:
    config = loads(config_text(7991, echo.port), Path("/nonexistent/providers.yaml"),
                   environ={})
    view = ExternalView(config)
    app = create_app(config, view)

    async def main() -> list[tuple[Case, Answer]]:
        async with running(app, view):
            assert all(p.ready for p in view.providers()), "the echo provider never got ready"
            results = []
            for case in batch:
                results.append((case, await call(app, 7991, case)))
                if case.path == "/providers/stop-all":  # the table has it; undo it
                    await view.start("echo")
            return results

    return asyncio.run(main())


def test_hostile_requests_on_every_route_get_no_5xx_and_the_routes_envelope(
        echo: EchoProc) -> None:
    batch = cases(SEED, COUNT)
    results = run_all(echo, batch)
    problems = [f"{case.what[:120]}: {why}" for case, answer in results
                if (why := problem(case, answer)) is not None]
    assert problems == []
    statuses = {answer.status for _, answer in results}
    assert {200, 400, 403, 404, 405, 413} <= statuses  # the fuzz reached every kind of answer
    proxied = sum(1 for _, a in results if b"x-unigw-provider" in a.headers)
    assert proxied > 50  # and valid requests really went to the provider


def test_the_fuzz_covers_every_route_of_the_table() -> None:
    batch = cases(SEED, COUNT)
    covered = {(c.method, c.path) for c in batch}
    assert {(t.method, t.path) for t in targets()} <= covered


def test_each_fuzz_class_of_the_issue_is_a_400_naming_the_field(echo: EchoProc) -> None:
    deep = "[" * 5000 + "]" * 5000
    msgs = json.dumps(MSG)
    batch = [
        Case("deep messages", "POST", "/v1/chat/completions",
             pieces=[b'{"model":"echo-1","messages":%s}' % deep.encode()]),
        Case("deep max_tokens", "POST", "/v1/messages", "anthropic",
             pieces=[b'{"model":"echo-1","max_tokens":%s,"messages":%s}' % (
                 deep.encode(), msgs.encode())]),
        Case("deep config", "PUT", "/config", pieces=[deep.encode()]),
        Case("surrogate", "POST", "/v1/chat/completions",
             pieces=[b'{"model":"echo-1","messages":%s,"presence_penalty":"a\\ud800b"}'
                     % msgs.encode()]),
        Case("anyOf", "POST", "/v1beta/models/echo-1:generateContent", "gemini",
             pieces=[json.dumps({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {
                 "responseMimeType": "application/json",
                 "responseSchema": {"anyOf": {"type": "STRING"}}}}).encode()]),
        Case("strategy list", "PUT", "/config", pieces=[b'{"strategy": []}']),
        Case("strategy object", "PUT", "/config", pieces=[b'{"strategy": {}}']),
        Case("superscript n", "GET", "/providers/echo/logs", query=b"n=%C2%B2"),
    ]
    results = run_all(echo, batch)
    assert [(c.what, a.status) for c, a in results] == [(c.what, 400) for c in batch]
    messages = [json.loads(a.body)["error"] for _, a in results]
    assert "nested too deeply" in messages[0]["message"]
    assert messages[3]["param"] == "presence_penalty" and "surrogate" in messages[3]["message"]
    assert "responseSchema.anyOf" in messages[4]["message"]
    assert "'strategy' must be a string" in messages[5]["message"]
