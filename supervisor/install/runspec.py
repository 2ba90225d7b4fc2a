"""How one provider is run: its folder, interpreter, argv (placeholders filled) and environment.

A :class:`RunSpec` is computed once the toolchain is known and before anything is installed;
the install steps and the start command are both expanded through it, so ``{python}``,
``{venv}``, ``{bin}``, ``{dir}`` and ``{port}`` mean the same thing in both.

- A **local** provider (``repo`` unset) runs from the config file's folder. With runtime python
  it runs on unigw's own interpreter (``sys.executable``): no virtual environment, no install.
- A cloned **python** provider gets its own virtual environment, ``<state_dir>/venvs/<name>``,
  built from the toolchain's interpreter; ``{python}`` is that environment's interpreter.
- The instances of a provider with ``instances:`` (``NAME#1``, …) share its clone
  (``apis/NAME``), virtual environment and install (``ProviderConfig.home``).
- For node, go and deno, ``argv[0]`` naming the tool (``go``, ``deno``, ``node``, ``npm``,
  ``npx``) is resolved through the toolchain, whose folder is also put first on ``PATH``.
- A provider with ``files:`` runs with ``HOME`` (and the XDG folders) in its private home,
  ``<state_dir>/homes/<name>`` (:mod:`supervisor.proc.private_home`); its install steps do not: npm,
  pip and go keep their caches in the user's HOME.

A child's environment is built, not inherited: :mod:`supervisor.proc.env` says from what.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from supervisor.config import Config, ProviderConfig
from supervisor.install.toolchains import Toolchain
from supervisor.proc.env import ordinary_env
from supervisor.proc.leftovers import marker_env
from supervisor.proc.private_home import home_env

TOOLS = ("go", "deno", "node", "npm", "npx")

_PLACEHOLDER = re.compile(r"(?<!\$)\{(port|python|venv|bin|dir)\}")


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to install and start one provider."""

    provider: ProviderConfig
    state_dir: Path
    cwd: Path
    clone_dir: Path | None
    python: Path
    venv: Path | None
    toolchain: Toolchain | None
    home: Path | None = None  # its private HOME while it runs (a provider with files:)

    @property
    def bin_dir(self) -> Path:
        if self.venv is not None:
            return self.venv / "bin"
        if self.toolchain is not None and self.provider.runtime != "python":
            return self.toolchain.executable.parent
        return self.python.parent

    def placeholders(self) -> dict[str, str]:
        return {
            "port": str(self.provider.port),
            "python": str(self.python),
            "venv": str(self.venv or sys.prefix),
            "bin": str(self.bin_dir),
            "dir": str(self.cwd),
        }

    def expand(self, argv: Sequence[str], secret_args: frozenset[int] = frozenset()) -> list[str]:
        """Fill placeholders (never inside secret values) and resolve a tool's argv[0]."""
        values = self.placeholders()
        out = [
            a if i in secret_args else _PLACEHOLDER.sub(lambda m: values[m.group(1)], a)
            for i, a in enumerate(argv)
        ]
        if out and out[0] in TOOLS and self.toolchain is not None:
            out[0] = str(self._tool(out[0]))
        return out

    def start_argv(self) -> list[str]:
        return self.expand(self.provider.start, self.provider.secret_args)

    def _tool(self, name: str) -> Path | str:
        exe = self.toolchain.executable if self.toolchain else None
        if exe is None:
            return name
        if exe.name == name:
            return exe
        sibling = exe.parent / name
        return sibling if sibling.exists() else name

    def env(self, *, run: bool) -> dict[str, str]:
        """The child's environment: ordinary variables + toolchain's + its port, private home
        and env (run)."""
        env = ordinary_env(registries=not run or self.provider.runtime == "deno")
        if self.provider.local and self.provider.runtime == "python" and "PYTHONPATH" in os.environ:
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # it runs where unigw runs
        if self.toolchain is not None:
            env.update(self.toolchain.env)
        front = [str(self.bin_dir)]
        if self.toolchain is not None and self.toolchain.executable.parent != self.bin_dir:
            front.append(str(self.toolchain.executable.parent))
        env["PATH"] = os.pathsep.join([*front, env.get("PATH", os.defpath)])
        if self.venv is not None:
            env["VIRTUAL_ENV"] = str(self.venv)
        if self.provider.runtime == "python":
            env["PYTHONUNBUFFERED"] = "1"  # output reaches the log as it is printed
        if run:
            port = str(self.provider.port)
            env.update(PORT=port, SERVER_PORT=port, LISTEN_PORT=port)
            if self.home is not None:
                env.update(home_env(self.home))
            env.update(self.provider.env)
        env.update(marker_env(self.state_dir, self.provider.name))
        return env


def build(
    provider: ProviderConfig, config: Config, toolchain: Toolchain | None, state_dir: Path,
    apis_dir: Path,
) -> RunSpec:
    """The run spec of a provider, given its toolchain (None: a local provider on our Python)."""
    if provider.local:
        clone_dir, cwd = None, config.base_dir / provider.cwd
    else:
        clone_dir = apis_dir / provider.home  # instances share one clone
        cwd = clone_dir / provider.cwd
    venv = None
    if provider.runtime == "python" and toolchain is not None and not provider.local:
        venv = state_dir / "venvs" / provider.home
        python = venv / "bin" / "python"
    elif provider.runtime == "python" and toolchain is not None:
        python = toolchain.executable
    else:
        python = Path(sys.executable)
    home = state_dir / "homes" / provider.name if provider.files else None  # per instance
    return RunSpec(provider, state_dir, cwd, clone_dir, python, venv, toolchain, home)
