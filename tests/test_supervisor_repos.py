"""Cloned providers: a real local git repository, cloned through GitPython at a pinned ref,
installed into its own virtual environment (pip, offline: the requirement is a local wheel),
started and probed; a second ``up`` reuses both; a bad repository fails alone.

The provider's env sets PYTHONPATH to unigw's source and site-packages, so the venv's Python
can import the echo server and uvicorn; tinydep (from requirements.txt) comes from the venv.
"""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import psutil
import pytest
from support.supervisor import (
    echo,
    free_port,
    git,
    make_echo_repo,
    marked_alive,
    repo_provider,
    row,
    run,
    until,
    until_state,
    write_config,
)

from supervisor.lifecycle.manager import Supervisor
from supervisor.view import State


def test_clone_install_and_run_at_the_pinned_ref_then_reuse_both(tmp_path: Path) -> None:
    url, sha = make_echo_repo(tmp_path / "src")
    config = write_config(tmp_path, [repo_provider("cloned", free_port(), url, sha)])
    progress: list[tuple[str, str]] = []

    async def first(sup: Supervisor) -> None:
        await until_state(sup, "cloned", "ready", 90)

    run(config, first, progress=lambda name, line: progress.append((name, line)))
    clone = config.apis_dir / "cloned"
    assert git(clone, "rev-parse", "HEAD") == sha
    venv_python = config.state_dir / "venvs" / "cloned" / "bin" / "python"
    stamp = config.state_dir / "stamps" / "cloned.json"
    assert venv_python.exists() and stamp.exists()
    lines = [line for _, line in progress]
    assert any(line.startswith("cloning ") for line in lines)
    assert any("receiving objects" in line or "checking out" in line for line in lines)
    assert any("pip install" in line for line in lines)
    assert any("unigw-tinydep" in line for line in lines)  # pip's own output, forwarded
    stamp_mtime = stamp.stat().st_mtime_ns

    shutil.move(tmp_path / "src", tmp_path / "gone")  # a second up must not need the remote
    progress.clear()

    async def second(sup: Supervisor) -> None:
        await until_state(sup, "cloned", "ready", 30)
        text = "\n".join(sup.log_tail("cloned", 400) or [])
        assert "server.py: tinydep says tinydep-ok" in text

    run(config, second, progress=lambda name, line: progress.append((name, line)))
    lines = [line for _, line in progress]
    assert "install is current (stamp matches); skipping" in lines
    assert not any(line.startswith(("cloning", "fetching", "install:")) for line in lines)
    assert stamp.stat().st_mtime_ns == stamp_mtime


def test_new_ref_on_reload_fetches_and_reinstalls(tmp_path: Path) -> None:
    src = tmp_path / "src"
    url, sha = make_echo_repo(src)
    port = free_port()
    config = write_config(tmp_path, [repo_provider("cloned", port, url, sha)])
    newer = ""

    async def body(sup: Supervisor) -> None:
        nonlocal newer
        await until_state(sup, "cloned", "ready", 90)
        pid = row(sup, "cloned").pid
        git(src, "checkout", "-q", sha, "--", "server.py")  # a commit the clone has not seen
        (src / "requirements.txt").write_text(
            "# pinned again\n./wheels/unigw_tinydep-0.1-py3-none-any.whl\n")
        git(src, "commit", "-qam", "working again, requirements touched")
        newer = git(src, "rev-parse", "HEAD")
        edited = write_config(tmp_path, [repo_provider("cloned", port, url, newer)])
        assert await sup.reload(edited) == {"added": [], "removed": [], "changed": ["cloned"]}
        await until_state(sup, "cloned", "ready", 90)
        assert row(sup, "cloned").pid != pid
        text = "\n".join(sup.log_tail("cloned", 1000) or [])
        assert f"fetching {url}" in text
        assert text.count("creating virtual environment") == 1  # the venv is kept
        assert text.count("] install: ") == 2  # pip, then pip again for the new ref

    run(config, body)
    assert git(config.apis_dir / "cloned", "rev-parse", "HEAD") == newer


def test_clone_of_a_missing_repository_fails_with_gits_words(tmp_path: Path) -> None:
    missing = (tmp_path / "nope").as_uri()
    bad = repo_provider("ghost", free_port(), missing, "0123456789abcdef")
    config = write_config(tmp_path, [bad, echo("fine", free_port())])

    async def body(sup: Supervisor) -> None:
        assert await sup.wait_settled(30)
        r = row(sup, "ghost")
        assert r.state is State.FAILED
        assert r.last_error.startswith("clone failed: fatal: ")
        assert "does not appear to be a git repository" in r.last_error
        assert row(sup, "fine").state is State.READY

    run(config, body)
    assert not (config.apis_dir / "ghost").exists()  # a failed clone leaves nothing half-made


def test_install_only_clones_and_installs_without_starting(tmp_path: Path) -> None:
    url, sha = make_echo_repo(tmp_path / "src")
    config = write_config(tmp_path, [repo_provider("cloned", free_port(), url, sha),
                                     echo("local", free_port())])

    async def body(sup: Supervisor) -> None:
        assert await sup.install_only(None) == {"cloned": None, "local": None}
        assert [r.state for r in sup.status()] == ["stopped", "stopped"]
        assert all(r.pid is None for r in sup.status())
        assert (config.state_dir / "stamps" / "cloned.json").exists()
        assert await sup.install_only(["cloned"]) == {"cloned": None}
        assert "install is current (stamp matches); skipping" in "\n".join(
            sup.log_tail("cloned", 20) or [])

    run(config, body, up=False)


