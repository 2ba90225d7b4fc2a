"""Health probes, as Kubernetes defines them, over one shared httpx client.

One HTTP GET of the provider's health path answers two questions:

- **alive** (liveness, and the startup probe): the process answered at all. Any HTTP status,
  even 4xx/5xx, means alive: several providers' probe paths ask their upstream site, which may
  refuse. Connection refused, a reset or a timeout means not alive.
- **ready** (readiness): alive, and with ``ready_when: 2xx`` a 2xx status; with a ``json``
  condition (``ready_when: {status: 2xx, json: "tokens.active > 0"}``) also a JSON body, read
  up to :data:`MAX_BODY_BYTES`, that meets it. A body that is too big, not JSON, lacks the
  path or fails the condition means alive but not ready, and the result says why
  (``tokens.active > 0 is false (tokens.active = 0)``).

What the supervisor does with the answers (grace period, thresholds) lives in the manager;
this module only asks, and never takes longer than the probe timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import httpx

from supervisor.config import JsonCondition, ProviderConfig

MAX_BODY_BYTES = 64 * 1024  # a health answer with a json condition is read up to this

@dataclass(frozen=True)
class ProbeResult:
    """One probe's answer."""

    alive: bool
    ready: bool
    ms: float
    status: int | None = None
    error: str | None = None  # why it is not alive, or (with a status) why not ready

    def describe(self) -> str:
        if self.error is not None:
            return self.error
        return f"HTTP {self.status}" if self.status is not None else "no answer"


class Prober:
    """Probes providers on 127.0.0.1; create inside the event loop, :meth:`close` when done."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        # No keep-alive: every probe opens a fresh connection, so it tests the process as it is
        # now (a pooled connection to a process that was just replaced would only mislead).
        # trust_env=False: a proxy from the environment must never see probes to localhost.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_keepalive_connections=0),
            trust_env=False,
            follow_redirects=False,
        )

    async def probe(self, provider: ProviderConfig) -> ProbeResult:
        """GET the health path once; classify the outcome."""
        url = f"http://127.0.0.1:{provider.port}{provider.health}"
        headers = {"Authorization": f"Bearer {provider.key}"} if provider.key else {}
        started = time.perf_counter()
        try:
            # The outer timeout guards against anything httpx's own timeouts do not cover.
            status, why = await asyncio.wait_for(self._ask(url, headers, provider),
                                                 self.timeout + 1.0)
        except (httpx.HTTPError, asyncio.TimeoutError, OSError) as exc:
            return ProbeResult(False, False, _ms(started), error=_reason(exc))
        ready = provider.ready_when.accepts(status) and why is None
        return ProbeResult(True, ready, _ms(started), status=status, error=why)

    async def _ask(self, url: str, headers: dict[str, str], provider: ProviderConfig,
                   ) -> tuple[int, str | None]:
        """The status, and why the body does not meet the json condition (None if it does).

        Without a json condition only the status line is read: the body (possibly an endless
        stream) never is. With one, at most MAX_BODY_BYTES of it, and only after a status
        that may mean ready.
        """
        condition = provider.ready_when.json
        async with self._client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if condition is None or not provider.ready_when.accepts(status):
                return status, None
            body = b""
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) > MAX_BODY_BYTES:
                    return status, f"HTTP {status}, an answer over {MAX_BODY_BYTES // 1024} " \
                                   f"KiB, so {condition} cannot be checked"
            return status, _judge(body, status, condition)

    async def close(self) -> None:
        await self._client.aclose()


def _judge(body: bytes, status: int, condition: JsonCondition) -> str | None:
    """None when the body is JSON that meets ``condition``, else why not."""
    try:
        data = json.loads(body)
    except ValueError:
        return f"HTTP {status}, an answer that is not JSON, so {condition} cannot be checked"
    return condition.check(data)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (httpx.TimeoutException, asyncio.TimeoutError)):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
