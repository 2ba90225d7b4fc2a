"""Health probes, as Kubernetes defines them, over a minimal HTTP/1.1 client of their own.

One HTTP GET of the provider's health path answers two questions:

- **alive** (liveness, and the startup probe): the process answered at all. Any HTTP status,
  even 4xx/5xx, means alive: several providers' probe paths ask their upstream site, which may
  refuse. Connection refused, a reset or a timeout means not alive.
- **ready** (readiness): alive, and with ``ready_when: 2xx`` a 2xx status; with a ``json``
  condition (``ready_when: {status: 2xx, json: "tokens.active > 0"}``) also a JSON body, read
  up to :data:`BODY_MAX`, that meets it. A body that is too big, not JSON, lacks the path or
  fails the condition means alive but not ready, and the result says why
  (``tokens.active > 0 is false (tokens.active = 0)``).

What the supervisor does with the answers (grace period, thresholds) lives in the manager;
this module only asks, and never takes longer than the probe timeout.

The transport is a one-request HTTP/1.1 GET on ``asyncio.open_connection`` (:func:`fetch`), not
httpx: measured on 2 cores under uvloop, a probe through httpx cost 1.3-1.7 ms of CPU, this one
0.25 ms, and an idle supervisor of 14 providers spends most of its time probing. The supervisor
does not import the gateway, so the gateway's own client is not an option.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from supervisor.config import Address, JsonCondition, ProviderConfig

BODY_MAX = 65536  # read at most this much of an answer's body (a longer one is not kept)


@dataclass(frozen=True)
class ProbeResult:
    """One probe's answer."""

    alive: bool
    ready: bool
    ms: float
    status: int | None = None
    error: str | None = None  # why it is not alive, or (with a status) why not ready
    body: bytes | None = None  # the whole body when it was at most 64 KiB (see fetch)

    def describe(self) -> str:
        if self.error is not None:
            return self.error
        return f"HTTP {self.status}" if self.status is not None else "no answer"


class Prober:
    """Probes providers on 127.0.0.1 (or at their ``url``); create inside the event loop,
    :meth:`close` when done."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._ssl: ssl.SSLContext | None = None

    async def probe(self, provider: ProviderConfig) -> ProbeResult:
        """GET the health path once; classify the outcome."""
        headers = {"Authorization": f"Bearer {provider.key}"} if provider.key else {}
        started = time.perf_counter()
        try:
            answer = await self.get(provider, provider.health, headers)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError,
                asyncio.LimitOverrunError) as exc:
            return ProbeResult(False, False, _ms(started), error=_reason(exc))
        status, condition = answer.status, provider.ready_when.json
        accepted = provider.ready_when.accepts(status)
        why = _judge(answer.body, status, condition) if condition and accepted else None
        return ProbeResult(True, accepted and why is None, _ms(started), status=status,
                           error=why, body=answer.body)

    async def get(self, provider: ProviderConfig, path: str,
                  headers: dict[str, str]) -> Answer:
        """``GET path`` of ``provider``: on 127.0.0.1 at its port, or at its ``url``."""
        if provider.url is None:
            return await fetch(provider.port, path, headers, self.timeout)
        at = Address.parse(provider.url)
        return await fetch(at.port, path, headers, self.timeout, host=at.host,
                           tls=self._tls() if at.tls else None)

    async def models(self, provider: ProviderConfig) -> tuple[str, ...] | None:
        """The model ids another unigw's ``GET /v1/models`` lists (a group's members too),
        or None when it did not answer a readable list."""
        headers = {"Authorization": f"Bearer {provider.key}"} if provider.key else {}
        try:
            answer = await self.get(provider, "/v1/models", headers)
            data = json.loads(answer.body or b"") if answer.status == 200 else None
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError,
                asyncio.LimitOverrunError):
            return None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return None
        ids = [i.get("id") for i in items if isinstance(i, dict)]
        ids += [m for i in items if isinstance(i, dict) for m in i.get("members") or ()]
        return tuple(dict.fromkeys(m for m in ids if isinstance(m, str) and m))

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def close(self) -> None:
        """Nothing is pooled (see :func:`fetch`); kept so callers need not know."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer's status and, when it arrived whole within the limits, its body."""

    status: int
    body: bytes | None


