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


def test_instances_are_grouped_and_restarted_one_by_one(accounts: Accounts,
                                                        browser: Any) -> None:
    before = accounts.pids()
    page = browser.new_page()
    try:
        page.goto(accounts.url("/"))
        line = page.locator('tr[data-testid="provider-group"][data-group="qw"]')
        sync_api.expect(line).to_contain_text("3 instances, 3 ready", timeout=20_000)
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
