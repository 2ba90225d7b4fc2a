"""A :class:`~supervisor.view.ProviderView` for providers that something else runs.

Each configured provider is expected at ``127.0.0.1:<port>``. A small background loop probes
each one's health path every ``supervisor.probe_interval`` seconds and marks it ``ready`` or
``unhealthy`` (``ready_when: any`` accepts any HTTP answer). Nothing is started or stopped:
``stop`` takes a provider out of traffic (``stopped``, no probes), ``start`` puts it back
(probed at once), ``restart`` does both. Disabled providers are ``stopped``; ones with missing
secrets ``failed``.

Used by the gateway's tests, the benchmark, and standalone ``python -m gateway.serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from supervisor.config import Config, ProviderConfig
from supervisor.view import ProviderInfo, State


@dataclass
class _Entry:
    config: ProviderConfig
    state: State
    health: str | None = None  # "ok" | "fail"
    health_ms: float | None = None
    last_error: str | None = None
    ready_since: float | None = None


class StaticView:
    """Providers at fixed local ports, probed; see the module docstring."""

    def __init__(self, config: Config, host: str = "127.0.0.1") -> None:
        self.config = config
        self.host = host
        self._entries = {p.name: _Entry(p, self._initial(p)) for p in config.providers}
        self._version = 0
        self._infos: tuple[ProviderInfo, ...] | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    @staticmethod
    def _initial(p: ProviderConfig) -> State:
        if p.missing_secrets or not p.enabled:
            return State.FAILED if p.missing_secrets else State.STOPPED
        return State.STARTING

    # -- ProviderView ----------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    def providers(self) -> Sequence[ProviderInfo]:
        if self._infos is None:
            self._infos = tuple(self._info(e) for e in self._entries.values())
        return self._infos

    def _info(self, e: _Entry) -> ProviderInfo:
        p = e.config
        return ProviderInfo(p.name, e.state, f"http://{self.host}:{p.port}", p.key, p.models,
                            p.weight, None if e.health is None else e.health == "ok",
                            e.health_ms)

    def status(self) -> list[dict[str, Any]]:
        return [self._row(e) for e in self._entries.values()]

    def _row(self, e: _Entry) -> dict[str, Any]:
        p, now = e.config, time.monotonic()
        missing = list(p.missing_secrets)
        return {
            "name": p.name, "port": p.port, "state": e.state.value, "pid": None,
            "uptime_s": None if e.ready_since is None else round(now - e.ready_since, 1),
            "restarts": 0, "health": e.health, "health_ms": e.health_ms,
            "last_error": e.last_error or (f"missing secret {', '.join(missing)}"
                                           if missing else None),
            "cpu_percent": None, "rss_bytes": None, "runtime": p.runtime,
            "models": list(p.models), "warnings": ["run by something else (static view)"],
            "enabled": p.enabled, "description": p.description, "missing_secrets": missing,
        }

    def log_tail(self, name: str, lines: int) -> list[str] | None:
        return [] if name in self._entries else None

    async def start(self, name: str) -> dict[str, Any]:
        e = self._entries[name]
        if e.state is State.STOPPED:
            self._set(e, State.STARTING)
        await self._probe(e)
        return self._row(e)

    async def stop(self, name: str) -> dict[str, Any]:
        e = self._entries[name]
        self._set(e, State.STOPPED)
        return self._row(e)

    async def restart(self, name: str) -> dict[str, Any]:
        await self.stop(name)
        return await self.start(name)

    # -- probing -----------------------------------------------------------------------------------
    async def open(self) -> None:
        """Start probing (call once, inside the event loop)."""
        self._client = httpx.AsyncClient(timeout=self.config.supervisor.probe_timeout)
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    async def probe_all(self) -> None:
        """Probe every provider that is not stopped or failed, at once."""
        live = [e for e in self._entries.values()
                if e.state not in (State.STOPPED, State.FAILED)]
        await asyncio.gather(*(self._probe(e) for e in live))

    async def _loop(self) -> None:
        while True:
            await self.probe_all()
            await asyncio.sleep(self.config.supervisor.probe_interval)

    async def _probe(self, e: _Entry) -> None:
        if self._client is None or e.state in (State.STOPPED, State.FAILED):
            return
        p = e.config
        headers = {"Authorization": f"Bearer {p.key}"} if p.key else {}
        started = time.perf_counter()
        try:
            resp = await self._client.get(f"http://{self.host}:{p.port}{p.health}",
                                          headers=headers)
            ok = p.ready_when == "any" or 200 <= resp.status_code < 300
            error = None if ok else f"health probe answered HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            ok, error = False, f"health probe failed: {exc!r}"
        if e.state is State.STOPPED:  # stopped while the probe was out
            return
        e.health_ms = round((time.perf_counter() - started) * 1000, 1)
        e.last_error = error
        self._set(e, State.READY if ok else State.UNHEALTHY, health="ok" if ok else "fail")

    def _set(self, e: _Entry, state: State, health: str | None = None) -> None:
        if state is State.STOPPED:
            health = None
        if state is e.state and health == e.health:
            return
        if state is State.READY and e.state is not State.READY:
            e.ready_since = time.monotonic()
        elif state is not State.READY:
            e.ready_since = None
        e.state, e.health = state, health
        self._version += 1
        self._infos = None
