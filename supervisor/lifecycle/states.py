"""The lifecycle's rules, shared by every view of a provider: the transition table, the one
:meth:`Lifecycle.transition` that checks, logs and publishes each move, and the one builder of
a :class:`~supervisor.view.ProviderStatus`::

    stopped → installing → starting → ready ⇄ unhealthy → backoff → starting …
    (any running state) → stopping → stopped;  failed (with last_error) when a retry cannot
    help, retried after the failed cool-down or by start/restart. A crash loop stays in
    backoff (a longer capped delay), never failed.

:class:`~supervisor.lifecycle.runtime.ProviderRuntime` (a provider this supervisor runs) and
:class:`~supervisor.lifecycle.external.ExternalProvider` (one something else runs; in the
supervisor, a ``url:`` provider's :class:`~supervisor.lifecycle.remote.RemoteRuntime`) are all a
:class:`Lifecycle`; they differ only in what moves them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from supervisor.config import ProviderConfig
from supervisor.view import ProviderInfo, ProviderStatus, State

log = logging.getLogger("unigw.supervisor")

SETTLED = frozenset({State.READY, State.UNHEALTHY, State.FAILED, State.STOPPED})
RUNNING = (State.STARTING, State.READY, State.UNHEALTHY)
ALLOWED: dict[State, frozenset[State]] = {
    State.STOPPED: frozenset({State.INSTALLING, State.STARTING, State.FAILED}),
    State.INSTALLING: frozenset({State.STARTING, State.FAILED, State.STOPPING, State.STOPPED}),
    State.STARTING: frozenset({*RUNNING, State.BACKOFF, State.FAILED, State.STOPPING}),
    State.READY: frozenset({State.UNHEALTHY, State.BACKOFF, State.FAILED, State.STOPPING}),
    State.UNHEALTHY: frozenset({State.READY, State.BACKOFF, State.FAILED, State.STOPPING}),
    State.BACKOFF: frozenset({State.STARTING, State.FAILED, State.STOPPING, State.STOPPED}),
    State.STOPPING: frozenset({State.STOPPED, State.FAILED}),
    State.FAILED: frozenset({State.INSTALLING, State.STARTING, State.STOPPING, State.STOPPED}),
}


class Lifecycle:
    """One provider's state, changed only by :meth:`transition`, and what a probe last said.

    ``on_change`` is called after every move (the owner bumps its view's version).
    Subclasses say where the process is (:meth:`process`) and may record each move
    (:meth:`note`).
    """

    def __init__(self, provider: ProviderConfig, on_change: Callable[[], None]) -> None:
        self.provider = provider
        self.on_change = on_change
        self.state = State.STOPPED
        self.last_error: str | None = None
        self.warnings: list[str] = []
        self.restarts = 0
        self.probe_ok: bool | None = None
        self.probe_ms: float | None = None
        self.cpu_percent: float | None = None
        self.rss_bytes: int | None = None
        self._changed = asyncio.Event()

    @property
    def name(self) -> str:
        return self.provider.name

    def transition(self, new: State, error: str | None = None) -> None:
        """Move to ``new`` (checked), record ``error``, log it and tell everyone who waits."""
        old = self.state
        if error is not None:
            self.last_error = error
        if new is old:
            return
        if new not in ALLOWED[old]:
            raise RuntimeError(f"{self.name}: illegal transition {old.value} → {new.value}")
        self.state = new
        why = f" ({error.splitlines()[0]})" if error else ""
        level = logging.WARNING if new is State.FAILED else logging.INFO
        log.log(level, "%s: %s → %s%s", self.name, old.value, new.value, why)
        self.note(f"state {old.value} → {new.value}{why}")
        if new not in RUNNING:
            self.probe_ok = None  # no process answers for it now
        self.on_change()
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_settled(self) -> None:
        """Until the state is ready, unhealthy, failed or stopped."""
        while self.state not in SETTLED:
            await self._changed.wait()

    def note(self, line: str) -> None:
        """Record a line in the provider's own log (none here)."""

    def process(self) -> tuple[int | None, float | None]:
        """The running process's pid and uptime in seconds, each None when unknown."""
        return None, None

    def models(self) -> tuple[str, ...]:
        """The models it serves, as far as the supervisor knows (the configured ones)."""
        return self.provider.models

    # -- what others see ---------------------------------------------------------------------

    def info(self) -> ProviderInfo:
        """What the gateway routes by."""
        p = self.provider
        return ProviderInfo(
            name=p.name, state=self.state, base_url=p.base_url, key=p.key,
            models=self.models(), weight=p.weight, probe_ok=self.probe_ok,
            probe_ms=self.probe_ms, nested=p.nested,
            group=p.group,
        )

    def status(self) -> ProviderStatus:
        """The one builder of a provider's status row."""
        p = self.provider
        pid, uptime = self.process()
        return ProviderStatus(
            name=p.name, port=p.port, state=self.state, pid=pid,
            uptime_s=None if uptime is None else round(uptime, 1), restarts=self.restarts,
            probe_ok=self.probe_ok, probe_ms=self.probe_ms, last_error=self.last_error,
            cpu_percent=self.cpu_percent, rss_bytes=self.rss_bytes, runtime=p.runtime,
            models=self.models(), warnings=tuple(self.warnings), enabled=p.enabled,
            description=p.description, missing_secrets=p.missing_secrets, url=p.url,
            group=p.group,
        )
