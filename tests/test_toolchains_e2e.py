"""Providers that need a toolchain the machine lacks: clone → bootstrapped build → start → ready.

PATH holds only node, npm, git and sh: no go, no deno. Each provider is a tiny server written
into a local git repository. All tests share one state folder (the
``toolchain_state`` fixture of conftest.py), so Go and Deno are installed once per run and Go's build cache
stays warm; provider names differ per test so their stamps, venvs and logs do not meet.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.echo import free_port
from support.toolchains import BASICS, make_config, tools_only_path

from supervisor.config import Config
from supervisor.install import toolchains
from supervisor.lifecycle.manager import Supervisor
from supervisor.proc.logs import log_path
from supervisor.view import State

SETTLE = 150.0  # a cold Go build of net/http takes about 30 s

GO_SERVER = """\
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	host := os.Getenv("BIND")
	if host == "" {
		host = "127.0.0.1"
	}
	http.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "tiny go")
	})
	if err := http.ListenAndServe(host+":"+os.Getenv("PORT"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
"""

DENO_SERVER = """\
const hostname = Deno.env.get("BIND") ?? "127.0.0.1";
const port = Number(Deno.env.get("PORT"));
Deno.serve({ hostname, port }, (_req: Request) => new Response("tiny deno"));
"""

PY_SERVER = """\
import http.server, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = "{}.{}".format(*sys.version_info[:2]).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture
def state_dir(toolchain_state: tuple[Config, list[str]]) -> Path:
    return toolchain_state[0].state_dir  # conftest: Go and Deno, bootstrapped once per run


@pytest.fixture(autouse=True)
def no_go_no_deno(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", tools_only_path(tmp_path / "bin", *BASICS))
    assert shutil.which("go") is None and shutil.which("deno") is None


def git_repo(folder: Path, files: dict[str, str]) -> str:
    """A local git repository holding ``files`` in one commit; returns the commit."""
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)

    def git(*args: str) -> str:
        ident = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
        done = subprocess.run(["git", *ident, *args], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "tiny server")
    return git("rev-parse", "HEAD")


def go_provider(tmp_path: Path, name: str, port: int, env: str = "{}") -> str:
    repo = tmp_path / "repos" / name
    sha = git_repo(repo, {"go.mod": "module example.com/tinygo\n\ngo 1.23\n", "main.go": GO_SERVER})
    return (
        f"  - {{name: {name}, port: {port}, runtime: go, repo: '{repo}', ref: {sha},"
        f" start: ['{{dir}}/tinygo'], health: /health, env: {env}}}\n"
    )


def deno_provider(tmp_path: Path, name: str, port: int, env: str = "{}") -> str:
    repo = tmp_path / "repos" / name
    sha = git_repo(repo, {"main.ts": DENO_SERVER})
    start = "[deno, run, --allow-net, --allow-env, main.ts]"
    return (
        f"  - {{name: {name}, port: {port}, runtime: deno, repo: '{repo}', ref: {sha},"
        f" start: {start}, health: /health, env: {env}}}\n"
    )


def python_provider(tmp_path: Path, name: str, port: int, want: str) -> str:
    repo = tmp_path / "repos" / name
    sha = git_repo(repo, {"server.py": PY_SERVER})
    return (
        f"  - {{name: {name}, port: {port}, runtime: python, python: '{want}', repo: '{repo}',"
        f" ref: {sha}, start: ['{{python}}', server.py], health: /}}\n"
    )


def config_for(tmp_path: Path, state_dir: Path, providers: str) -> Config:
    sup = f"  apis_dir: {tmp_path / 'apis'}\n  probe_interval: 0.3\n  stop_grace: 3"
    return make_config(tmp_path, providers, sup, state_dir=str(state_dir))


def run_up(config: Config, then: Callable[[Supervisor], Awaitable[Any]] | None = None) -> Any:
    """``up``, wait until settled, run ``then`` (or take the rows), and always ``down``."""

    async def main() -> Any:
        sup = Supervisor(config)
        try:
            await sup.up()
            assert await sup.wait_settled(SETTLE), sup.status()
            return await then(sup) if then else sup.status()
        finally:
            await sup.down()

    return asyncio.run(main())


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r.name: r for r in rows}


def answer(port: int, path: str = "/health") -> str:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).text


