"""A :class:`~supervisor.view.ProviderView` for providers that something else runs.

Each configured provider is expected at ``127.0.0.1:<port>``, or at its ``url``. A small
background loop probes each one's health path every ``supervisor.probe_interval`` seconds with
the lifecycle's :class:`~supervisor.lifecycle.probe.Prober` and moves it ``ready`` ⇄
``unhealthy`` through the lifecycle's :meth:`~supervisor.lifecycle.states.Lifecycle.transition`
(``ready_when: any`` accepts any HTTP answer); the probe of another unigw (``kind: unigw``)
also reads its models (:meth:`ExternalProvider.probe`). Nothing is started or stopped: ``stop``
takes a provider out of traffic (``stopped``, no probes), ``start`` puts it back (probed at
once), ``restart`` does both. Disabled providers are ``stopped``; ones with missing secrets
``failed``. The supervisor's ``url:`` providers are the same lifecycle
(:class:`~supervisor.lifecycle.remote.RemoteRuntime`).

Served by ``unigw gateway`` (:func:`supervisor.run.serve_gateway`); the gateway's tests and the
benchmark use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from supervisor.config import Config, ProviderConfig
from supervisor.lifecycle.probe import Prober
from supervisor.lifecycle.states import RUNNING, Lifecycle
from supervisor.view import ProviderInfo, ProviderStatus, State

WARNING = "run by something else (external view)"


class ExternalProvider(Lifecycle):
    """One provider something else runs: its state follows its probes."""

    def __init__(self, provider: ProviderConfig, on_change: Callable[[], None]) -> None:
        super().__init__(provider, on_change)
        self.warnings = [WARNING]
        self.ready_since: float | None = None
        self.discovered: tuple[str, ...] = ()  # a unigw node's models, as its last probe read

    def models(self) -> tuple[str, ...]:
        if not self.discovered:
            return self.provider.models
        return tuple(dict.fromkeys((*self.provider.models, *self.discovered)))

    def process(self) -> tuple[int | None, float | None]:
        if self.ready_since is None:
            return None, None
        return None, time.monotonic() - self.ready_since

    def transition(self, new: State, error: str | None = None) -> None:
        if new is State.READY and self.state is not State.READY:
            self.ready_since = time.monotonic()
        elif new is not State.READY:
            self.ready_since = None
        super().transition(new, error)

    def put_back(self) -> None:
        """Into traffic (probed from now on), unless it cannot be: disabled or missing secrets."""
        p = self.provider
        if p.missing_secrets:
            self.transition(State.FAILED, f"missing secret {', '.join(p.missing_secrets)}")
        elif self.state is State.STOPPED or self.state is State.FAILED:
            self.last_error = None
            self.transition(State.STARTING)

    def take_out(self) -> None:
        """Out of traffic: stopped, no probes."""
        if self.state in RUNNING:
            self.transition(State.STOPPING)
        self.transition(State.STOPPED)

    async def probe(self, prober: Prober) -> None:
        """Probe it once, if it is in traffic, and move it ready ⇄ unhealthy. A unigw node's
        models are read from its ``/v1/models`` too, while it is ready."""
        if self.state not in RUNNING:
            return
        p = self.provider
        result = await prober.probe(p)
        models = await prober.models(p) if p.nested and result.ready else None
        if self.state not in RUNNING:  # taken out of traffic while the probe was out
            return
        if models is not None and models != self.discovered:
            self.discovered = models
            self.on_change()
        self.probe_ok, self.probe_ms = result.ready, result.ms
        error = None if result.ready else f"health probe: {result.describe()}"
        self.last_error = error
        self.transition(State.READY if result.ready else State.UNHEALTHY)


class ExternalView:
    """Providers at fixed local ports, probed; see the module docstring."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._version = 0
        self._entries = {p.name: ExternalProvider(p, self._bump) for p in config.providers}
        for e in self._entries.values():
            if e.provider.enabled or e.provider.missing_secrets:
                e.put_back()
        self._task: asyncio.Task[None] | None = None
        self._prober: Prober | None = None

    # -- ProviderView ----------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    def providers(self) -> Sequence[ProviderInfo]:
        return [e.info() for e in self._entries.values()]

    def status(self) -> Sequence[ProviderStatus]:
        return [e.status() for e in self._entries.values()]

    def log_tail(self, name: str, lines: int) -> list[str] | None:
        return [] if name in self._entries else None

    async def start(self, name: str) -> ProviderStatus:
        e = self._entries[name]
        e.put_back()
        await self._probe(e)
        return e.status()

    async def stop(self, name: str) -> ProviderStatus:
        e = self._entries[name]
        e.take_out()
        return e.status()

    async def restart(self, name: str) -> ProviderStatus:
        await self.stop(name)
        return await self.start(name)

    # -- probing -----------------------------------------------------------------------------------
    async def open(self) -> None:
        """Start probing (call once, inside the event loop)."""
        self._prober = Prober(self.config.supervisor.probe_timeout)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="external-probes")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._prober is not None:
            await self._prober.close()

    async def probe_all(self) -> None:
        """Probe every provider in traffic, at once."""
        await asyncio.gather(*(self._probe(e) for e in self._entries.values()))

    async def _loop(self) -> None:
        while True:
            await self.probe_all()
            await asyncio.sleep(self.config.supervisor.probe_interval)

    async def _probe(self, e: ExternalProvider) -> None:
        if self._prober is not None:
            await e.probe(self._prober)

    def _bump(self) -> None:
        self._version += 1
