"""A provider with ``files:`` runs with a private HOME holding its secret files (0600, written
before each start), reads its token from there, and the token reaches no log, status or route.

Real processes: a provider script that reads its token from ``$HOME`` the way copilot-api does
(and prints it, as a careless one might), then serves the echo requiring that token
(``--key-file``); and ``unigw up -d`` with ``unigw secret set`` for the missing-secret path.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
import yaml
from support.supervisor import FAST, echo, free_port, row, run, script, until_state, write_config

from supervisor.lifecycle.manager import Supervisor
from supervisor.proc.private_home import HomeError, write_files

REL = ".local/share/echo-cp/github_token"
VALUE = "ghu_home-7c1d-very-secret"

READER = f"""\
import os
with open(os.path.join(os.environ["HOME"], {REL!r})) as f:
    token = f.read()
print("read my token from HOME:", token, flush=True)
from supervisor.demo.echo import main
main(["--key-file", {REL!r}])
"""


def modes(home: Path) -> dict[str, int]:
    """Each folder from ``homes/`` down to the token file, and the file: their modes."""
    paths = [home.parent, home, *[home / Path(REL).parents[i] for i in range(2, -1, -1)],
             home / REL]
    return {str(p.relative_to(home.parent.parent)): stat.S_IMODE(p.stat().st_mode)
            for p in paths}


def test_the_file_is_written_private_in_its_home_seen_by_the_provider_and_shown_nowhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIGW_TEST_HOME_TOKEN", VALUE)
    (tmp_path / "reader.py").write_text(READER)
    port = free_port()
    config = write_config(tmp_path, [script("cp", port, "reader.py",
                                            files={REL: "${UNIGW_TEST_HOME_TOKEN}"})])
    home = config.state_dir / "homes" / "cp"

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "cp", "ready")
        assert (home / REL).read_text() == VALUE  # exactly: copilot-api strips no newline
        assert modes(home) == {"homes": 0o700, "homes/cp": 0o700, "homes/cp/.local": 0o700,
                               "homes/cp/.local/share": 0o700,
                               "homes/cp/.local/share/echo-cp": 0o700, f"homes/cp/{REL}": 0o600}
        child = psutil.Process(row(sup, "cp").pid)
        assert child.environ()["HOME"] == str(home)
        url = f"http://127.0.0.1:{port}/v1/models"
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(url)).status_code == 401
            seen = await client.get(url, headers={"Authorization": f"Bearer {VALUE}"})
            assert seen.status_code == 200  # it required the token it read from the file
        shown = "\n".join(sup.log_tail("cp", 200) or [])
        assert "read my token from HOME: ***" in shown
        assert f"HOME is {home}; wrote {REL}" in shown
        for text in (shown, repr(sup.status()), json.dumps(config.redacted())):
            assert VALUE not in text

    run(config, body)
    for f in config.state_dir.rglob("*"):
        if f.is_file() and f != home / REL:
            assert VALUE.encode() not in f.read_bytes(), f


def test_each_start_writes_the_file_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           ) -> None:
    monkeypatch.setenv("UNIGW_TEST_HOME_TOKEN", VALUE)
    port = free_port()
    config = write_config(tmp_path, [echo("cp", port, "--key-file", REL,
                                          files={REL: "${UNIGW_TEST_HOME_TOKEN}"})])
    token = config.state_dir / "homes" / "cp" / REL

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "cp", "ready")
        token.write_text("changed by the program")
        await sup.restart("cp")
        await until_state(sup, "cp", "ready")
        assert token.read_text() == VALUE

    run(config, body)


def test_an_empty_value_writes_no_file_and_keeps_what_the_program_saved(tmp_path: Path) -> None:
    home = tmp_path / "homes" / "cp"
    assert write_files(home, {REL: ""}) == []
    assert not (home / REL).exists() and stat.S_IMODE(home.stat().st_mode) == 0o700
    (home / REL).parent.mkdir(parents=True)
    (home / REL).write_text("saved after its device login")
    assert write_files(home, {REL: "", "other": "x"}) == ["other"]
    assert (home / REL).read_text() == "saved after its device login"


def test_a_folder_that_leads_out_of_the_home_is_refused(tmp_path: Path) -> None:
    home, outside = tmp_path / "homes" / "cp", tmp_path / "outside"
    home.mkdir(parents=True)
    outside.mkdir()
    (home / ".local").symlink_to(outside)
    with pytest.raises(HomeError, match=f"files: {REL}: its folder leads out of"):
        write_files(home, {REL: VALUE})
    assert not list(outside.rglob("*"))


# -- the missing-secret path, through the command line -----------------------------------------

def unigw(path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supervisor.cli", *args, "-c", str(path)],
                          input=stdin, capture_output=True, text=True, timeout=120)


def wait_row(port: int, name: str, cond: Callable[[dict[str, object]], bool], what: str) -> None:
    deadline, last = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        data = httpx.get(f"http://127.0.0.1:{port}/providers/{name}", timeout=5).json()
        if cond(data):
            return
        last = data
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last}")


def test_a_missing_file_secret_fails_the_provider_until_secret_set_starts_it(
        tmp_path: Path) -> None:
    gateway, port = free_port(), free_port()
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"port": gateway}, "supervisor": FAST,
                                    "providers": [echo("cp", port, "--key-file", REL,
                                                       files={REL: "${CP_HOME_TOKEN}"})]}))
    up = unigw(path, "up", "-d")
    assert up.returncode == 0, up.stderr
    try:
        wait_row(gateway, "cp", lambda r: r["state"] == "failed", "cp failed")
        failed = httpx.get(f"http://127.0.0.1:{gateway}/providers/cp", timeout=5).json()
        assert failed["last_error"] == "missing secret CP_HOME_TOKEN"
        assert failed["missing_secrets"] == ["CP_HOME_TOKEN"]
        stored = unigw(path, "secret", "set", "CP_HOME_TOKEN", stdin=VALUE + "\n")
        assert stored.returncode == 0, stored.stderr
        assert "needed by cp" in stored.stdout
        wait_row(gateway, "cp", lambda r: r["state"] == "ready", "cp started with its token")
        token = tmp_path / ".unigw" / "homes" / "cp" / REL
        assert token.read_text() == VALUE and stat.S_IMODE(token.stat().st_mode) == 0o600
        answer = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5,
                           headers={"Authorization": f"Bearer {VALUE}"})
        assert answer.status_code == 200
        base = f"http://127.0.0.1:{gateway}"
        seen = [stored.stdout, stored.stderr, unigw(path, "status", "--json").stdout,
                unigw(path, "logs", "cp", "-n", "200").stdout]
        seen += [httpx.get(base + route, timeout=5).text
                 for route in ("/providers", "/providers/cp", "/config", "/metrics",
                               "/providers/cp/logs?n=500")]
        assert not [text for text in seen if VALUE in text]
    finally:
        unigw(path, "down")
    holding = [f for f in (tmp_path / ".unigw").rglob("*")
               if f.is_file() and VALUE.encode() in f.read_bytes()]
    assert holding == [tmp_path / ".unigw" / "homes" / "cp" / REL]
