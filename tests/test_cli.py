"""The command line as a user runs it: a real `unigw` subprocess each time."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from supervisor.cli import cli
from supervisor.cli.commands import ExitCode
from supervisor.cli.output import STATUS_COLUMNS

#: The public contract; in CI the repository is a fresh clone with shared/ beside it.
DESIGN = Path(__file__).resolve().parents[2] / "shared" / "DESIGN.md"

#: Commands DESIGN.md names that are not built yet, each with the issue that builds it. The
#: surface test asserts they are really absent, so this list stays honest.
PENDING: dict[str, str] = {}


def _design_section(title: str) -> str:
    if not DESIGN.is_file():
        raise FileNotFoundError(
            f"{DESIGN} is missing: the CLI surface is pinned to shared/DESIGN.md, which must "
            "sit beside this repository (clone shared/ next to it)"
        )
    text = DESIGN.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def design_commands() -> set[tuple[str, ...]]:
    """The command table of DESIGN.md as command paths: ``("up",)``, ``("secret", "set")``.

    A cell such as `unigw start/stop/restart NAME` names three commands; `·` separates two;
    a path ends at the first word that is not a lowercase name (``NAME``, ``[-d]``).
    """
    paths: set[tuple[str, ...]] = set()
    for row in _design_section("The command line").splitlines():
        if not row.startswith("| `unigw"):
            continue
        for usage in re.findall(r"`unigw ([^`]*)`", row.split("|")[1]):
            words = []
            for word in usage.split():
                if not re.fullmatch(r"[a-z][a-z/-]*", word):
                    break
                words.append(word)
            *group, last = words
            paths |= {(*group, name) for name in last.split("/")}
    return paths


def built_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every command of the click tree as a path; a group counts through its subcommands."""
    paths: set[tuple[str, ...]] = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths |= built_commands(command, (*prefix, name))
        else:
            paths.add((*prefix, name))
    return paths


COMMANDS = sorted(p for p in design_commands() if p[0] not in PENDING)


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


def test_the_commands_are_exactly_those_of_the_design() -> None:
    design = design_commands()
    assert {p[0] for p in design} >= PENDING.keys(), "PENDING names a command the design lacks"
    assert built_commands() == {p for p in design if p[0] not in PENDING}


def test_pending_commands_are_really_not_built_yet() -> None:
    assert not PENDING.keys() & cli.commands.keys()


def test_the_exit_codes_are_the_designs() -> None:
    sentence = re.search(r"Exit codes: ([^.]*)\.", _design_section("The command line"))
    assert sentence is not None
    assert {int(n) for n in re.findall(r"\b(\d) ", sentence.group(1))} == {c.value for c in ExitCode}
    assert (ExitCode.OK, ExitCode.ERROR, ExitCode.USAGE, ExitCode.NOT_RUNNING) == (0, 1, 2, 3)


def test_help_lists_every_command_of_the_design() -> None:
    out = unigw("--help")
    assert out.returncode == ExitCode.OK
    for cmd in {p[0] for p in COMMANDS}:
        assert f"  {cmd} " in out.stdout, cmd


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_each_command_has_help_with_config_option(cmd: tuple[str, ...]) -> None:
    out = unigw(*cmd, "--help")
    assert out.returncode == ExitCode.OK, out.stderr
    assert "-c, --config" in out.stdout
    assert len(out.stdout.split("\n\n")[1].strip()) > 20  # a real description, not a stub


@pytest.mark.parametrize(
    "args", [["status"], ["status", "--json"], ["restart", "qwen-api"], ["strategy"], ["down"]]
)
def test_control_commands_exit_3_when_nothing_runs(args: list[str], tmp_path: Path) -> None:
    out = unigw(*args, cwd=tmp_path)
    assert out.returncode == ExitCode.NOT_RUNNING, (out.stdout, out.stderr)
    assert "not running" in out.stderr


def test_demo_refuses_a_config_file_with_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("providers: []\n")
    out = unigw("demo", "-d", "-c", "mine.yaml", cwd=tmp_path)
    assert out.returncode == ExitCode.USAGE, (out.stdout, out.stderr)
    assert "demo runs its built-in config and takes no --config (mine.yaml)" in out.stderr
    assert "unigw up -c PATH" in out.stderr and out.stdout == ""
    assert not (tmp_path / ".unigw").exists()  # nothing was started

def test_a_control_command_given_a_missing_config_file_names_it_and_talks_to_nothing(
        tmp_path: Path) -> None:
    out = unigw("status", "-c", "nope.yaml", cwd=tmp_path)
    assert out.returncode == ExitCode.ERROR, (out.stdout, out.stderr)
    assert "nope.yaml: no such file" in out.stderr and out.stdout == ""
    assert "127.0.0.1" not in out.stderr  # no instance was looked for at a guessed port