def test_go_provider_builds_with_bootstrapped_go_and_becomes_ready(
    tmp_path: Path, state_dir: Path
) -> None:
    port = free_port()
    config = config_for(tmp_path, state_dir, go_provider(tmp_path, "tiny-go", port))

    async def check(sup: Supervisor) -> tuple[dict[str, Any], str, list[str]]:
        return sup.status()[0], await asyncio.to_thread(answer, port), sup.log_tail("tiny-go", 400)

    row, text, logs = run_up(config, check)
    assert row.state is State.READY, row
    assert text == "tiny go"
    assert (tmp_path / "apis" / "tiny-go" / "tinygo").is_file()
    assert any("using go 1.25.5 bootstrapped at" in line for line in logs or [])


def test_deno_provider_runs_on_bootstrapped_deno_and_becomes_ready(
    tmp_path: Path, state_dir: Path
) -> None:
    port = free_port()
    config = config_for(tmp_path, state_dir, deno_provider(tmp_path, "tiny-deno", port))

    async def check(sup: Supervisor) -> tuple[dict[str, Any], str, list[str]]:
        return (
            sup.status()[0],
            await asyncio.to_thread(answer, port),
            sup.log_tail("tiny-deno", 400),
        )

    row, text, logs = run_up(config, check)
    assert row.state is State.READY, row
    assert text == "tiny deno"
    assert any("using deno 1.46.3 bootstrapped at" in line for line in logs or [])
    assert any((state_dir / "home" / "deno" / "cache").iterdir())


def _other_python(folder: Path) -> str:
    """A Python release on this machine, other than unigw's own if there is one."""
    own = "{}.{}".format(*sys.version_info[:2])
    for minor in range(20, 7, -1):
        want = f"3.{minor}"
        probe = f"  - {{name: p, port: 1, runtime: python, python: '{want}', start: [x]}}"
        config = make_config(folder / want, probe)
        if want != own and not toolchains.check_problems(config.providers[0], config):
            return want
    return own


def test_provider_gets_a_venv_on_the_python_it_names_or_fails_saying_why(
    tmp_path: Path, state_dir: Path
) -> None:
    want, good, bad = _other_python(tmp_path / "probe"), free_port(), free_port()
    providers = python_provider(tmp_path, "py-wanted", good, want)
    providers += python_provider(tmp_path, "py-absent", bad, "3.99")
    config = config_for(tmp_path, state_dir, providers)

    async def check(sup: Supervisor) -> tuple[dict[str, dict[str, Any]], str]:
        return by_name(sup.status()), await asyncio.to_thread(answer, good, "/")

    rows, served_by = run_up(config, check)
    assert rows["py-wanted"].state is State.READY, rows["py-wanted"]
    assert served_by == want
    venv_python = state_dir / "venvs" / "py-wanted" / "bin" / "python"
    version = subprocess.run(
        [str(venv_python), "-c", "import sys; print('{}.{}'.format(*sys.version_info[:2]))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == want
    assert rows["py-absent"].state is State.FAILED
    assert rows["py-absent"].last_error.startswith("needs Python 3.99; found ")


def test_second_up_reuses_toolchains_and_build(tmp_path: Path, state_dir: Path) -> None:
    go_port, deno_port = free_port(), free_port()
    providers = go_provider(tmp_path, "again-go", go_port)
    providers += deno_provider(tmp_path, "again-deno", deno_port)
    config = config_for(tmp_path, state_dir, providers)
    binary = tmp_path / "apis" / "again-go" / "tinygo"
    logs = [log_path(state_dir, name) for name in ("again-go", "again-deno")]
    first = run_up(config)
    assert {r.state for r in first} == {State.READY}, first
    built = binary.stat().st_mtime_ns
    toolchain_dirs = sorted(p.name for p in (state_dir / "toolchains").iterdir())
    offsets = [log.stat().st_size for log in logs]

    second = run_up(config)
    assert {r.state for r in second} == {State.READY}, second
    assert binary.stat().st_mtime_ns == built
    assert sorted(p.name for p in (state_dir / "toolchains").iterdir()) == toolchain_dirs
    for log, offset in zip(logs, offsets, strict=True):
        with log.open() as f:
            f.seek(offset)
            later = f.read()
        assert "install is current" in later and "bootstrapped at" in later
        assert "bootstrapping" not in later and "running go build" not in later


def test_server_bound_to_all_interfaces_gets_an_exposure_warning(
    tmp_path: Path, state_dir: Path
) -> None:
    port = free_port()
    providers = deno_provider(tmp_path, "open-deno", port, env="{BIND: 0.0.0.0}")
    config = config_for(tmp_path, state_dir, providers)

    async def warnings(sup: Supervisor) -> list[str]:
        deadline = time.monotonic() + 20
        while not sup.status()[0].warnings and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return list(sup.status()[0].warnings)

    assert run_up(config, warnings) == [f"listens on 0.0.0.0:{port}: exposed to the network"]