NODE_SERVER = """\
const http = require("http");
const port = Number(process.env.PORT);
http.createServer((req, res) => {
  res.writeHead(req.url === "/health" ? 200 : 404, {"content-type": "application/json"});
  res.end(JSON.stringify({ok: req.url === "/health"}));
}).listen(port, "127.0.0.1", () => console.log(`node provider on ${port}`));
"""


@pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                    reason="needs node and npm on PATH")
def test_node_provider_installs_with_npm_once_and_runs(tmp_path: Path) -> None:
    src = tmp_path / "nodesrc"
    src.mkdir()
    git(src, "init", "-q")
    (src / "package.json").write_text('{"name": "p", "version": "1.0.0", "private": true}\n')
    (src / "server.js").write_text(NODE_SERVER)
    git(src, "add", ".")
    git(src, "commit", "-qm", "node provider")
    sha = git(src, "rev-parse", "HEAD")
    provider = {"name": "nodep", "port": free_port(), "runtime": "node", "repo": src.as_uri(),
                "ref": sha, "start": ["node", "server.js"], "health": "/health"}
    config = write_config(tmp_path, [provider])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "nodep", "ready", 60)

    run(config, body)
    text = "\n".join(Supervisor(config).log_tail("nodep", 200) or [])
    assert "npm install" in text and "node provider on" in text
    run(config, body)  # the lockfile npm wrote is part of the stamp: no second install
    text = "\n".join(Supervisor(config).log_tail("nodep", 200) or [])
    assert text.count("] install: ") == 1
    assert text.count("install is current (stamp matches); skipping") == 1


def _plain_repo(folder: Path) -> tuple[str, str]:
    folder.mkdir()
    git(folder, "init", "-q")
    (folder / "README").write_text("nothing to see\n")
    git(folder, "add", ".")
    git(folder, "commit", "-qm", "plain")
    return folder.as_uri(), git(folder, "rev-parse", "HEAD")


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node on PATH")
def test_failing_and_hanging_install_steps_fail_with_their_output(tmp_path: Path) -> None:
    url, sha = _plain_repo(tmp_path / "plain")
    boom = ["{python}", "-c", "import sys; print('boom: no such package'); sys.exit(3)"]
    hang = ["{python}", "-c", "import time; print('waiting forever', flush=True); "
            "time.sleep(60)"]
    common = {"runtime": "node", "repo": url, "ref": sha, "start": ["node", "x.js"]}
    config = write_config(tmp_path, [
        {"name": "boom", "port": free_port(), "install": [boom], **common},
        {"name": "hang", "port": free_port(), "install": [hang], **common},
        echo("fine", free_port()),
    ], install_timeout=1.5)

    async def body(sup: Supervisor) -> None:
        assert await sup.wait_settled(30)
        assert row(sup, "boom").last_error == (
            f"install failed: `{sys.executable} -c {boom[2]}` exited with code 3: "
            "boom: no such package"
        )
        assert row(sup, "hang").last_error.startswith("install failed: `")
        assert row(sup, "hang").last_error.endswith(
            "` timed out after 1.5s: waiting forever")
        assert row(sup, "fine").state is State.READY
        assert not (config.state_dir / "stamps" / "boom.json").exists()
        alive = [p for p in marked_alive(config.state_dir) if p != row(sup, "fine").pid]
        assert alive == []  # the timed-out step was killed, whole tree

    run(config, body)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node on PATH")
def test_stop_during_install_ends_the_install_step(tmp_path: Path) -> None:
    url, sha = _plain_repo(tmp_path / "plain")
    slow = ["{python}", "-c", "import time; print('installing slowly', flush=True); "
            "time.sleep(60)"]
    config = write_config(tmp_path, [{"name": "slow", "port": free_port(), "runtime": "node",
                                      "repo": url, "ref": sha, "start": ["node", "x.js"],
                                      "install": [slow]}])

    async def body(sup: Supervisor) -> None:
        await until(lambda: "installing slowly" in (sup.log_tail("slow", 5) or []), 20,
                    "the install step to run")
        assert row(sup, "slow").state is State.INSTALLING and marked_alive(config.state_dir)
        assert (await sup.stop("slow")).state is State.STOPPED
        assert marked_alive(config.state_dir) == []

    run(config, body)


def test_clone_that_hangs_times_out_and_its_git_is_killed(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/provider.git"
        bad = repo_provider("stuck", free_port(), url, "0123456789abcdef")
        config = write_config(tmp_path, [bad], clone_timeout=1.5)

        async def body(sup: Supervisor) -> None:
            await until_state(sup, "stuck", "failed", 30)
            assert row(sup, "stuck").last_error == "clone timed out after 1.5s"
            gits = [p for p in psutil.Process().children(recursive=True) if "git" in p.name()]
            assert gits == []

        run(config, body)
    assert not (config.apis_dir / "stuck").exists()
