"""A provider's private HOME: the folder a provider with ``files:`` runs in as ``$HOME``, and
the secret files written there before each start.

Some programs take a secret from no environment variable, only from a file under the user's
home: copilot-api reads its GitHub token from ``~/.local/share/copilot-api/github_token``
(``os.homedir()``, which is ``$HOME``; src/lib/paths.ts at v0.7.0), and the only other way in is
``--github-token`` on its command line, which every local user reads in ``/proc/PID/cmdline``.
So such a provider gets a home of its own, ``<state_dir>/homes/<name>`` (an instance
``NAME#2`` its own: one account each), and its ``files:`` are written there:

- before each start (a changed secret reaches the next process), each file atomically (a
  temporary file in its folder, then a rename) with mode 0600 from its first byte, in folders
  of mode 0700, its content exactly as resolved (no newline added: copilot-api does not strip
  one off its token);
- a file whose content resolves empty (``${GITHUB_TOKEN:-}`` unset) is not written, and one
  already there is kept: what the program wrote itself, such as the token copilot-api saves
  after its device login, survives the next start;
- a path whose folder leads out of the home (a symbolic link the program made) is refused.

The home is the *running* program's only: install steps keep the user's HOME, where npm, pip
and go keep their caches. ``XDG_DATA_HOME``, ``XDG_CONFIG_HOME``, ``XDG_CACHE_HOME`` and
``XDG_STATE_HOME`` point at the home's usual folders too, so a program that honours them finds
the same files (``files: {.config/app/token: ...}``) and writes nothing into the user's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from supervisor.config.secrets import write_private

XDG = {"XDG_DATA_HOME": ".local/share", "XDG_CONFIG_HOME": ".config",
       "XDG_CACHE_HOME": ".cache", "XDG_STATE_HOME": ".local/state"}


class HomeError(Exception):
    """A file of ``files:`` cannot be written; the message names it (never its content)."""


def home_env(home: Path) -> dict[str, str]:
    """The variables that make a program live in ``home``."""
    return {"HOME": str(home), **{k: str(home / sub) for k, sub in XDG.items()}}


def write_files(home: Path, files: Mapping[str, str]) -> list[str]:
    """Make ``home`` (0700, in a 0700 ``homes``) and write each non-empty file into it; return
    the paths written.

    Blocking (file I/O): call it through ``asyncio.to_thread``.
    """
    _private_dir(home.parent, home)
    written = []
    for rel, content in files.items():
        if not content:
            continue
        target = home / rel
        if not target.parent.resolve().is_relative_to(home.resolve()):
            raise HomeError(f"files: {rel}: its folder leads out of {home}")
        _private_dir(home, target.parent)
        try:
            write_private(target, content)
        except OSError as exc:
            raise HomeError(f"files: {rel}: cannot write it in {home}: "
                            f"{exc.strerror or exc}") from None
        written.append(rel)
    return written


def _private_dir(home: Path, folder: Path) -> None:
    """``folder`` and each folder from ``home`` down to it exist with mode 0700."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        rel = folder.relative_to(home)
        for depth in range(len(rel.parts) + 1):
            step = home.joinpath(*rel.parts[:depth])
            if not step.is_symlink():
                os.chmod(step, 0o700)
    except OSError as exc:
        raise HomeError(f"cannot make {folder}: {exc.strerror or exc}") from None
