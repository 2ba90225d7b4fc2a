"""The dashboard's field for a missing secret, in Chromium: pasted, stored in .env (0600), the
provider starts, and the value is on no page, route or file but .env."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.echo import free_port
from support.supervisor import FAST, echo

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.timeout(180)
VALUE = "pasted-4c1d-secret-value"


def unigw(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supervisor.cli", *args, "-c", str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    port = free_port()
    providers = [echo("open", free_port()),
                 echo("locked", free_port(), env={"LOCKED_TOKEN": "${LOCKED_TOKEN}"})]
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"port": port}, "supervisor": FAST,
                                    "providers": providers}))
    up = unigw(path, "up", "-d")
    assert up.returncode == 0, up.stderr
    try:
        yield path, f"http://127.0.0.1:{port}"
    finally:
        unigw(path, "down")


def state(base: str, name: str) -> str:
    rows = httpx.get(f"{base}/providers", timeout=5).json()["providers"]
    return next(str(r["state"]) for r in rows if r["name"] == name)


def test_a_pasted_secret_is_stored_and_the_provider_starts(instance: tuple[Path, str],
                                                           browser: Any) -> None:
    path, base = instance
    deadline = time.monotonic() + 30
    while state(base, "locked") != "failed" and time.monotonic() < deadline:
        time.sleep(0.2)
    page = browser.new_page()
    try:
        page.goto(f"{base}/")
        form = page.locator('tr[data-testid="provider-detail"][data-name="locked"] '
                            '[data-testid="secret-form"]')
        sync_api.expect(form).to_be_visible(timeout=20_000)
        sync_api.expect(form).to_contain_text("LOCKED_TOKEN")
        field = form.locator('[data-testid="secret-value"]')
        assert field.get_attribute("type") == "password"
        field.fill(VALUE)
        form.locator('[data-testid="secret-save"]').click()
        sync_api.expect(form.locator('[data-testid="secret-status"]')).to_contain_text(
            "stored", timeout=10_000)
        state_cell = page.locator('tr[data-testid="provider-row"][data-name="locked"] '
                                  '[data-field="state"]')
        sync_api.expect(state_cell).to_have_text("ready", timeout=30_000)
        assert VALUE not in page.content()
    finally:
        page.close()
    dotenv = path.parent / ".env"
    assert dotenv.read_text() == f"LOCKED_TOKEN={VALUE}\n"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    for route in ("/providers", "/config", "/metrics", "/providers/locked/logs?n=500"):
        assert VALUE not in httpx.get(base + route, timeout=5).text, route
    for f in (path.parent / ".unigw").rglob("*"):
        if f.is_file():
            assert VALUE.encode() not in f.read_bytes(), f