def test_a_control_command_with_a_broken_config_and_no_recorded_instance_guesses_no_port(
        tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("providers:\n  - name: [oops\n")
    out = unigw("stop", "echo", "-c", "mine.yaml", cwd=tmp_path)
    assert out.returncode == ExitCode.ERROR, (out.stdout, out.stderr)
    assert "mine.yaml has 1 problem(s), and no running instance is recorded in" in out.stderr
    assert "127.0.0.1" not in out.stderr


def test_a_control_command_facing_something_else_on_the_port_says_it_is_not_unigw(
        tmp_path: Path) -> None:
    port = _free_port()
    (tmp_path / "providers.yaml").write_text(f"gateway: {{port: {port}}}\nproviders: []\n")
    other = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                              "127.0.0.1"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        out = unigw("status", cwd=tmp_path)
    finally:
        other.kill()
        other.wait()
    assert out.returncode == ExitCode.ERROR, (out.stdout, out.stderr)
    assert (f"something that is not unigw answers at http://127.0.0.1:{port} "
            "(HTTP 404, text/html)") in out.stderr
    assert "<html" not in out.stderr.lower()


def test_check_warns_that_a_config_without_providers_routes_nowhere(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text(f"gateway: {{port: {_free_port()}}}\n")
    out = unigw("check", "-c", "empty.yaml", cwd=tmp_path)
    assert out.returncode == ExitCode.OK, out.stderr
    assert "warning: empty.yaml: no providers: the gateway would have nothing to route to" in (
        out.stderr)


def test_check_and_logs_without_a_config_say_what_they_looked_for(tmp_path: Path) -> None:
    out = unigw("check", "-c", "nope.yaml", cwd=tmp_path)
    assert out.returncode == ExitCode.ERROR
    assert "nope.yaml not found: run unigw in the folder that has it" in out.stderr
    logs = unigw("logs", "ghost", cwd=tmp_path)  # no providers.yaml: the demo's names
    assert logs.returncode == ExitCode.ERROR
    assert ("unknown provider 'ghost' in the built-in demo (there is no providers.yaml here) "
            "(known: qwen-api, ") in logs.stderr


def test_unknown_command_is_a_usage_error() -> None:
    assert unigw("frobnicate").returncode == ExitCode.USAGE


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
    assert out.returncode == ExitCode.OK, (out.stdout, out.stderr)
    assert "echo: port" in out.stdout and "no problems" in out.stdout
    assert out.stderr == ""


def test_check_reports_missing_secret_and_taken_port(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        path = _echo_config(tmp_path, port, "    env: {TOKEN: '${UNIGW_TEST_NEVER_SET}'}\n")
        out = unigw("check", "-c", str(path))
    assert out.returncode == ExitCode.ERROR
    assert "problem: providers.yaml: echo: missing secret UNIGW_TEST_NEVER_SET" in out.stderr
    assert f"problem: providers.yaml: echo: port: port {port} is in use by pid" in out.stderr
    assert "echo: port" in out.stdout and "problem" not in out.stdout  # data only on stdout


def test_check_warns_of_a_secret_on_the_command_line_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(
        f"gateway: {{port: {_free_port()}}}\nproviders:\n"
        f"  - name: argy\n    port: {_free_port()}\n    runtime: python\n"
        "    start: ['{python}', -m, supervisor.demo.echo, --api-key, '${UNIGW_TEST_ARGV}']\n"
        f"  - name: flaggy\n    port: {_free_port()}\n    runtime: python\n"
        "    start: ['{python}', -m, supervisor.demo.echo, --github-token=literal-value]\n"
        f"  - name: clean\n    port: {_free_port()}\n    runtime: python\n"
        "    start: ['{python}', -m, supervisor.demo.echo]\n"
    )
    env = {**os.environ, "UNIGW_TEST_ARGV": "argv-secret-4242"}
    out = unigw("check", "-c", str(path), env=env)
    assert out.returncode == 0, (out.stdout, out.stderr)
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, out.stderr
    assert "argy: passes a secret on its command line (--api-key;" in warnings[0]
    assert "readable by any local user in `ps`" in warnings[0]
    assert "flaggy: passes a secret on its command line (--github-token;" in warnings[1]
    assert "argv-secret-4242" not in out.stdout + out.stderr


def test_check_lists_every_config_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(
        "gateway: {strategy: fastest}\nproviders:\n"
        "  - {name: a, port: 99999, runtime: cobol, start: [x]}\n"
    )
    out = unigw("check", "-c", str(path))
    assert out.returncode == ExitCode.ERROR
    for field in ("strategy", "port", "runtime"):
        assert f": {field}: " in out.stderr, field
    assert out.stdout == ""


def test_up_with_a_broken_config_names_the_problem_and_starts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text("providers:\n  - {name: a, port: 9, runtime: python, start: 'x'}\n")
    out = unigw("up", "-c", str(path))
    assert out.returncode == ExitCode.ERROR
    assert "providers.yaml: providers[0] (a): start: must be a list of strings" in out.stderr
    assert "nothing was started" in out.stderr


def test_up_without_a_config_file_says_where_to_find_one(tmp_path: Path) -> None:
    out = unigw("up", cwd=tmp_path)
    assert out.returncode == ExitCode.ERROR
    assert "providers.yaml not found" in out.stderr and "unigw demo" in out.stderr


def test_the_status_columns_are_the_designs_with_serving_after_health() -> None:
    row = next(line for line in _design_section("The command line").splitlines()
               if line.startswith("| `unigw status"))
    design = row.split("one row per provider:")[1].split("|")[0].split()
    # issue 11 adds SERVING (does the provider really answer chats) beside HEALTH (its probe)
    health = design.index("HEALTH")
    assert STATUS_COLUMNS == (*design[:health + 1], "SERVING", *design[health + 1:])
