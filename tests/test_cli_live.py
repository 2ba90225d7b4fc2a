"""Progress as a user sees it: `unigw install` and `unigw up` on a real pseudo-terminal (one
live line per provider, a summary, the URLs) and on pipes (plain lines, no escape codes)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.echo import REPO_ROOT, free_port
from support.supervisor import echo, make_echo_repo, repo_provider, write_config

from supervisor.cli.progress import reason_kind, step_of, summary

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env() -> dict[str, str]:
    """A user's terminal: TERM set, no NO_COLOR or CI (CI runs with CI=true), no secret."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "CI", "FORCE_COLOR", "LOCKED_TOKEN", "COLUMNS", "LINES")}
    return {**env, "TERM": "xterm", "PYTHONPATH": str(REPO_ROOT)}


class Terminal:
    """``unigw ARGS`` with stdin, stdout and stderr on a 160-column pseudo-terminal."""

    def __init__(self, cwd: Path, *args: str) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        self.proc = subprocess.Popen([sys.executable, "-m", "supervisor.cli", *args], cwd=cwd,
                                     env=_env(), stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        self._master, self._data = master, bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self._master], [], [], 0.2)
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not chunk:
                break
            self._data += chunk

    @property
    def output(self) -> str:
        return self._data.decode(errors="replace")

    def wait_for(self, check: Callable[[str], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check(self.output):
            if time.monotonic() > deadline or self.proc.poll() is not None and not check(
                self.output
            ):
                raise AssertionError(f"not seen within {timeout}s:\n{self.output}")
            time.sleep(0.1)

    def finish(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        os.close(self._master)
        return code


def final_board(output: str, names: list[str]) -> list[str]:
    """The last frame of the live table: its lines that name a provider, escapes removed."""
    text = ESCAPE.sub("", output).replace("\r", "")
    last = text.rindex("PROVIDER")
    frame = text[last:].split("\n")[1:]
    return [ln for ln in frame if ln.split() and ln.split()[0] in names]


def summary_line(output: str) -> str:
    lines = [ln for ln in ESCAPE.sub("", output).replace("\r", "").split("\n") if " — " in ln]
    assert lines, output
    return lines[-1].strip()


@pytest.fixture
def repos(tmp_path: Path) -> Path:
    url, sha = make_echo_repo(tmp_path / "src")
    config = write_config(tmp_path, [
        repo_provider("cloned", free_port(), url, sha),
        repo_provider("gone", free_port(), (tmp_path / "no-such-repo").as_uri(), sha),
    ])
    return config.path


def test_install_on_a_terminal_shows_one_live_line_per_provider_and_a_summary(
    repos: Path,
) -> None:
    term = Terminal(repos.parent, "install", "-c", str(repos))
    assert term.finish() == 1
    board = final_board(term.output, ["cloned", "gone"])
    assert [ln.split()[:2] for ln in board] == [["cloned", "installed"], ["gone", "failed"]]
    assert "clone failed" in board[1]  # the reason stays visible
    assert re.fullmatch(r"1 installed, 1 failed: clone failed \(1\) — \d+ s",
                        summary_line(term.output))
    assert "[cloned]" not in term.output  # no scrolling progress lines: the board replaces them
    assert "cloned: installed" in term.output  # the data line, after the board


def test_install_without_a_terminal_prints_plain_lines_and_the_summary(repos: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "supervisor.cli", "install", "-c", str(repos)],
                         env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "\x1b[" not in out.stderr + out.stdout
    assert "  [cloned] cloning " in out.stderr
    assert "  [cloned] install: " in out.stderr
    lines = out.stderr.splitlines()
    assert all(a != b for a, b in zip(lines, lines[1:], strict=False))  # no repeats
    assert re.search(r"^1 installed, 1 failed: clone failed \(1\) — \d+ s$", out.stderr, re.M)


def test_install_with_plain_on_a_terminal_prints_plain_lines(repos: Path) -> None:
    term = Terminal(repos.parent, "install", "--plain", "-c", str(repos))
    assert term.finish() == 1
    assert "\x1b[" not in term.output
    assert "  [cloned] cloning " in term.output
    assert re.search(r"1 installed, 1 failed: clone failed \(1\) — \d+ s", term.output)


@pytest.fixture
def echoes(tmp_path: Path) -> Path:
    config = write_config(tmp_path, [
        echo("alpha", free_port(), "--models", "m-a"),
        echo("beta", free_port(), "--models", "m-b"),
        echo("locked", free_port(), key="${LOCKED_TOKEN}"),
    ])
    return config.path


def test_up_on_a_terminal_shows_the_board_the_summary_and_the_urls_then_stops_on_sigint(
    echoes: Path,
) -> None:
    term = Terminal(echoes.parent, "up", "-c", str(echoes))
    try:
        term.wait_for(lambda out: "dashboard http" in out, timeout=90)
        board = final_board(term.output, ["alpha", "beta", "locked"])
        assert [ln.split()[:2] for ln in board] == [
            ["alpha", "ready"], ["beta", "ready"], ["locked", "failed"]]
        assert "missing secret LOCKED_TOKEN" in board[2]
        assert re.fullmatch(r"2 ready, 1 failed: missing secret \(1\) — \d+ s",
                            summary_line(term.output))
        port = _gateway_port(echoes)
        assert f"gateway   http://127.0.0.1:{port}/v1" in term.output
        assert f"dashboard http://127.0.0.1:{port}/" in term.output
        assert "alpha: installing → starting" not in term.output  # the board says it
        status = Terminal(echoes.parent, "status", "-c", str(echoes))
        assert status.finish(timeout=30) == 0
        assert "\x1b[" in status.output  # coloured on a terminal
        rows = [ESCAPE.sub("", ln).split() for ln in status.output.splitlines()]
        assert [r[:3] for r in rows if r and r[0] in ("alpha", "beta", "locked")] == [
            ["alpha", str(_port(echoes, "alpha")), "ready"],
            ["beta", str(_port(echoes, "beta")), "ready"],
            ["locked", str(_port(echoes, "locked")), "failed"]]
    finally:
        term.proc.send_signal(signal.SIGINT)
        code = term.finish()
    assert code == 0, term.output


def test_up_without_a_terminal_prints_plain_lines_the_summary_and_the_urls(
    echoes: Path,
) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.cli", "up", "-c", str(echoes)],
                            cwd=echoes.parent, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any("dashboard http" in s for s in seen):
            seen.append(proc.stderr.readline())
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    text = "".join(seen) + (rest or "")
    assert proc.returncode == 0, text
    assert "\x1b[" not in text
    assert "alpha: installing → starting" in text  # the log lines, as before
    assert re.search(r"^2 ready, 1 failed: missing secret \(1\) — \d+ s$", text, re.M)
    assert re.search(r"^gateway   http://127\.0\.0\.1:\d+/v1$", text, re.M)


def _gateway_port(path: Path) -> int:
    import yaml

    return int(yaml.safe_load(path.read_text())["gateway"]["port"])


def _port(path: Path, name: str) -> int:
    import yaml

    doc = yaml.safe_load(path.read_text())
    return int(next(p["port"] for p in doc["providers"] if p["name"] == name))


def test_a_progress_line_names_its_step() -> None:
    assert step_of("receiving objects: 43% (10/23)") == "cloning 43%"
    assert step_of("checking out files: 100%") == "checking out 100%"
    assert step_of("cloning https://x/y into apis/y") == "cloning"
    assert step_of("install: npm ci") == "installing"
    assert step_of("install: go build") == "building"
    assert step_of("apis/y is at main (0123456789ab)") == "checked out"
    assert step_of("Collecting httpx") is None  # an install step's output keeps the step


def test_the_summary_counts_states_and_groups_failure_kinds() -> None:
    states = [("ready", None)] * 12 + [
        ("failed", "missing secret QWEN_TOKEN"), ("failed", "missing secret K2_TOKEN, K2_KEY")]
    assert summary(states, 41.2) == "12 ready, 2 failed: missing secret (2) — 41 s"
    assert summary([("failed", "clone failed: fatal: not found"), ("backoff", "exited 1")], 75) \
        == "1 backoff, 1 failed: clone failed (1) — 1 min 15 s"
    assert reason_kind(None) == "unknown reason"
