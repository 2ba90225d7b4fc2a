"""The supervisor: every provider's runtime, and the :class:`ProviderView` the gateway reads.

``Supervisor(config)`` touches nothing; :meth:`Supervisor.up` kills what an earlier, crashed
run left behind and launches one lifecycle task per enabled provider
(:class:`~supervisor.lifecycle.runtime.ProviderRuntime`: clone → install → spawn → probe → restart;
a ``url:`` provider's :class:`~supervisor.lifecycle.remote.RemoteRuntime`: probe only).
:meth:`Supervisor.down` stops every provider's whole process tree and waits for the ports.
:meth:`Supervisor.reload` applies an edited providers.yaml: added providers start, removed ones
stop, changed ones restart and the others are not touched.

State and output live under ``config.state_dir`` (``.unigw/``): ``logs/<name>.log`` (rotated),
``run/providers/<name>.json`` (pids, for leftovers), ``stamps/<home>.json`` (installs) and
``venvs/<home>`` (``home``: an instance ``NAME#k`` shares ``NAME``'s); a provider with
``files:`` runs with its own HOME, ``homes/<name>`` (each instance its own). ``state_dir`` and
``apis_dir`` are fixed when the supervisor is made; every other ``supervisor:`` setting of a
reloaded config applies to providers as they (re)start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from supervisor.config import Config, ProviderConfig
from supervisor.lifecycle.remote import RemoteRuntime
from supervisor.lifecycle.runtime import ProviderRuntime, Shared
from supervisor.lifecycle.states import SETTLED
from supervisor.proc import leftovers
from supervisor.proc.logs import log_path, tail
from supervisor.view import ProviderInfo, ProviderStatus, State

log = logging.getLogger("unigw.supervisor")


Runtime = ProviderRuntime | RemoteRuntime


def runtime_for(provider: ProviderConfig, shared: Shared) -> Runtime:
    """A provider's runtime: run here, or (``url:``) only probed where it runs."""
    return RemoteRuntime(provider, shared) if provider.remote else ProviderRuntime(provider, shared)


class Supervisor:
    """Runs the providers of one config; implements :class:`supervisor.view.ProviderView`."""

    def __init__(
        self,
        config: Config,
        *,
        only: Sequence[str] | None = None,
        progress: Callable[[str, str], None] | None = None,
    ) -> None:
        unknown = [n for n in only or () if not config.members(n)]  # a group: its instances
        if unknown:
            raise KeyError(f"unknown provider(s): {', '.join(unknown)}")
        self._only = frozenset(only) if only else None
        self._version = 0
        self._changed = asyncio.Event()
        self._shared = Shared(config, config.state_dir, config.apis_dir, self._bump, progress)
        self._runtimes = {p.name: runtime_for(p, self._shared) for p in config.providers}

    # -- the view ----------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Grows on every change of any provider's state or config."""
        return self._version

    @property
    def config(self) -> Config:
        return self._shared.config

    def providers(self) -> Sequence[ProviderInfo]:
        return [rt.info() for rt in self._runtimes.values()]

    def status(self) -> Sequence[ProviderStatus]:
        return [rt.status() for rt in self._runtimes.values()]

    def log_tail(self, name: str, lines: int) -> list[str] | None:
        if name not in self._runtimes:
            return None
        backups = self._shared.settings.log_backups
        return tail(log_path(self._shared.state_dir, name), lines, backups)

    async def start(self, name: str) -> ProviderStatus:
        rt = self._runtimes[name]
        await rt.start()
        return rt.status()

    async def stop(self, name: str) -> ProviderStatus:
        rt = self._runtimes[name]
        await rt.stop()
        return rt.status()

    async def restart(self, name: str) -> ProviderStatus:
        rt = self._runtimes[name]
        await rt.restart()
        return rt.status()

    # -- the whole instance ------------------------------------------------------------------

    async def up(self) -> None:
        """Kill recorded leftovers, then launch every selected, enabled provider."""
        for line in await leftovers.kill_leftovers(self._shared.state_dir):
            log.warning("killed a leftover of an earlier unigw run: %s", line)
        for rt in self._runtimes.values():
            if self._selected(rt.name) and rt.provider.enabled:
                rt.launch()

    async def wait_settled(self, timeout: float) -> bool:
        """Until every provider is ready, unhealthy, failed or stopped; False on timeout."""
        deadline = time.monotonic() + timeout
        while not all(rt.state in SETTLED for rt in self._runtimes.values()):
            changed = self._changed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return True

    async def down(self) -> None:
        """Stop every provider (whole trees, ports free). Safe to call more than once."""
        await asyncio.gather(*(rt.stop() for rt in self._runtimes.values()))
        prober, self._shared.prober = self._shared.prober, None
        if prober is not None:
            await prober.close()

    async def install_only(self, names: Sequence[str] | None) -> dict[str, str | None]:
        """Clone and install (no start); each name → its error, or None when installed."""
        if names:
            chosen = [self._runtimes[n] for n in names]
        else:
            chosen = [rt for rt in self._runtimes.values() if rt.provider.enabled]
        results = await asyncio.gather(*(rt.install_only() for rt in chosen))
        return {rt.name: err for rt, err in zip(chosen, results, strict=True)}

    async def reload(self, config: Config) -> dict[str, list[str]]:
        """Apply a new config: start added, stop removed, restart changed, leave the rest."""
        old = {name: rt.provider for name, rt in self._runtimes.items()}
        new = {p.name: p for p in config.providers}
        added = [n for n in new if n not in old]
        removed = [n for n in old if n not in new]
        changed = [n for n in new if n in old and new[n] != old[n]]
        was_on = {n for n in changed if self._runtimes[n].state is not State.STOPPED}
        self._shared.config = config
        await asyncio.gather(*(self._runtimes[n].stop() for n in removed + changed))
        runtimes = {}
        for p in config.providers:
            rt = self._runtimes.get(p.name)
            if rt is None or rt.provider.remote != p.remote:
                rt = runtime_for(p, self._shared)
            elif p.name in changed:
                rt.reconfigure(p)
            runtimes[p.name] = rt
        self._runtimes = runtimes
        for name in added + changed:
            p = new[name]
            turned_on = name in changed and not old[name].enabled
            wanted = name in added or name in was_on or turned_on
            if wanted and p.enabled and self._selected(name):
                self._runtimes[name].launch()
        self._bump()
        return {"added": added, "removed": removed, "changed": changed}

    # -- internals ---------------------------------------------------------------------------

    def _selected(self, name: str) -> bool:
        rt = self._runtimes.get(name)
        group = rt.provider.group if rt is not None else ""
        return self._only is None or name in self._only or group in self._only

    def _bump(self) -> None:
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()
