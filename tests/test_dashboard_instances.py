"""The dashboard shows a provider's instances under one line of it, and an instance's own
buttons act on that instance alone (its name has a '#', sent as %23). A real ``unigw up -d``
with three echo instances, in Debian's headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli_instance import cleanup, unigw, until
from test_instances import QW, Accounts

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[Accounts]:
    inst = Accounts(tmp_path)
    try:
        assert unigw(inst.path, "up", "-d").returncode == 0
        until(inst.ready, 30, "every instance ready")
        yield inst
        unigw(inst.path, "down")
    finally:
        cleanup(tmp_path)


def opened(page: Any, accounts: Accounts) -> Any:
    """The dashboard on ``page``, once its qw group line shows every instance ready."""
    page.goto(accounts.url("/"))
    line = page.locator('tr[data-testid="provider-group"][data-group="qw"]')
    sync_api.expect(line).to_contain_text("3 instances, 3 ready", timeout=20_000)
    return line


def test_instances_are_grouped_and_restarted_one_by_one(accounts: Accounts,
                                                        browser: Any) -> None:
    before = accounts.pids()
    page = browser.new_page()
    try:
        opened(page, accounts)
        rows = page.locator('tr[data-testid="provider-row"]')
        sync_api.expect(rows).to_have_count(4)
        names = [rows.nth(i).get_attribute("data-name") for i in range(4)]
        assert names == [*QW, "solo"]
        order = page.eval_on_selector_all(
            "tbody tr:not(.detail)", "trs => trs.map(t => t.dataset.group || t.dataset.name)")
        assert order == ["qw", *QW, "solo"]
        assert page.locator("tr.instance").count() == 3
        page.get_by_role("button", name="Restart qw#2").click()
        outcome = page.locator('tr[data-name="qw#2"] [data-testid="row-outcome"]')
        sync_api.expect(outcome).to_contain_text("restarted", timeout=30_000)
    finally:
        page.close()
    after = accounts.pids()
    assert [after[n] == before[n] for n in (*QW, "solo")] == [True, False, True, True]


def button_names(page: Any) -> list[str]:
    """Every button's accessible name on the page (its aria-label, else its text)."""
    return page.eval_on_selector_all("button", "bs => bs.map(b => (b.getAttribute("
                                     "'aria-label') || b.textContent).trim())")


def test_a_group_line_restarts_stops_and_starts_every_instance(accounts: Accounts,
                                                              browser: Any) -> None:
    before = accounts.pids()
    page = browser.new_page()
    try:
        line = opened(page, accounts)
        names = button_names(page)
        assert len(names) == len(set(names))  # each button's name is its own
        assert {"Restart all qw", "Stop all qw", "Start all qw"} <= set(names)
        outcome = line.locator('[data-testid="group-outcome"]')

        page.get_by_role("button", name="Restart all qw", exact=True).click()
        sync_api.expect(outcome).to_contain_text("restarted all: 3 ready", timeout=60_000)
        restarted = accounts.pids()
        assert [restarted[n] != before[n] for n in (*QW, "solo")] == [True, True, True, False]

        page.get_by_role("button", name="Stop all qw", exact=True).click()
        sync_api.expect(outcome).to_contain_text("stopped all: 3 stopped", timeout=60_000)
        assert [row["state"] for row in accounts.rows().values()] == [
            "stopped", "stopped", "stopped", "ready"]
        stop = page.get_by_role("button", name="Stop all qw", exact=True)
        sync_api.expect(stop).to_have_attribute("aria-disabled", "true")  # nothing to stop

        page.get_by_role("button", name="Start all qw", exact=True).click()
        sync_api.expect(outcome).to_contain_text("started all: 3 ready", timeout=60_000)
        sync_api.expect(line).to_contain_text("3 instances, 3 ready")
        assert accounts.ready()
    finally:
        page.close()
