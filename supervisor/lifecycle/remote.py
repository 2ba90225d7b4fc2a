"""A ``url:`` provider in the supervisor: one that something else runs, elsewhere.

It is never cloned, installed or started. It is an
:class:`~supervisor.lifecycle.external.ExternalProvider` (the same probes, ``ready_when`` and
moves ready ⇄ unhealthy; a unigw node's models read at each probe) with its own probe task,
and the control methods the :class:`~supervisor.lifecycle.manager.Supervisor` calls on every
provider: ``start`` puts it in traffic (probed at once), ``stop`` takes it out (no probes),
``install_only`` has nothing to do.
"""

from __future__ import annotations

import asyncio
import logging

from supervisor.config import ProviderConfig
from supervisor.lifecycle.external import ExternalProvider
from supervisor.lifecycle.runtime import Shared
from supervisor.lifecycle.states import RUNNING
from supervisor.view import State

log = logging.getLogger("unigw.supervisor")
NOTHING_TO_INSTALL = "remote, nothing to install"


class RemoteRuntime(ExternalProvider):
    """A provider at a ``url``: its state follows its probes; see the module docstring."""

    def __init__(self, provider: ProviderConfig, shared: Shared) -> None:
        super().__init__(provider, shared.on_change)
        self.shared = shared
        self.warnings = []
        self.task: asyncio.Task[None] | None = None

    def launch(self) -> None:
        """Into traffic, probed from now on (synchronous: the state changes at once)."""
        self.put_back()
        if self.state in RUNNING and (self.task is None or self.task.done()):
            self.task = asyncio.create_task(self._probing(), name=f"remote-{self.name}")

    async def start(self) -> None:
        """Into traffic; return once the first probe has answered."""
        self.launch()
        await self.wait_settled()

    async def stop(self) -> None:
        """Out of traffic: no probes, no calls."""
        # first: a probe under way then changes nothing, and the loop, detached, ends at its
        # next await even if its cancel were lost (Python 3.11's wait_for dropped one that came
        # as its probe finished: seen under uvloop as a `unigw down` that never returned)
        self.take_out()
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            # bounded all the same: a stop never waits longer than a probe and a models read
            bound = 2 * self.shared.settings.probe_timeout + 1
            if not (await asyncio.wait({task}, timeout=bound))[0]:
                log.warning("%s: its probe loop did not end within %gs of its stop; it ends "
                            "at its next probe", self.name, bound)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def install_only(self) -> str | None:
        """Nothing to clone or install (``unigw install`` says so without asking)."""
        return None

    def reconfigure(self, provider: ProviderConfig) -> None:
        """Take a new config (the caller stopped it first)."""
        self.provider = provider
        self.last_error = None  # it was about the config this one replaces
        self.discovered = ()
        self.shared.on_change()

    async def _probing(self) -> None:
        me = asyncio.current_task()
        try:
            # after every await: still this provider's loop? A stop detaches it first, so it
            # never outlives its stop, nor runs beside the loop of a start that came meanwhile
            while self.task is me and self.state in RUNNING:
                await self.probe(self.shared.get_prober())
                if self.task is not me:
                    return
                await asyncio.sleep(self.shared.settings.probe_interval)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the top of a task: log it, never die silently
            log.exception("%s: internal error", self.name)
            self.transition(State.FAILED, f"internal error: {type(exc).__name__}: {exc}")
