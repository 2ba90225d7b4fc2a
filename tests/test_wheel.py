"""The wheel works on its own: built from this checkout, installed without `-e` into a fresh
virtual environment, its `unigw demo -d`, run from a folder that is not the checkout, serves
the dashboard and answers a chat. It uses the demo's fixed ports (7999, 8000-8013)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from supervisor.cli.commands import DEMO_FILE
from supervisor.config import loads
from supervisor.proc.leftovers import port_holder
from supervisor.proc.process import port_is_free

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("supervisor", "gateway")

#: What a build does not need: state, clones, caches and earlier build output. Building from a
#: copy keeps `build/` and `*.egg-info` out of the checkout, and a stale `build/lib` out of the
#: wheel.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".unigw", "apis", "build", "dist", "*.egg-info", "__pycache__", ".venv", "venv",
    ".*_cache", "test-artifacts",
)


@dataclass(frozen=True)
class Installed:
    """The built wheel and the virtual environment it was installed into."""

    wheel: Path
    venv: Path

    def bin(self, name: str) -> Path:
        return self.venv / ("Scripts" if os.name == "nt" else "bin") / name


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, args))}\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", base / "dist", source)
    (wheel,) = (base / "dist").glob("unigw-*.whl")
    venv = base / "venv"
    run(sys.executable, "-m", "venv", venv)  # no system site packages
    found = Installed(wheel, venv)
    started = time.monotonic()
    # dependencies from the registry; with no PYTHONPATH, which would show pip the checkout's
    # own metadata as "unigw already installed" and skip the wheel
    run(found.bin("python"), "-m", "pip", "install", wheel, env=_clean_env())
    print(f"pip install of the wheel and its dependencies: {time.monotonic() - started:.1f}s")
    return found


def test_the_wheel_holds_every_module_and_the_dashboard(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    frontend = {f"gateway/frontend/{p.name}" for p in (ROOT / "frontend").iterdir() if p.is_file()}
    assert modules - names == set(), "pyproject.toml's packages miss these"
    assert frontend - names == set(), "the dashboard's files are not package data"
    assert "supervisor/demo/demo.yaml" in names


def _demo_ports() -> list[int]:
    config = loads(DEMO_FILE.read_text(encoding="utf-8"), Path("demo.yaml"))
    return [config.gateway.port, *(p.port for p in config.providers)]


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """An empty folder that is not the checkout, with the demo's ports checked free."""
    taken = [port_holder(port) for port in _demo_ports() if not port_is_free(port)]
    if taken:
        pytest.fail("`unigw demo` needs 7999 and 8000-8013, but " + "; ".join(taken)
                    + ": stop what holds them (another `unigw demo`?) and run this again")
    assert ROOT not in tmp_path.parents
    return tmp_path


def _clean_env() -> dict[str, str]:
    """The environment without anything that would point the venv back at the checkout."""
    drop = {"PYTHONPATH", "PYTHONHOME", "UNIGW_CONFIG", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture
def demo(installed: Installed, elsewhere: Path) -> Iterator[str]:
    """`<venv>/bin/unigw demo -d` running in ``elsewhere``; `unigw down` afterwards, always."""
    unigw, env = installed.bin("unigw"), _clean_env()
    try:
        out = run(unigw, "demo", "-d", cwd=elsewhere, env=env, timeout=180)
        assert "unigw is running in the background" in out.stdout
        yield "http://127.0.0.1:7999"
    finally:
        subprocess.run([str(unigw), "down"], cwd=elsewhere, env=env, capture_output=True,
                       timeout=180)
    assert all(port_is_free(port) for port in _demo_ports())


def _wait_ready(client: httpx.Client, model: str, timeout: float = 120) -> None:
    """Until a provider that serves ``model`` is ready. The gateway's /health turns 200 at the
    first ready provider of any model, which may not be one of ``model``'s (a CI run asked
    while only others were ready and got the 503 that says so)."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = client.get("/providers").json()["providers"]
        if any(r["state"] == "ready" and model in r["models"] for r in rows):  # type: ignore[operator]
            return
        time.sleep(0.3)
    states = ", ".join(f"{r['name']}: {r['state']}" for r in rows)
    raise AssertionError(f"no provider of {model} was ready within {timeout}s ({states})")


def test_the_installed_wheel_serves_dashboard_and_chat_from_elsewhere(
    installed: Installed, elsewhere: Path, demo: str
) -> None:
    record = json.loads((elsewhere / ".unigw" / "run" / "instance.json").read_text())
    assert psutil.Process(record["pid"]).cmdline()[0].startswith(str(installed.venv))
    with httpx.Client(base_url=demo, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "/ui/app.js" in page.text
        script = client.get("/ui/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        _wait_ready(client, "GLM-4.5")
        body = {"model": "GLM-4.5", "messages": [{"role": "user", "content": "hello wheel"}]}
        answer = client.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "hello wheel"
