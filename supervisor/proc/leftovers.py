"""What an earlier unigw run left behind, and who holds a port.

Every provider process is recorded in ``<state_dir>/run/providers/<name>.json`` (pid and
create time, so a recycled pid is never mistaken for it) and removed when it is stopped. Every
child also carries marker variables in its environment (``UNIGW_STATE_DIR`` and
``UNIGW_SUPERVISOR``, the owning supervisor's pid and create time), inherited by whatever it
starts. If unigw is killed without cleaning up, the next ``up`` finds these processes, by record
and by marker, and kills them before starting anything (:func:`kill_leftovers`); processes of a
supervisor that is still alive are never touched.

:func:`port_holder` says who holds a port, in the words shown to the user:
``port 8003 is in use by pid 4242 (python3)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from supervisor.proc.process import gone, snapshot, stop_tree

log = logging.getLogger("unigw.supervisor")

MARK_STATE = "UNIGW_STATE_DIR"
MARK_OWNER = "UNIGW_SUPERVISOR"
MARK_PROVIDER = "UNIGW_PROVIDER"
_SAME_TIME = 0.05  # create times read twice through psutil agree to far better than this


def records_dir(state_dir: Path) -> Path:
    return state_dir / "run" / "providers"


def owner_mark() -> str:
    """This process as an owner: ``"<pid>:<create_time>"``."""
    return f"{os.getpid()}:{psutil.Process().create_time():.3f}"


def marker_env(state_dir: Path, name: str) -> dict[str, str]:
    """The variables that mark a child (and its descendants) as ours."""
    return {MARK_STATE: str(state_dir), MARK_OWNER: owner_mark(), MARK_PROVIDER: name}


def record(state_dir: Path, name: str, pid: int, create_time: float, port: int) -> None:
    """Remember a running provider process (written atomically)."""
    folder = records_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    data = {"name": name, "pid": pid, "create_time": create_time, "port": port,
            "owner": owner_mark()}
    tmp = folder / f".{name}.json.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, folder / f"{name}.json")


def forget(state_dir: Path, name: str) -> None:
    """The recorded process has been stopped."""
    (records_dir(state_dir) / f"{name}.json").unlink(missing_ok=True)


def ours(state_dir: Path, name: str) -> Callable[[psutil.Process], bool]:
    """A test for processes this supervisor started for provider ``name`` (by marker)."""
    want = {MARK_STATE: str(state_dir), MARK_OWNER: owner_mark(), MARK_PROVIDER: name}

    def belongs(p: psutil.Process) -> bool:
        try:
            env = p.environ()
        except (psutil.Error, OSError):
            return False
        return all(env.get(k) == v for k, v in want.items())

    return belongs


def find_leftovers(state_dir: Path) -> list[psutil.Process]:
    """Processes of earlier, dead unigw runs with this state dir (blocking: scans /proc)."""
    found: dict[int, psutil.Process] = {}
    for rec in _records(state_dir):
        if _owner_alive(str(rec.get("owner", ""))):
            continue
        if _matches(rec.get("pid"), rec.get("create_time")):
            found.update({p.pid: p for p in snapshot(int(rec["pid"]))})
    for p in psutil.process_iter():
        if p.pid not in found and is_leftover(p, state_dir):
            found[p.pid] = p
    return [p for p in found.values() if not gone(p)]


def is_leftover(p: psutil.Process, state_dir: Path) -> bool:
    """Whether a process carries our state dir's marker and its supervisor is gone."""
    try:
        env = p.environ()
    except (psutil.Error, OSError):
        return False
    if env.get(MARK_STATE) != str(state_dir):
        return False
    return not _owner_alive(env.get(MARK_OWNER, ""))


async def kill_leftovers(state_dir: Path, grace: float = 3.0) -> list[str]:
    """Kill what earlier runs left (SIGTERM, then SIGKILL after ``grace``); describe each."""
    procs = await asyncio.to_thread(find_leftovers, state_dir)
    described = [_describe(p) for p in procs]
    await terminate(procs, grace)
    for rec in _records(state_dir):
        if not _owner_alive(str(rec.get("owner", ""))):
            forget(state_dir, str(rec.get("name")))
    return described  # the caller says what was killed: `up` in its log, `down` on stdout


async def terminate(procs: list[psutil.Process], grace: float) -> list[int]:
    """Stop these processes and what they started, all at once (:func:`stop_tree` on each
    one whose parent is not among them: SIGTERM, SIGKILL after ``grace``); the survivors."""
    pids = {p.pid for p in procs}
    roots = [p.pid for p in procs if _parent(p) not in pids]
    survivors = await asyncio.gather(*(stop_tree(pid, grace) for pid in roots))
    return sorted({pid for some in survivors for pid in some})


def _parent(p: psutil.Process) -> int | None:
    try:
        return p.ppid()
    except psutil.Error:
        return None


def holder(port: int) -> psutil.Process | None:
    """The process listening on (or else bound to) a TCP port, if psutil can see it."""
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return None
    mine = [c for c in conns if c.laddr and c.laddr.port == port and c.pid]
    mine.sort(key=lambda c: c.status != psutil.CONN_LISTEN)
    for c in mine:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(c.pid)
    return None


def port_holder(port: int) -> str:
    """Who holds ``port``, as a sentence: by pid and name when psutil can see it."""
    p = holder(port)
    if p is None:
        return f"port {port} is in use by another process"
    try:
        name = p.name()
    except psutil.Error:
        name = "?"
    return f"port {port} is in use by pid {p.pid} ({name})"


def _records(state_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(records_dir(state_dir).glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                out.append(data)
    return out


def _matches(pid: Any, create_time: Any) -> bool:
    """Whether ``pid`` is still the very process that was recorded."""
    try:
        p = psutil.Process(int(pid))
        return abs(p.create_time() - float(create_time)) < _SAME_TIME and not gone(p)
    except (psutil.Error, TypeError, ValueError):
        return False


def _owner_alive(mark: str) -> bool:
    """Whether the supervisor named by an owner mark still runs (this one always does)."""
    pid, _, created = mark.partition(":")
    if pid == str(os.getpid()):
        return True
    return _matches(pid, created)


def _describe(p: psutil.Process) -> str:
    """Pid, name and provider; never the command line, which may hold a secret."""
    try:
        name = p.name()
        provider = p.environ().get(MARK_PROVIDER)
    except (psutil.Error, OSError):
        return f"pid {p.pid}"
    return f"pid {p.pid} ({name})" + (f" of provider {provider}" if provider else "")
