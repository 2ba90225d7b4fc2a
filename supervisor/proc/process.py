"""Child processes: spawn one in its own session, read its output, stop its whole tree.

A provider is started with an argv list (never a shell) as the leader of a new session and
process group (``start_new_session=True``), so one signal to the group reaches everything it
started, and a Ctrl-C in unigw's terminal does not reach it directly. Its stdout and stderr share
one pipe, read by an asyncio task into the provider's
:class:`~supervisor.proc.logs.ProviderLog`; the event loop never waits on a child.

:func:`stop_tree` is the one way a process tree ends: a provider's, an install step's, a
toolchain installer's, a git clone's, or a leftover of an earlier run. It also finds what
escaped the group: the leader's descendants (``psutil`` ``children(recursive=True)``) and any
process left in its session or group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from supervisor.proc import listens
from supervisor.proc.logs import ProviderLog

READ_CHUNK = 65536
_POLL = 0.05


class SpawnError(Exception):
    """The program could not be executed at all (not found, not executable)."""


@dataclass
class Child:
    """One running process tree, led by ``proc``, with the task pumping its output."""

    proc: asyncio.subprocess.Process
    create_time: float
    started: float
    pump: asyncio.Task[None]
    exited: asyncio.Future[None] | None = None  # done once the leader has exited (see spawn)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode


async def spawn(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: ProviderLog
) -> Child:
    """Start ``argv`` in a new session with its output going to ``log``."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(cwd),
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise SpawnError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        create_time = time.time()
    assert proc.stdout is not None
    pump = asyncio.create_task(_pump(proc.stdout, log), name=f"log-pump-{proc.pid}")
    return Child(proc=proc, create_time=create_time, started=time.monotonic(), pump=pump,
                 exited=_exit_signal(proc.pid))


def _exit_signal(pid: int) -> asyncio.Future[None] | None:
    """A future done the moment ``pid`` exits (a pidfd in the loop); None without pidfds
    (not Linux 5.3+). Opened right after the spawn, before asyncio can reap the child, so the
    pid is still the child's; the pidfd is closed when it fires."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, readable)
    return exited


async def _pump(stream: asyncio.StreamReader, log: ProviderLog) -> None:
    """Copy the child's output into its log until the pipe closes; never stall the child."""
    try:
        while chunk := await stream.read(READ_CHUNK):
            with contextlib.suppress(OSError):  # a full disk must not block the child:
                log.write(chunk)  # drop the output, keep draining
    finally:
        with contextlib.suppress(OSError):
            log.end_output()  # the unfinished last line (cancelled or not)


Belongs = Callable[[psutil.Process], bool]


