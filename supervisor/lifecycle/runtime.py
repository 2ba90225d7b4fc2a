"""One provider's life: prepare (toolchain, clone, install), run, probe, restart, stop.

Each provider has one :class:`ProviderRuntime` and at most one lifecycle task. Its state only
changes through :meth:`~supervisor.lifecycle.states.Lifecycle.transition`, which checks the
move against the lifecycle's table (:mod:`supervisor.lifecycle.states`), logs it (logger
``unigw.supervisor``), notes it in the provider's log and bumps the supervisor's version.
A crash loop is not failed: it stays in backoff with a longer capped delay (see
:mod:`supervisor.lifecycle.backoff`); failed is for what a retry cannot fix.

Probing follows Kubernetes: until the first answer, only the startup grace counts; after it,
any HTTP answer means alive, readiness moves ready ⇄ unhealthy, and ``liveness_failures``
unanswered probes in a row end the process (then the restart policy decides).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from supervisor.config import Config, ProviderConfig, SupervisorConfig
from supervisor.install import repos, runspec, toolchains
from supervisor.install import steps as install
from supervisor.lifecycle.backoff import RestartPolicy
from supervisor.lifecycle.probe import Prober, ProbeResult
from supervisor.lifecycle.states import RUNNING, Lifecycle
from supervisor.lifecycle.watch import Watch, port_warnings
from supervisor.proc import leftovers, private_home
from supervisor.proc.logs import ProviderLog, log_path
from supervisor.proc.process import (
    Child,
    SpawnError,
    TreeSample,
    TreeSampler,
    port_is_free,
    spawn,
    stop_tree,
    wait_port_free,
)
from supervisor.view import State

log = logging.getLogger("unigw.supervisor")


class CannotRun(Exception):
    """The provider cannot run as configured; ``str(exc)`` says why. ``permanent``: no retry."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


_CANNOT_RUN = (CannotRun, toolchains.ToolchainError, repos.RepoError, install.InstallError,
               SpawnError, private_home.HomeError)


@dataclass
class Shared:
    """What every runtime of one supervisor shares; ``config`` is replaced on reload."""

    config: Config
    state_dir: Path
    apis_dir: Path
    on_change: Callable[[], None]
    progress: Callable[[str, str], None] | None = None
    prober: Prober | None = None
    homes: dict[str, asyncio.Lock] = field(default_factory=dict)

    def home_lock(self, home: str) -> asyncio.Lock:
        """The lock of one clone and install (instances share theirs: one clones, one
        installs, the others then find both current)."""
        return self.homes.setdefault(home, asyncio.Lock())

    @property
    def settings(self) -> SupervisorConfig:
        return self.config.supervisor

    def get_prober(self) -> Prober:
        if self.prober is None:
            self.prober = Prober(self.settings.probe_timeout)
        return self.prober


