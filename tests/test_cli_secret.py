"""``unigw secret set/list``: a secret stored without an editor starts the provider that waited
for it, and its value shows up in no output, route, log or file but ``.env`` (mode 0600)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from support.echo import free_port
from support.supervisor import FAST, echo

VALUE = "tok-7f3a9c-very-secret"


def unigw(path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supervisor.cli", *args, "-c", str(path)],
                          input=stdin, capture_output=True, text=True, timeout=120)


def write(tmp_path: Path) -> tuple[Path, int]:
    port = free_port()
    providers = [
        echo("open", free_port()),
        echo("locked", free_port(), env={"LOCKED_TOKEN": "${LOCKED_TOKEN}"}),
        echo("filed", free_port(), env={"TOKENS_FILE": "${K_TOKENS_FILE}"}, enabled=False),
    ]
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"port": port}, "supervisor": FAST,
                                    "providers": providers}))
    return path, port


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    path, port = write(tmp_path)
    up = unigw(path, "up", "-d")
    assert up.returncode == 0, up.stderr
    try:
        yield path, port
    finally:
        unigw(path, "down")


def rows(port: int) -> dict[str, dict[str, object]]:
    data = httpx.get(f"http://127.0.0.1:{port}/providers", timeout=5).json()
    return {r["name"]: r for r in data["providers"]}


def wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_secret_set_starts_the_waiting_provider_and_the_value_leaks_nowhere(
        running: tuple[Path, int]) -> None:
    path, port = running
    wait(lambda: rows(port)["locked"]["state"] == "failed", 30, "locked failed: missing secret")
    assert rows(port)["locked"]["last_error"] == "missing secret LOCKED_TOKEN"

    listed = unigw(path, "secret", "list")
    assert listed.returncode == 0, listed.stderr
    assert [ln.split()[:2] for ln in listed.stdout.splitlines()[1:]] == [
        ["LOCKED_TOKEN", "missing"], ["K_TOKENS_FILE", "missing"]]

    stored = unigw(path, "secret", "set", "LOCKED_TOKEN", stdin=VALUE + "\n")
    assert stored.returncode == 0, stored.stderr
    assert "stored LOCKED_TOKEN" in stored.stdout and "needed by locked" in stored.stdout
    dotenv = path.parent / ".env"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    assert dotenv.read_text() == f"LOCKED_TOKEN={VALUE}\n"

    wait(lambda: rows(port)["locked"]["state"] == "ready", 30, "locked started with its secret")
    assert rows(port)["locked"]["last_error"] is None  # the missing secret is no longer news
    assert "set in .env" in unigw(path, "secret", "list").stdout

    # the value is nowhere else: outputs, routes, logs, the state folder
    base = f"http://127.0.0.1:{port}"
    seen = [listed.stdout, listed.stderr, stored.stdout, stored.stderr,
            unigw(path, "status", "--json").stdout, unigw(path, "secret", "list", "--json").stdout]
    seen += [httpx.get(base + route, timeout=5).text
             for route in ("/providers", "/providers/locked", "/config", "/metrics", "/",
                           "/providers/locked/logs?n=500")]
    assert not [text for text in seen if VALUE in text]
    for f in (path.parent / ".unigw").rglob("*"):
        if f.is_file():
            assert VALUE.encode() not in f.read_bytes(), f


def test_a_file_secret_is_stored_as_a_private_file(tmp_path: Path) -> None:
    path, _ = write(tmp_path)
    source = tmp_path / "tokens.txt"
    source.write_text("token-a\ntoken-b\n")
    out = unigw(path, "secret", "set", "K_TOKENS_FILE", "--from-file", str(source))
    assert out.returncode == 0, out.stderr
    stored = tmp_path / ".unigw" / "secrets" / "K_TOKENS_FILE"
    assert stored.read_text() == "token-a\ntoken-b\n"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert (tmp_path / ".env").read_text() == f"K_TOKENS_FILE={stored}\n"
    listed = json.loads(unigw(path, "secret", "list", "--json").stdout)["secrets"]
    assert {"name": "K_TOKENS_FILE", "status": "set in .env", "providers": ["filed"]} in listed


def test_secret_set_refuses_a_name_no_provider_uses(tmp_path: Path) -> None:
    path, _ = write(tmp_path)
    out = unigw(path, "secret", "set", "LOKCED_TOKEN", stdin="x\n")
    assert out.returncode == 2
    assert "no provider in providers.yaml references ${LOKCED_TOKEN}" in out.stderr
    assert "LOCKED_TOKEN" in out.stderr  # the names it does use, to spot the typo
    assert not (tmp_path / ".env").exists()


def test_the_dashboards_secret_route_stores_it_and_starts_the_provider(
        running: tuple[Path, int]) -> None:
    path, port = running
    base = f"http://127.0.0.1:{port}"
    wait(lambda: rows(port)["locked"]["state"] == "failed", 30, "locked failed: missing secret")
    body = {"name": "LOCKED_TOKEN", "value": VALUE}
    refused = httpx.post(f"{base}/providers/locked/secret", json=body, timeout=5)
    assert refused.status_code == 403  # a control route: a cross-site form cannot store one
    wrong = httpx.post(f"{base}/providers/open/secret", json=body, timeout=5,
                       headers={"X-Unigw-Client": "test"})
    assert wrong.status_code == 400 and "references: none" in wrong.json()["error"]["message"]
    stored = httpx.post(f"{base}/providers/locked/secret", json=body, timeout=5,
                        headers={"X-Unigw-Client": "test"})
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"stored": "LOCKED_TOKEN", "needed_by": ["locked"]}
    assert VALUE not in stored.text
    assert stat.S_IMODE((path.parent / ".env").stat().st_mode) == 0o600
    wait(lambda: rows(port)["locked"]["state"] == "ready", 30, "locked started with its secret")
