"""Installing a provider in its clone, once: per-runtime default steps, a stamp, timeouts.

Default steps, run in the provider's ``cwd`` (a provider's ``install:`` list replaces them):

=========  ===================================================================================
python     a virtual environment ``<state_dir>/venvs/<name>`` from the toolchain's interpreter
           (always), then ``pip install -r requirements.txt`` if that file exists
node       ``npm ci`` with a lockfile, else ``npm install`` (if there is a package.json)
go         ``go build``
deno       ``deno cache <entry>`` (the start command's script)
=========  ===================================================================================

A stamp, ``<state_dir>/stamps/<name>.json``, records what an install was made from: the
checked-out commit, the hashes of the dependency files, the expanded steps and the toolchain.
While it matches, nothing is installed again. Each step runs as a child in its own session with
its output in the provider's log, and is stopped (whole tree) when it exceeds the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supervisor.install.runspec import RunSpec
from supervisor.proc.logs import ProviderLog
from supervisor.proc.process import SpawnError, spawn, stop_tree, wait_exit

DEP_FILES = (
    "requirements.txt", "package.json", "package-lock.json", "npm-shrinkwrap.json",
    "yarn.lock", "pnpm-lock.yaml", "go.mod", "go.sum", "deno.json", "deno.jsonc", "deno.lock",
    "import_map.json",
)
PIP_FLAGS = ("--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--no-color")
_DENO_ENTRY = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".mts")
_VENV_MARK = ".unigw-python"


class InstallError(Exception):
    """An install step failed; ``str(exc)`` names the step and quotes its last output."""


def default_steps(spec: RunSpec) -> list[list[str]]:
    """The runtime's install commands for this provider (before placeholder expansion)."""
    runtime, cwd = spec.provider.runtime, spec.cwd
    if runtime == "python":
        if not (cwd / "requirements.txt").exists():
            return []
        return [["{python}", "-m", "pip", "install", *PIP_FLAGS, "-r", "requirements.txt"]]
    if runtime == "node":
        if not (cwd / "package.json").exists():
            return []
        locked = (cwd / "package-lock.json").exists() or (cwd / "npm-shrinkwrap.json").exists()
        return [["npm", "ci"] if locked else ["npm", "install"]]
    if runtime == "go":
        return [["go", "build"]]
    entry = next((a for a in reversed(spec.provider.start) if a.endswith(_DENO_ENTRY)), None)
    return [["deno", "cache", entry]] if entry else []


def steps(spec: RunSpec) -> list[list[str]]:
    """The install commands, expanded: the provider's own list, or the runtime's default."""
    raw = spec.provider.install
    chosen = [list(s) for s in raw] if raw is not None else default_steps(spec)
    return [spec.expand(s) for s in chosen]


def stamp_path(spec: RunSpec) -> Path:
    return spec.state_dir / "stamps" / f"{spec.provider.home}.json"  # instances share one


def stamp_of(spec: RunSpec, commit: str | None) -> dict[str, Any]:
    """What an install is made from; equal stamps mean the install is current."""
    deps = {}
    for name in DEP_FILES:
        path = spec.cwd / name
        if path.is_file():
            deps[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "ref": commit,
        "deps": deps,
        "steps": steps(spec),
        "toolchain": str(spec.toolchain.executable) if spec.toolchain else None,
        "venv": str(spec.venv) if spec.venv else None,
    }


def is_current(spec: RunSpec, stamp: dict[str, Any]) -> bool:
    """Whether the recorded stamp equals ``stamp`` and what it installed is still there."""
    if spec.venv is not None and not spec.python.exists():
        return False
    try:
        return json.loads(stamp_path(spec).read_text()) == stamp
    except (OSError, ValueError):
        return False


async def ensure_installed(
    spec: RunSpec, commit: str | None, log: ProviderLog, *, timeout: float,
    emit: Callable[[str], None],
) -> bool:
    """Install unless the stamp says it is current; return whether anything ran."""
    stamp = await asyncio.to_thread(stamp_of, spec, commit)
    if await asyncio.to_thread(is_current, spec, stamp):
        emit("install is current (stamp matches); skipping")
        return False
    stamp_path(spec).unlink(missing_ok=True)  # a half install must never look current
    if spec.venv is not None:
        await _ensure_venv(spec, log, timeout, emit)
    for argv in stamp["steps"]:
        emit(f"install: {' '.join(argv)}")
        await run_step(argv, spec, log, timeout)
    # Steps may write dependency files (npm writes a lockfile, go may update go.sum): stamp
    # what is there now, which is what the next check will see.
    stamp = await asyncio.to_thread(stamp_of, spec, commit)
    path = stamp_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stamp, indent=1))
    emit("installed")
    return True


async def _ensure_venv(spec: RunSpec, log: ProviderLog, timeout: float,
                       emit: Callable[[str], None]) -> None:
    """Create the virtual environment, or recreate it if it was built from another Python."""
    assert spec.venv is not None and spec.toolchain is not None
    base = str(spec.toolchain.executable)
    mark = spec.venv / _VENV_MARK
    with contextlib.suppress(OSError):
        if spec.python.exists() and mark.read_text() == base:
            return
    emit(f"creating virtual environment {spec.venv} with {base}")
    await asyncio.to_thread(shutil.rmtree, spec.venv, True)
    spec.venv.parent.mkdir(parents=True, exist_ok=True)
    await run_step([base, "-m", "venv", str(spec.venv)], spec, log, timeout)
    mark.write_text(base)


async def run_step(argv: list[str], spec: RunSpec, log: ProviderLog, timeout: float) -> None:
    """Run one command to completion; raise :class:`InstallError` on failure or timeout."""
    log.forget_output()
    if not spec.cwd.is_dir():
        raise InstallError(f"install failed: folder {spec.cwd} does not exist")
    try:
        child = await spawn(argv, cwd=spec.cwd, env=spec.env(run=False), log=log)
    except SpawnError as exc:
        raise InstallError(f"install failed: {exc}") from None
    timed_out = False
    try:
        timed_out = not await wait_exit(child, timeout)
    finally:
        if child.returncode is None or timed_out:
            await stop_tree(child, grace=5.0)  # timed out or cancelled: end the whole tree
        else:
            await stop_tree(child, grace=0.5)  # reap anything the step left running
    code = child.returncode
    if timed_out or code != 0:
        why = f"timed out after {timeout:g}s" if timed_out else f"exited with code {code}"
        tail = " | ".join(log.last_lines(5))
        log.note(f"install step {why}")
        quoted = f"`{' '.join(argv)}` {why}" + (f": {tail}" if tail else "")
        raise InstallError(f"install failed: {quoted}")
