"""The command line as a user runs it: a real `unigw` subprocess each time."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = [
    "up",
    "demo",
    "down",
    "status",
    "start",
    "stop",
    "restart",
    "logs",
    "install",
    "check",
    "strategy",
    "gateway",
]


def unigw(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_lists_every_command_of_the_design() -> None:
    out = unigw("--help")
    assert out.returncode == 0
    for cmd in COMMANDS:
        assert f"  {cmd} " in out.stdout, cmd


@pytest.mark.parametrize("cmd", COMMANDS)
def test_each_command_has_help_with_config_option(cmd: str) -> None:
    out = unigw(cmd, "--help")
    assert out.returncode == 0, out.stderr
    assert "-c, --config" in out.stdout
    assert len(out.stdout.split("\n\n")[1].strip()) > 20  # a real description, not a stub


@pytest.mark.parametrize(
    "args", [["status"], ["status", "--json"], ["restart", "qwen-api"], ["strategy"], ["down"]]
)
def test_control_commands_exit_3_when_nothing_runs(args: list[str], tmp_path: Path) -> None:
    out = unigw(*args, cwd=tmp_path)
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert "not running" in out.stderr


def test_unknown_command_is_a_usage_error() -> None:
    assert unigw("frobnicate").returncode == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _echo_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(
        f"gateway: {{port: {_free_port()}}}\n"
        "providers:\n"
        f"  - name: echo\n    port: {port}\n    runtime: python\n"
        "    start: ['{python}', -m, supervisor.demo.echo]\n" + extra
    )
    return path


def test_check_passes_on_a_clean_config(tmp_path: Path) -> None:
    path = _echo_config(tmp_path, _free_port())
    out = unigw("check", "-c", str(path))
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert "echo: port" in out.stdout and "no problems" in out.stdout


def test_check_reports_missing_secret_and_taken_port(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        path = _echo_config(tmp_path, port, "    env: {TOKEN: '${UNIGW_TEST_NEVER_SET}'}\n")
        out = unigw("check", "-c", str(path))
    assert out.returncode == 1
    assert "providers.yaml: echo: missing secret UNIGW_TEST_NEVER_SET" in out.stdout
    assert f"providers.yaml: echo: port: port {port} is in use by pid" in out.stdout


def test_check_lists_every_config_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(
        "gateway: {strategy: fastest}\nproviders:\n"
        "  - {name: a, port: 99999, runtime: cobol, start: [x]}\n"
    )
    out = unigw("check", "-c", str(path))
    assert out.returncode == 1
    for field in ("strategy", "port", "runtime"):
        assert f": {field}: " in out.stdout, field


def test_up_with_a_broken_config_names_the_problem_and_starts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text("providers:\n  - {name: a, port: 9, runtime: python, start: 'x'}\n")
    out = unigw("up", "-c", str(path))
    assert out.returncode == 1
    assert "providers.yaml: providers[0] (a): start: must be a list of strings" in out.stderr
    assert "nothing was started" in out.stderr


def test_up_without_a_config_file_says_where_to_find_one(tmp_path: Path) -> None:
    out = unigw("up", cwd=tmp_path)
    assert out.returncode == 1
    assert "providers.yaml not found" in out.stderr and "unigw demo" in out.stderr