async def wait_exit(child: Child, timeout: float | None = None) -> bool:
    """Until the leader has exited (True) or ``timeout`` passed (False).

    Not ``proc.wait()`` alone: asyncio wakes that only once the output pipe closes too, and a
    grandchild may hold the pipe open long after the leader died. On Linux the child's pidfd
    (``child.exited``) wakes the loop the moment the leader exits, so a watch costs no timer
    ticks while it waits; asyncio reaps the child (and sets ``returncode``) an instant later,
    which a short poll then sees.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    poll = _POLL * 2
    exited = child.exited
    if child.returncode is None and exited is not None:
        if not exited.done():
            await asyncio.wait({exited}, timeout=timeout)  # (unlike wait_for, cancels nothing)
            if not exited.done():
                return child.returncode is not None
        poll = _POLL / 10  # it has exited: the reaping is a moment away
    waiter = asyncio.ensure_future(child.proc.wait())
    try:
        while child.returncode is None:
            step = poll
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    return False
            await asyncio.wait({waiter}, timeout=step)
        return True
    finally:
        waiter.cancel()


def snapshot(pid: int, belongs: Belongs | None = None) -> list[psutil.Process]:
    """The leader, its descendants, every process in its session or group, and every process
    for which ``belongs`` is true (such as one that double-forked out of the tree). Blocking."""
    found: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        leader = psutil.Process(pid)
        found[pid] = leader
        for p in leader.children(recursive=True):
            found[p.pid] = p
    for p in psutil.process_iter():
        if p.pid in found or p.pid == os.getpid():
            continue
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(p.pid) == pid or os.getpgid(p.pid) == pid:
                found[p.pid] = p
            elif belongs is not None and belongs(p):
                found[p.pid] = p
    return [p for p in found.values() if not gone(p)]


def gone(p: psutil.Process) -> bool:
    """True once a process has exited (a zombie counts as exited: it holds nothing)."""
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


async def stop_tree(
    leader: Child | int,
    grace: float,
    port: int | None = None,
    *,
    belongs: Belongs | None = None,
    port_wait: float = 5.0,
) -> list[int]:
    """Stop a process and everything it started; return the pids that would not die.

    ``leader`` is a :class:`Child` (reaped, and its log pipe closed, here) or the pid of any
    other process (whoever started it reaps it). A ``grace`` of 0 kills at once, without
    SIGTERM. ``belongs`` also claims processes found outside the tree (see :func:`snapshot`).
    """
    child = leader if isinstance(leader, Child) else None
    pid = leader.pid if isinstance(leader, Child) else leader
    # 1. Snapshot the tree first: once the leader dies its children are re-parented to init
    #    and can no longer be found through it.
    procs = await asyncio.to_thread(snapshot, pid, belongs)
    if grace > 0:
        # 2. SIGTERM the process group, and the members that left the group, to let them clean
        #    up.
        _signal_all(pid, procs, signal.SIGTERM)
        # 3. Wait up to the grace period for the leader and the whole tree to exit.
        await _wait_gone(child, procs, grace)
    # 4. SIGKILL the group and every survivor, including anything started during the grace.
    procs = _merge(procs, await asyncio.to_thread(snapshot, pid, belongs))
    _signal_all(pid, procs, signal.SIGKILL)
    # 5. Reap the leader and wait until every killed process is really gone.
    await _wait_gone(child, procs, 5.0)
    # 6. Wait until the port is free (the kernel releases it once no process holds it).
    if port is not None:
        await wait_port_free(port, port_wait)
    # 7. Close the log pipe: let the pump drain what is left; something that escaped the tree
    #    while keeping the pipe open must not keep us waiting.
    if child is not None:
        await close_pump(child)
    return [p.pid for p in procs if not gone(p)]


def _signal_all(pgid: int, procs: list[psutil.Process], sig: signal.Signals) -> None:
    """Signal the group (only if it verifiably still exists) and each listed process."""
    if any(_pgid(p) == pgid for p in procs):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)


def _pgid(p: psutil.Process) -> int | None:
    try:
        return None if gone(p) else os.getpgid(p.pid)
    except OSError:
        return None


def _merge(a: list[psutil.Process], b: list[psutil.Process]) -> list[psutil.Process]:
    seen = {p.pid for p in a}
    return a + [p for p in b if p.pid not in seen]


async def _wait_gone(child: Child | None, procs: list[psutil.Process], timeout: float) -> bool:
    """Wait until the leader (if it is our child) is reaped and every listed process is gone."""
    deadline = time.monotonic() + timeout
    if child is not None and not await wait_exit(child, timeout):
        return False
    while not all(gone(p) for p in procs):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL)
    return True


async def close_pump(child: Child, timeout: float = 2.0) -> None:
    """Wait for the output pump to finish, cancelling it after ``timeout``.

    With ``asyncio.wait``, which cancels nothing and swallows nothing: a cancel of the caller
    (a stop of the provider whose lifecycle task is here after an exit) goes on up, where a
    suppressed CancelledError once let that task carry on and restart the provider."""
    await asyncio.wait({child.pump}, timeout=timeout)
    if not child.pump.done():
        child.pump.cancel()
        await asyncio.wait({child.pump})
    if not child.pump.cancelled():
        child.pump.result()  # (an error of the pump's own is raised, as before)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if ``host:port`` can be bound now (a listener on any address makes it busy).

    SO_REUSEADDR is set as servers set it, so a port whose last connections linger in
    TIME_WAIT counts as free, as it is for the server about to bind it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


async def wait_port_free(port: int, timeout: float) -> bool:
    """Poll until the port can be bound, up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not port_is_free(port):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL * 2)
    return True


@dataclass
class TreeSample:
    """CPU, memory and listening sockets of a whole process tree, at one moment."""

    cpu_percent: float = 0.0
    rss_bytes: int = 0
    listens: set[tuple[str, int]] = field(default_factory=set)
    pids: list[int] = field(default_factory=list)


class TreeSampler:
    """Samples a tree; keeps psutil objects between calls so cpu_percent measures an interval.

    Measured with 77 processes on the machine, between other work (cold caches): CPU and
    memory of a known process cost 0.5 ms, its listening sockets
    (:func:`supervisor.proc.listens.listening`) 0.5 ms, and finding the descendants 1.5 ms
    (psutil reads every process's stat, so more on a busy desktop). The descendants and the
    sockets are read for the first :attr:`SCANS_FIRST` samples and until it listens (a tree
    grows and binds while it starts), then every :attr:`SCAN_EVERY` seconds; between scans
    only the known processes' CPU and memory are (the ones that exited dropped), and the
    sockets last seen are reported.
    """

    SCANS_FIRST = 3
    SCAN_EVERY = 60.0

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._procs: dict[int, psutil.Process] = {}
        self._scans = 0
        self._scanned_at = float("-inf")
        self._listens: set[tuple[str, int]] = set()

    def sample(self) -> TreeSample:
        """Blocking (reads /proc): call it through ``asyncio.to_thread``."""
        out = TreeSample()
        now = time.monotonic()
        scan = (self._scans < self.SCANS_FIRST or not self._listens
                or now - self._scanned_at >= self.SCAN_EVERY)
        if scan:
            try:
                leader = self._procs.get(self.pid) or psutil.Process(self.pid)
                current = [leader, *leader.children(recursive=True)]
            except psutil.Error:
                return out
            self._procs = {p.pid: self._procs.get(p.pid, p) for p in current}
            self._scans, self._scanned_at = self._scans + 1, now
        alive = {}
        for pid, p in self._procs.items():
            with contextlib.suppress(psutil.Error):
                if not p.is_running():  # (checks the create time: a reused pid is not ours)
                    continue
                with p.oneshot():
                    out.cpu_percent += p.cpu_percent(None)
                    out.rss_bytes += p.memory_info().rss
                alive[pid] = p
                out.pids.append(pid)
        self._procs = alive
        if scan:
            self._listens = listens.listening(out.pids)
        out.listens = set(self._listens)
        return out
