"""The record of a running unigw instance: ``<state_dir>/run/instance.json``.

It holds the pid of the ``unigw up``/``demo`` process, its create time (so a recycled pid is
never taken for it) and the gateway's URL; the control commands find the instance through it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from supervisor.proc.process import gone


@dataclass(frozen=True)
class Instance:
    """A running (or crashed) unigw process and where its gateway listens."""

    pid: int
    create_time: float
    url: str
    config: str

    @property
    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            # gone() counts a zombie as dead: killed, and nobody left to reap it
            return proc.create_time() == self.create_time and not gone(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False


def path_for(state_dir: Path) -> Path:
    return state_dir / "run" / "instance.json"


def write(state_dir: Path, url: str, config: Path) -> Instance:
    """Record this process as the running instance (atomically)."""
    me = psutil.Process(os.getpid())
    inst = Instance(pid=me.pid, create_time=me.create_time(), url=url, config=str(config))
    target = path_for(state_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(inst)), encoding="utf-8")
    tmp.replace(target)
    return inst


def read(state_dir: Path) -> Instance | None:
    """The recorded instance, alive or not; None when there is no readable record."""
    try:
        data = json.loads(path_for(state_dir).read_text(encoding="utf-8"))
        return Instance(**data)
    except (OSError, ValueError, TypeError):
        return None


def running(state_dir: Path) -> Instance | None:
    """The recorded instance if its process is still alive."""
    inst = read(state_dir)
    return inst if inst is not None and inst.alive else None


def remove(state_dir: Path) -> None:
    """Forget the record if it is this process's own."""
    inst = read(state_dir)
    if inst is not None and inst.pid == os.getpid():
        path_for(state_dir).unlink(missing_ok=True)
