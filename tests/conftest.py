"""Fixtures every test module may use by name (pytest finds them here; nothing imports them).

The helpers they rest on (the echo provider as a subprocess, a gateway in front of echo
providers, local git repositories, replay and raw-socket providers, translation builders) are
plain modules in ``tests/support/``, imported where they are used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.supervisor import kill_marked
from support.toolchains import shared_state

from supervisor.config import Config

#: Tests that use the demo's fixed ports (7999, 8000-8013) or assert that nothing listens on
#: 7999: under pytest-xdist they all run in one worker, one after another.
FIXED_PORTS = ("test_demo.py", "test_dashboard.py", "test_wheel.py",
               "test_cli.py::test_control_commands_exit_3")


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the group into the node id
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(name in item.nodeid for name in FIXED_PORTS):
            item.add_marker(pytest.mark.xdist_group("fixed_ports"))


@pytest.fixture(autouse=True)
def _no_child_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever a test's supervisor started under its ``tmp_path`` is killed when it ends,
    pass or fail (processes carry their state folder in their environment)."""
    yield
    tmp = request.node.funcargs.get("tmp_path")
    if isinstance(tmp, Path) and (tmp / ".unigw").exists():
        kill_marked((tmp / ".unigw").resolve())


@pytest.fixture(scope="session")
def toolchain_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, list[str]]:
    """A config whose state folder holds a bootstrapped Go and Deno, installed once per run,
    and the log lines of installing them (see :func:`support.toolchains.shared_state`)."""
    return shared_state(tmp_path_factory)


CHROMIUM = "/usr/bin/chromium"  # Debian's; scripts/test installs it
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright, for one dashboard test module (module
    scope: Playwright's sync API owns the thread's event loop while it runs)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
