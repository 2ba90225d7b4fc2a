"""Helpers for the supervisor tests: fast configs, echo providers, git repos, cleanup.

Every test writes its own providers.yaml into ``tmp_path`` (state in ``tmp_path/.unigw``),
with timings small enough for the whole suite to run in a few minutes, and runs a real
:class:`~supervisor.lifecycle.manager.Supervisor` on real processes, sockets and git repositories.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
import yaml
from support.echo import REPO_ROOT, free_port

from supervisor.config import Config, load
from supervisor.lifecycle.manager import Supervisor
from supervisor.proc.leftovers import MARK_STATE

__all__ = ["free_port", "REPO_ROOT"]

FAST: dict[str, Any] = {
    "probe_interval": 0.2,
    "probe_timeout": 1.0,
    "startup_grace": 5,
    "liveness_failures": 3,
    "backoff_initial": 0.2,
    "backoff_max": 1,
    "backoff_reset_after": 30,
    "crash_loop_max": 4,
    "crash_loop_window": 60,
    "crash_loop_max_delay": 1.5,
    "failed_cooldown": 600,
    "stop_grace": 1,
    "clone_timeout": 60,
    "install_timeout": 120,
    "toolchain_bootstrap": False,
}


def echo(name: str, port: int, *args: str, **fields: Any) -> dict[str, Any]:
    """A local provider running unigw's echo server on unigw's own Python."""
    start = ["{python}", "-m", "supervisor.demo.echo", "--port", "{port}", *args]
    return {"name": name, "port": port, "runtime": "python", "start": start,
            "health": "/health", **fields}


def script(name: str, port: int, path: str, **fields: Any) -> dict[str, Any]:
    """A local provider running a Python script (from the config's folder)."""
    return {"name": name, "port": port, "runtime": "python", "start": ["{python}", path],
            "health": "/health", **fields}


def write_config(folder: Path, providers: Sequence[dict[str, Any]], **settings: Any) -> Config:
    """Write providers.yaml into ``folder`` with fast timings (overridable) and load it."""
    data = {
        "gateway": {"port": free_port()},
        "supervisor": {**FAST, **settings},
        "providers": list(providers),
    }
    path = folder / "providers.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load(path)


def run(
    config: Config,
    body: Callable[[Supervisor], Awaitable[None]],
    *,
    up: bool = True,
    timeout: float = 90,
    **kwargs: Any,
) -> None:
    """Run ``body(sup)`` on a fresh event loop, always ending with ``sup.down()``."""

    async def main() -> None:
        sup = Supervisor(config, **kwargs)
        try:
            if up:
                await sup.up()
            await asyncio.wait_for(body(sup), timeout)
        finally:
            await sup.down()

    asyncio.run(main())


def row(sup: Supervisor, name: str) -> dict[str, Any]:
    return next(r for r in sup.status() if r.name == name)


async def until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Poll ``cond`` every 50 ms; fail the test if it stays false for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.05)


async def until_state(sup: Supervisor, name: str, state: str, timeout: float = 15.0) -> None:
    await until(lambda: row(sup, name).state == state, timeout,
                f"{name} to be {state} (status: {row(sup, name)})")


def kill_marked(state_dir: Path) -> None:
    """Kill every process that carries this state dir's marker (test finalizer)."""
    for p in psutil.process_iter():
        try:
            if p.environ().get(MARK_STATE) == str(state_dir):
                p.kill()
        except (psutil.Error, OSError):
            continue


def marked_alive(state_dir: Path) -> list[int]:
    """Pids still alive (not zombies) that carry this state dir's marker."""
    out = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(MARK_STATE) == str(state_dir) and p.status() != "zombie":
                out.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return out


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True)
    return done.stdout.strip()


SERVER_PY = """\
import tinydep  # installed into the provider's venv from requirements.txt
print("server.py: tinydep says", tinydep.VALUE, flush=True)
from supervisor.demo.echo import main
main()
"""


def make_wheel(folder: Path) -> Path:
    """A tiny pure-Python wheel (package ``tinydep``), so pip installs offline."""
    files = {
        "tinydep/__init__.py": b'VALUE = "tinydep-ok"\n',
        "unigw_tinydep-0.1.dist-info/METADATA":
            b"Metadata-Version: 2.1\nName: unigw-tinydep\nVersion: 0.1\n",
        "unigw_tinydep-0.1.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: unigw-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("unigw_tinydep-0.1.dist-info/RECORD,,")
    files["unigw_tinydep-0.1.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "unigw_tinydep-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def make_echo_repo(folder: Path) -> tuple[str, str]:
    """A git repo with the echo provider and a requirements.txt; (file:// url, pinned sha).

    A second commit after the pinned one breaks server.py, so a clone that ignored the ref
    would not run.
    """
    folder.mkdir(parents=True)
    git(folder, "init", "-q")
    make_wheel(folder / "wheels")
    (folder / "requirements.txt").write_text("./wheels/unigw_tinydep-0.1-py3-none-any.whl\n")
    (folder / "server.py").write_text(SERVER_PY)
    git(folder, "add", ".")
    git(folder, "commit", "-qm", "echo provider")
    sha = git(folder, "rev-parse", "HEAD")
    (folder / "server.py").write_text("raise SystemExit('not the pinned commit')\n")
    git(folder, "commit", "-qam", "later, broken")
    return folder.as_uri(), sha


def repo_provider(name: str, port: int, url: str, ref: str, **fields: Any) -> dict[str, Any]:
    """A cloned python provider; PYTHONPATH lets its venv import unigw's echo and uvicorn."""
    site = next(p for p in sys.path if p.endswith("site-packages"))
    env = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), site])}
    return {"name": name, "port": port, "runtime": "python", "repo": url, "ref": ref,
            "start": ["{python}", "server.py"], "health": "/health", "env": env, **fields}
