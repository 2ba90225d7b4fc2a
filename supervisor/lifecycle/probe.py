"""Health probes, as Kubernetes defines them, over one shared httpx client.

One HTTP GET of the provider's health path answers two questions:

- **alive** (liveness, and the startup probe): the process answered at all. Any HTTP status,
  even 4xx/5xx, means alive: several providers' probe paths ask their upstream site, which may
  refuse. Connection refused, a reset or a timeout means not alive.
- **ready** (readiness): alive, and with ``ready_when: 2xx`` a 2xx status.

What the supervisor does with the answers (grace period, thresholds) lives in the manager;
this module only asks, and never takes longer than the probe timeout.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from supervisor.config import ProviderConfig


@dataclass(frozen=True)
class ProbeResult:
    """One probe's answer."""

    alive: bool
    ready: bool
    ms: float
    status: int | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.status is not None:
            return f"HTTP {self.status}"
        return self.error or "no answer"


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
            status = await asyncio.wait_for(self._status(url, headers), self.timeout + 1.0)
        except (httpx.HTTPError, asyncio.TimeoutError, OSError) as exc:
            return ProbeResult(False, False, _ms(started), error=_reason(exc))
        ready = provider.ready_when == "any" or 200 <= status < 300
        return ProbeResult(True, ready, _ms(started), status=status)

    async def _status(self, url: str, headers: dict[str, str]) -> int:
        # Only the status line matters: the body (possibly an endless stream) is never read.
        async with self._client.stream("GET", url, headers=headers) as response:
            return response.status_code

    async def close(self) -> None:
        await self._client.aclose()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (httpx.TimeoutException, asyncio.TimeoutError)):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