async def fetch(port: int, path: str, headers: dict[str, str], timeout: float, *,
                host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Answer:
    """``GET path`` on ``host:port`` (https with ``tls``) over a fresh connection, within
    ``timeout`` seconds.

    No keep-alive: every probe opens a fresh connection, so it tests the process as it is now
    (a pooled connection to a process that was just replaced would only mislead). No proxy
    from the environment ever sees it. The status line and headers must arrive in time; the
    body is read up to :data:`BODY_MAX` in what is left of the timeout, and is None if it is
    longer, does not finish in time, or is an event stream (never read: it may not end).
    """
    status: list[int] = []  # the status, once the head has arrived
    try:
        return await _within(_exchange(host, port, tls, path, headers, status), timeout)
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, OSError,
            asyncio.LimitOverrunError):
        if status:
            return Answer(status[0], None)  # the body failed, the status stands: it answered
        raise


async def _within(exchange: Coroutine[Any, Any, Answer], timeout: float) -> Answer:
    """``exchange`` run in the calling task, TimeoutError after ``timeout`` seconds.

    Not ``asyncio.wait_for``: up to Python 3.11 it runs the exchange as a task of its own and,
    when that ends just as the caller is cancelled, returns its answer and drops the cancel (a
    probe loop then outlived its stop: ``unigw down`` hung). ``asyncio.timeout`` (3.11) runs it
    in the caller's task, where a cancel always arrives.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await exchange
    return await asyncio.wait_for(exchange, timeout)  # 3.10: the loops check a stop themselves


async def _exchange(host: str, port: int, tls: ssl.SSLContext | None, path: str,
                    headers: dict[str, str], status: list[int]) -> Answer:
    reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    try:
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"GET {path} HTTP/1.1", f"Host: {netloc}", "User-Agent: unigw-probe",
                 "Accept: */*", "Accept-Encoding: identity", "Connection: close",
                 *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        code, fields = _head(await reader.readuntil(b"\r\n\r\n"))
        status.append(code)
        return Answer(code, await _body(reader, code, fields))
    finally:
        writer.close()  # (not awaited: nothing is left to say)


def _head(raw: bytes) -> tuple[int, dict[bytes, bytes]]:
    """The status code and the (lower-cased) header fields; ValueError if it is not HTTP."""
    status_line, *rest = raw[:-4].split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:60]!r}")
    fields = {}
    for line in rest:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    return int(parts[1]), fields


async def _body(reader: asyncio.StreamReader, status: int,
                fields: dict[bytes, bytes]) -> bytes | None:
    """The whole body up to :data:`BODY_MAX` bytes, else None."""
    if status < 200 or status in (204, 304):
        return b""
    if fields.get(b"content-type", b"").startswith(b"text/event-stream"):
        return None
    if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
        return await _chunked(reader)
    length = fields.get(b"content-length")
    if length is not None:
        n = int(length)
        return await reader.readexactly(n) if n <= BODY_MAX else None
    data = await reader.read(BODY_MAX + 1)  # close-delimited
    while data and len(data) <= BODY_MAX:
        more = await reader.read(BODY_MAX + 1 - len(data))
        if not more:
            break
        data += more
    return data if len(data) <= BODY_MAX else None


async def _chunked(reader: asyncio.StreamReader) -> bytes | None:
    out = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            return bytes(out)  # (trailers, if any, are not read)
        if len(out) + size > BODY_MAX:
            return None
        out += await reader.readexactly(size)
        await reader.readexactly(2)


def _judge(body: bytes | None, status: int, condition: JsonCondition) -> str | None:
    """None when the body is JSON that meets ``condition``, else why not."""
    if body is None:
        return (f"HTTP {status}, an answer over {BODY_MAX // 1024} KiB, so {condition} cannot "
                "be checked")
    try:
        data = json.loads(body)
    except ValueError:
        return f"HTTP {status}, an answer that is not JSON, so {condition} cannot be checked"
    return condition.check(data)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed before an answer"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
