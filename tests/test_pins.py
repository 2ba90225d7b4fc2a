"""Every pinned commit in the shipped providers.yaml holds what its install and start name.

The tests cannot reach GitHub, so the file list at each pin was read once and recorded in
``pinned_files.json`` beside this file (its ``about`` says where each list came from). A pin
change in providers.yaml fails :func:`test_every_pin_is_the_commit_whose_files_were_recorded`
until the list is read again at the new commit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from supervisor.config import ProviderConfig, load

ROOT = Path(__file__).resolve().parent.parent
RECORDED: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "pinned_files.json").read_text()
)["providers"]
PROVIDERS = {p.name: p for p in load(ROOT / "providers.yaml", environ={}).providers}
GONE = {"k2think2api2", "grok2api"}  # no longer public on GitHub (PROVIDERS.md #4, #6)
PRESENT = sorted(set(PROVIDERS) - GONE)
SCRIPTS = (".py", ".ts", ".js", ".mjs")
MODULE_APP = re.compile(r"^([A-Za-z_][\w.]*):[A-Za-z_]\w*$")  # main:app for uvicorn, granian


def _package(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _at(provider: ProviderConfig, path: str) -> str:
    """``path`` (relative to the provider's cwd) as a path in the repository."""
    return path if provider.cwd == "." else f"{provider.cwd}/{path}"


def _start_needs(provider: ProviderConfig) -> tuple[set[str], set[str]]:
    """The files (relative to cwd) and the Python packages its start command names."""
    files: set[str] = set()
    packages: set[str] = set()
    argv = list(provider.start)
    for i, arg in enumerate(argv):
        before = argv[i - 1] if i else ""
        if arg.startswith("{bin}/"):
            packages.add(_package(arg.removeprefix("{bin}/")))  # granian, flask
        elif before == "-m":
            packages.add(_package(arg))  # python -m uvicorn
        elif before == "--app":
            files.add(arg.replace(".", "/") + ".py")  # flask --app app
        elif (match := MODULE_APP.match(arg)) and provider.runtime == "python":
            files.add(match.group(1).replace(".", "/") + ".py")
        elif arg.endswith(SCRIPTS) and "{" not in arg:
            files.add(arg.removeprefix("./"))
    return files, packages


def _install_needs(provider: ProviderConfig) -> tuple[set[str], set[str] | None]:
    """Files its install steps read, and the packages they install (None: requirements.txt)."""
    if provider.install is None:
        if provider.runtime == "go":
            return {"go.mod"}, set()
        if provider.runtime == "node":
            return {"package.json"}, set()
        return set(), None  # python reads requirements.txt if it is there; deno caches the entry
    files: set[str] = set()
    packages: set[str] = set()
    for step in provider.install:
        if step[:1] == ("go",):
            files.add("go.mod")
        elif step[:1] == ("npm",):
            files.add("package.json")
        elif "pip" in step and "install" in step:
            args = step[step.index("install") + 1:]
            for i, arg in enumerate(args):
                if i and args[i - 1] == "-r":
                    files.add(arg)
                elif not arg.startswith("-"):
                    packages.add(_package(re.split(r"[\[<>=!~;]", arg, maxsplit=1)[0]))
    return files, packages


def _built(provider: ProviderConfig, recorded: dict[str, Any]) -> dict[str, str | None]:
    """Files the install makes (``go build -o NAME``, recorded bundler outputs)."""
    made: dict[str, str | None] = dict(recorded.get("built", {}))
    for step in provider.install or ():
        if step[:2] == ("go", "build") and "-o" in step:
            made[step[step.index("-o") + 1].removeprefix("./")] = None
    return made


def test_every_provider_in_providers_yaml_has_a_recorded_file_list() -> None:
    assert sorted(RECORDED) == sorted(PROVIDERS)
    assert {n for n, r in RECORDED.items() if r["source"] == "repository gone"} == GONE


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_every_pin_is_the_commit_whose_files_were_recorded(name: str) -> None:
    assert PROVIDERS[name].ref == RECORDED[name]["ref"], (
        f"{name}: providers.yaml pins {PROVIDERS[name].ref}, the file list in pinned_files.json "
        f"was read at {RECORDED[name]['ref']}: read it again at the new pin"
    )


@pytest.mark.parametrize("name", PRESENT)
def test_the_pinned_commit_holds_the_cwd_and_every_file_start_and_install_name(
    name: str,
) -> None:
    provider, recorded = PROVIDERS[name], RECORDED[name]
    files = set(recorded["files"])
    if provider.cwd != ".":
        assert any(f.startswith(provider.cwd + "/") for f in files), f"no folder {provider.cwd}"
    start_files, _ = _start_needs(provider)
    install_files, _ = _install_needs(provider)
    made = _built(provider, recorded)
    for path in sorted(start_files | install_files):
        if path in made:
            source = made[path]
            assert source is None or source in files, f"{name}: {path} is built from {source}, not at the pin"
            continue
        assert _at(provider, path) in files, f"{name}: {_at(provider, path)} is not at the pin"
    if provider.runtime == "go":  # go build compiles the package in cwd
        assert any(Path(f).parent == Path(provider.cwd) and f.endswith(".go") for f in files)
    for bundler in ("tsup", "tsdown"):
        if provider.runtime == "node" and any(bundler in step for step in provider.install or ()):
            assert any(f.startswith(f"{bundler}.config.") for f in files), (
                f"npx {bundler} needs its config")


@pytest.mark.parametrize("name", [n for n in PRESENT if PROVIDERS[n].runtime == "python"])
def test_the_install_provides_the_python_programs_and_imports_start_needs(name: str) -> None:
    provider, recorded = PROVIDERS[name], RECORDED[name]
    _, installed = _install_needs(provider)
    if installed is None:  # the default install: requirements.txt, where the pin has one
        if _at(provider, "requirements.txt") not in recorded["files"]:
            assert recorded["source"] == "mirror", (
                f"{name}: the file list is partial, so whether requirements.txt exists is "
                "unknown; give the provider an explicit install"
            )
        installed = {_package(n) for n in recorded.get("requirements", [])}
    _, programs = _start_needs(provider)
    needed = programs | {_package(n) for n in recorded.get("imports", [])}
    assert needed <= installed, f"{name}: nothing installs {sorted(needed - installed)}"


@pytest.mark.parametrize("name", sorted(GONE))
def test_a_provider_whose_repository_is_gone_says_so(name: str) -> None:
    """Its clone fails and is reported per provider (tests/test_cli_instance.py shows the
    ``failed: clone failed:`` line); its description and the README tell the user why."""
    assert "no longer public" in PROVIDERS[name].description
    row = next(ln for ln in (ROOT / "README.md").read_text().splitlines()
               if ln.startswith("| ") and f"| {name} |" in ln)
    assert "no longer public" in row
    assert RECORDED[name]["files"] == []