class ProviderRuntime(Lifecycle):
    """The live state of one provider and the one task that runs it."""

    def __init__(self, provider: ProviderConfig, shared: Shared) -> None:
        super().__init__(provider, shared.on_change)
        self.shared = shared
        s = shared.settings
        self.log = ProviderLog(log_path(shared.state_dir, provider.name), s.log_max_bytes,
                               s.log_backups)
        self.log.secrets = tuple(v.encode() for v in provider.secret_values())
        self.policy = RestartPolicy.from_settings(s)
        self.child: Child | None = None
        self.task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def note(self, line: str) -> None:
        self.log.note(line)

    def process(self) -> tuple[int | None, float | None]:
        child = self.child
        if child is None or child.returncode is not None:
            return None, None
        return child.pid, time.monotonic() - child.started

    # -- control -----------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the lifecycle task if none runs (synchronous: the state changes at once)."""
        if self.task is not None and not self.task.done():
            return
        self.transition(State.INSTALLING)
        self.task = asyncio.create_task(self._lifecycle(), name=f"provider-{self.name}")

    async def start(self) -> None:
        """Run it (a failed one is tried again now, afresh); return once it has settled."""
        async with self._lock:
            if self.state is State.FAILED or self.state is State.STOPPED:
                await self._cancel_task()
                self.policy.reset()
                self.last_error = None
                self.launch()
        await self.wait_settled()

    async def stop(self) -> None:
        """Stop it and everything it started; return once it is stopped."""
        async with self._lock:
            await self._stop_locked()

    async def restart(self) -> None:
        """Stop, forget the crash history, start; return once it has settled.

        ``restarts`` counts every process after the first, asked for or not (the RESTARTS
        column); the crash history that decides a crash loop only counts exits.
        """
        async with self._lock:
            await self._stop_locked()
            self.policy.reset()
            self.last_error = None
            self.restarts += 1
            self.launch()
        await self.wait_settled()

    async def install_only(self) -> str | None:
        """Toolchain, clone and install without starting; the error, or None."""
        async with self._lock:
            if self.state is not State.STOPPED and self.state is not State.FAILED:
                return f"{self.name} is {self.state.value}; stop it first"
            await self._cancel_task()  # a failed one may be waiting out its cool-down
            self.transition(State.INSTALLING)
            try:
                await self._prepare(need_secrets=False)  # secrets are needed to run only
            except _CANNOT_RUN as exc:
                self.transition(State.FAILED, str(exc))
                return str(exc)
            self.transition(State.STOPPED)
            return None

    def reconfigure(self, provider: ProviderConfig) -> None:
        """Take a new config (the caller stopped it first); settings apply from now on."""
        s = self.shared.settings
        self.provider = provider
        self.last_error = None  # it was about the config this one replaces
        self.policy = RestartPolicy.from_settings(s)
        self.log.max_bytes, self.log.backups = max(1024, s.log_max_bytes), s.log_backups
        self.log.secrets = tuple(v.encode() for v in provider.secret_values())
        self.shared.on_change()

    async def _stop_locked(self) -> None:
        await self._cancel_task()
        child = self.child
        if child is not None or self.state in RUNNING:
            self.transition(State.STOPPING)
        if child is not None:
            await self._end_child(child, self.shared.settings.stop_grace)
        if self.state is not State.STOPPED:
            self.transition(State.STOPPED)
        self.log.close()

    async def _cancel_task(self) -> None:
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the lifecycle task ------------------------------------------------------------------

    async def _lifecycle(self) -> None:
        """prepare → (run → backoff)* until cancelled; a prepare that fails → failed →
        cool-down → again (not for a missing secret: retrying cannot help)."""
        try:
            while True:
                try:
                    spec = await self._prepare()
                    await self._run_forever(spec)
                except _CANNOT_RUN as exc:
                    self.transition(State.FAILED, str(exc))
                    if isinstance(exc, CannotRun) and exc.permanent:
                        return
                await asyncio.sleep(self.shared.settings.failed_cooldown)
                self.policy.reset()
                self.log.note("trying again after the failed cool-down")
                self.transition(State.INSTALLING)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the top of a task: log it, never die silently
            log.exception("%s: internal error", self.name)
            self.transition(State.FAILED, f"internal error: {type(exc).__name__}: {exc}")

    async def _prepare(self, *, need_secrets: bool = True) -> runspec.RunSpec:
        """Secrets, clone, toolchain and install: what must hold before the first start."""
        p, shared = self.provider, self.shared
        if p.missing_secrets and need_secrets:
            raise CannotRun(f"missing secret {', '.join(p.missing_secrets)}", permanent=True)
        async with shared.home_lock(p.home):
            return await self._prepare_home()

    async def _prepare_home(self) -> runspec.RunSpec:
        """Clone, toolchain and install, under the home's lock."""
        p, shared = self.provider, self.shared
        commit = None
        if p.repo is not None:  # first, so a vanished repository costs no toolchain download
            ref, clone_dir = p.ref or "HEAD", shared.apis_dir / p.home
            commit = await repos.ensure_checkout(
                p.repo, ref, clone_dir, timeout=shared.settings.clone_timeout, emit=self._say
            )
            self._say(f"{clone_dir} is at {ref} ({commit[:12]})")
        tc = None
        if not (p.local and p.runtime == "python" and not p.python and not p.toolchain):
            tc = await toolchains.resolve(p, shared.config, self._say)
        spec = runspec.build(p, shared.config, tc, shared.state_dir, shared.apis_dir)
        if not spec.cwd.is_dir():
            raise CannotRun(f"folder {spec.cwd} does not exist (check the provider's cwd)")
        if not p.local:
            self.log.on_line = self._progress
            try:
                await install.ensure_installed(
                    spec, commit, self.log, timeout=shared.settings.install_timeout,
                    emit=self._say,
                )
            finally:
                self.log.on_line = None
        return spec

    async def _run_forever(self, spec: runspec.RunSpec) -> None:
        """Start, watch, and restart after each end with backoff; a crash loop backs off
        longer (and says so, with the time of the next try) but never gives up."""
        while True:
            ended = await self._run_once(spec)
            restart = self.policy.on_exit()
            reason = ended
            if restart.crash_loop:
                s = self.shared.settings
                at = time.strftime("%H:%M:%S", time.localtime(time.time() + restart.delay))
                tail = "\n".join(self.log.last_lines(10))
                reason = (f"crash loop: {s.crash_loop_max} exits within "
                          f"{s.crash_loop_window:g}s; next try in {restart.delay:.0f}s "
                          f"(at {at}); last: {ended}"
                          + (f"; last output:\n{tail}" if tail else ""))
            self.transition(State.BACKOFF, reason)
            self.log.note(f"restarting in {restart.delay:.2f}s")
            await asyncio.sleep(restart.delay)
            self.restarts += 1

    async def _run_once(self, spec: runspec.RunSpec) -> str:
        """One process: free the port, spawn, watch until it ends; return why it ended."""
        self.transition(State.STARTING)
        await self._free_port()
        argv = spec.start_argv()
        self.log.forget_output()
        if spec.home is not None:
            written = await asyncio.to_thread(private_home.write_files, spec.home,
                                            spec.provider.files)
            self.log.note(f"HOME is {spec.home}"
                          + (f"; wrote {', '.join(written)}" if written else ""))
        child = await spawn(argv, cwd=spec.cwd, env=spec.env(run=True), log=self.log)
        self.child = child
        await asyncio.to_thread(leftovers.record, self.shared.state_dir, self.name, child.pid,
                                child.create_time, self.provider.port)
        shown = self.provider.shown_argv(argv)
        self.log.note(f"started pid {child.pid}: {' '.join(shown)} (in {spec.cwd})")
        watch = Watch(self.provider, self.shared.settings, child, self.shared.get_prober(),
                      TreeSampler(child.pid), self._observe)
        ended = await watch.run()
        self.log.note(ended)
        await self._end_child(child, self.shared.settings.stop_grace)
        return ended

    async def _end_child(self, child: Child, grace: float) -> None:
        """Stop the tree (what is left of it), forget its record, clear its numbers."""
        belongs = leftovers.ours(self.shared.state_dir, self.name)
        survivors = await stop_tree(child, grace, self.provider.port, belongs=belongs)
        if survivors:
            self.log.note(f"could not kill pids {survivors}")
            log.error("%s: pids %s survived SIGKILL", self.name, survivors)
        await asyncio.to_thread(leftovers.forget, self.shared.state_dir, self.name)
        if self.child is child:
            self.child = None
        self.cpu_percent = self.rss_bytes = None

    async def _free_port(self) -> None:
        """Make sure the port is free: kill a leftover of an earlier run, else fail."""
        port, state_dir = self.provider.port, self.shared.state_dir
        if port_is_free(port) or await wait_port_free(port, 1.0):
            return  # (a process that is just exiting gets a moment to let go)
        holder = await asyncio.to_thread(leftovers.holder, port)
        if holder is not None and await asyncio.to_thread(leftovers.is_leftover, holder,
                                                          state_dir):
            self.log.note(f"port {port} is held by a leftover of an earlier run: killing it")
            await leftovers.terminate([holder], 3.0)
            if await wait_port_free(port, 5.0):
                return
        raise CannotRun(await asyncio.to_thread(leftovers.port_holder, port))

    def _observe(self, result: ProbeResult, state: State | None,
                 sample: TreeSample | None) -> None:
        """The watch reports a probe (and maybe a tree sample): record them and move
        ready ⇄ unhealthy as told."""
        self.probe_ok, self.probe_ms = result.ready, result.ms
        if sample is not None:
            self._record(sample)
        if state is State.READY:
            self.policy.on_ready()
        elif state is not None:
            self.policy.on_not_ready()
        if state is not None:  # leaving ready says why (the probe's reason) in last_error
            self.transition(state, None if result.ready else f"health probe: {result.describe()}")

    def _record(self, sample: TreeSample) -> None:
        self.cpu_percent, self.rss_bytes = round(sample.cpu_percent, 1), sample.rss_bytes
        warnings = port_warnings(self.provider.port, sample.listens)
        if warnings != self.warnings:
            self.warnings = warnings
            wrong = [w for w in warnings if "assigned" in w]
            if wrong:
                self.last_error = wrong[0]
            self.shared.on_change()

    def _say(self, line: str) -> None:
        self.log.note(line)
        self._progress(line)

    def _progress(self, line: str) -> None:
        if self.shared.progress is not None:
            self.shared.progress(self.name, line)
