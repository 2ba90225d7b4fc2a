"""The dashboard, end to end: a real headless Chromium driving the page of a real `unigw demo`.

One demo (fourteen echo providers on 8000-8013, the gateway on 7999) serves every test of this
module; it is started in a temporary folder and stopped with SIGINT, like Ctrl-C. The browser is
Debian's ``/usr/bin/chromium`` driven by Playwright (``playwright install`` is never needed).
Tests run in file order and each leaves every provider it touches ready again.
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from support.echo import free_port

from gateway.dashboard import FRONTEND_DIR as FRONTEND
from gateway.dashboard import frontend_files, index

sync_api = pytest.importorskip("playwright.sync_api")

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"
GATEWAY = "http://127.0.0.1:7999"
PROVIDERS = [
    ("qwen-api", 8000), ("qwenchat2api", 8001), ("k2think2api3", 8002), ("k2think2api2", 8003),
    ("k2Think2Api", 8004), ("grok2api", 8005), ("OpenAI-Compatible-API-Proxy-for-Z", 8006),
    ("zai-python-sdk", 8007), ("z.ai2api_python", 8008), ("ZtoApi", 8009), ("Z.ai2api", 8010),
    ("ZtoApits", 8011), ("TalkAI", 8012), ("Copilot-Proxy", 8013),
]
NAMES = [name for name, _ in PROVIDERS]
STARTUP_S = 60.0
UI_TIMEOUT_MS = 20_000

pytestmark = pytest.mark.timeout(180)


# -- helpers --------------------------------------------------------------------------------

def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.TransportError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


def rows() -> dict[str, dict[str, Any]]:
    """The gateway's provider rows, by name."""
    data = httpx.get(f"{GATEWAY}/providers", timeout=5).json()
    return {r["name"]: r for r in data["providers"]}


def all_ready() -> dict[str, dict[str, Any]] | None:
    current = rows()
    return current if all(r["state"] == "ready" for r in current.values()) else None


def row_locator(page: Any, name: str) -> Any:
    return page.locator(f'tr[data-testid="provider-row"][data-name="{name}"]')


def field(page: Any, name: str, name_of_field: str) -> Any:
    return row_locator(page, name).locator(f'[data-field="{name_of_field}"]')


def _ports_in_use() -> list[int]:
    taken = []
    for port in [7999, *(p for _, p in PROVIDERS)]:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.3)
            taken.append(port)
        except httpx.TransportError:
            pass
    return taken


def _stop_demo(proc: subprocess.Popen[bytes], pids: list[int]) -> None:
    """SIGINT (Ctrl-C) and wait; if it hangs, SIGKILL it and the echo providers it left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for pid in pids:  # last resort, only after a hung demo: its providers' process groups
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m supervisor.cli demo` in a temporary folder, with all 14 providers ready."""
    deadline = time.monotonic() + 15  # another demo may still be shutting down
    while (taken := _ports_in_use()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if taken:
        pytest.fail(f"ports {taken} are in use: stop the other unigw first (`unigw down`)")
    cwd = tmp_path_factory.mktemp("demo")
    log_path = cwd / "demo.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "NO_COLOR": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", "demo"], cwd=cwd, env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    pids: list[int] = []
    try:
        def healthy() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"unigw demo exited ({proc.returncode}):\n{log_path.read_text()}")
            return httpx.get(f"{GATEWAY}/health", timeout=2).status_code == 200

        wait_for("GET /health 200", healthy, STARTUP_S)
        ready = wait_for("all 14 providers ready", all_ready, STARTUP_S)
        pids = [r["pid"] for r in ready.values() if r["pid"]]
        yield proc
    finally:
        try:
            pids += [r["pid"] for r in rows().values() if r["pid"] and r["pid"] not in pids]
        except (httpx.HTTPError, ValueError):
            pass
        _stop_demo(proc, pids)


class Recorder:
    """Every request URL and console error of one page."""

    def __init__(self, page: Any) -> None:
        self.urls: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)


@pytest.fixture(scope="module")
def dashboard(demo: subprocess.Popen[bytes], browser: Any) -> Iterator[tuple[Any, Recorder]]:
    """The dashboard open in one page for the whole module, on a laptop-sized viewport."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    sync_api.expect.set_options(timeout=UI_TIMEOUT_MS)
    recorder = Recorder(page)
    page.goto(f"{GATEWAY}/")
    try:
        yield page, recorder
    finally:
        context.close()
        sync_api.expect.set_options(timeout=5_000)  # Playwright's default, for other modules


# -- the routes, without a browser ----------------------------------------------------------

@pytest.fixture(scope="module")
def static_client() -> Iterator[TestClient]:
    routes = [Route("/", index), Mount("/ui", app=frontend_files())]  # as gateway.routes lists them
    with TestClient(Starlette(routes=routes)) as client:
        yield client


def test_root_serves_the_page_uncached_with_a_same_origin_only_policy(static_client) -> None:
    page = static_client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert 'src="/ui/app.js"' in page.text


@pytest.mark.parametrize("path, content_type", [
    ("/ui/app.js", "text/javascript; charset=utf-8"),
    ("/ui/charts.js", "text/javascript; charset=utf-8"),
    ("/ui/style.css", "text/css; charset=utf-8"),
    ("/ui/favicon.svg", "image/svg+xml"),
])
def test_ui_files_are_served_uncached_with_their_content_type(static_client, path,
                                                               content_type) -> None:
    answer = static_client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == content_type
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.content == (FRONTEND / path.removeprefix("/ui/")).read_bytes()


def test_ui_serves_nothing_outside_the_frontend_folder(static_client) -> None:
    assert static_client.get("/ui/nope.js").status_code == 404
    assert static_client.get("/ui/../gateway/dashboard.py").status_code == 404
    assert static_client.get("/ui/%2e%2e/gateway/dashboard.py").status_code == 404


def test_frontend_names_no_other_host() -> None:
    """No CDN, web font or remote script: the page must work on an offline machine."""
    for path in FRONTEND.iterdir():
        if path.suffix in (".html", ".js", ".css"):
            text = path.read_text(encoding="utf-8")
            assert "http://" not in text and "https://" not in text, path.name
            assert "@import" not in text and "url(" not in text, path.name


# -- in the browser -------------------------------------------------------------------------

def test_page_loads_without_console_errors_or_requests_off_the_machine(dashboard) -> None:
    page, recorder = dashboard
    sync_api.expect(page.locator('[data-testid="connection"]')).to_contain_text("live")
    sync_api.expect(page.locator('[data-testid="summary-ready"]')).to_have_text("14/14 ready")
    page.wait_for_timeout(3000)  # a couple of polls
    assert recorder.errors == []
    assert any(u.endswith("/providers") for u in recorder.urls)
    foreign = [u for u in recorder.urls if not u.startswith(f"{GATEWAY}/")]
    assert foreign == []


def test_shows_the_fourteen_providers_with_their_ports(dashboard) -> None:
    page, _ = dashboard
    rows_ = page.locator('tr[data-testid="provider-row"]')
    sync_api.expect(rows_).to_have_count(14)
    assert rows_.evaluate_all("rs => rs.map(r => r.dataset.name)") == NAMES
    for name, port in PROVIDERS:
        sync_api.expect(field(page, name, "port")).to_have_text(str(port))
        sync_api.expect(field(page, name, "state")).to_have_text("ready")


def test_restart_button_shows_progress_and_replaces_the_process(dashboard) -> None:
    page, _ = dashboard
    before = rows()["grok2api"]
    button = row_locator(page, "grok2api").locator('[data-action="restart"]')
    button.click()
    outcome = row_locator(page, "grok2api").locator('[data-testid="row-outcome"]')
    sync_api.expect(outcome).to_contain_text("restarted")
    sync_api.expect(button).to_have_text("Restart")
    sync_api.expect(field(page, "grok2api", "state")).to_have_text("ready")
    after = rows()["grok2api"]
    assert after["state"] == "ready" and after["pid"] != before["pid"]
    sync_api.expect(field(page, "grok2api", "pid")).to_contain_text(str(after["pid"]))


def test_restart_button_increases_the_restart_count(dashboard) -> None:
    page, _ = dashboard
    before = int(field(page, "k2Think2Api", "restarts").inner_text())
    row_locator(page, "k2Think2Api").locator('[data-action="restart"]').click()
    outcome = row_locator(page, "k2Think2Api").locator('[data-testid="row-outcome"]')
    sync_api.expect(outcome).to_contain_text("restarted")
    sync_api.expect(field(page, "k2Think2Api", "restarts")).to_have_text(str(before + 1),
                                                                        timeout=3000)


def test_stop_button_shows_stopped_and_start_brings_it_back(dashboard) -> None:
    page, _ = dashboard
    row = row_locator(page, "k2think2api2")
    row.locator('[data-action="stop"]').click()
    sync_api.expect(field(page, "k2think2api2", "state")).to_have_text("stopped")
    sync_api.expect(field(page, "k2think2api2", "pid")).to_contain_text("—")
    assert rows()["k2think2api2"]["state"] == "stopped"
    row.locator('[data-action="start"]').click()
    sync_api.expect(field(page, "k2think2api2", "state")).to_have_text("ready")
    sync_api.expect(row.locator('[data-testid="row-outcome"]')).to_contain_text("started")


def test_a_killed_provider_shows_on_the_page_without_reload(dashboard) -> None:
    page, _ = dashboard
    before = rows()["TalkAI"]
    page.evaluate("() => { window.__marker = 'same page'; }")
    os.kill(before["pid"], signal.SIGKILL)
    page.wait_for_function(
        """([restarts]) => {
            const row = document.querySelector('tr.provider[data-name="TalkAI"]');
            const count = Number(row.querySelector('[data-field="restarts"]').textContent);
            return row.dataset.state !== "ready" || count > restarts;
        }""",
        arg=[before["restarts"]], timeout=10_000,
    )
    assert page.evaluate("() => window.__marker") == "same page"
    after = wait_for("TalkAI back to ready", lambda: all_ready() and rows()["TalkAI"], 30)
    assert after["pid"] != before["pid"]
    sync_api.expect(field(page, "TalkAI", "pid")).to_contain_text(str(after["pid"]))


def test_a_crash_looping_provider_shows_backoff_with_its_reason_in_full(dashboard) -> None:
    page, _ = dashboard
    name = "Copilot-Proxy"
    killed: set[int] = set()

    def crash_until_looping() -> dict[str, Any] | None:
        row = rows()[name]
        if row["state"] == "backoff" and (row["last_error"] or "").startswith("crash loop"):
            return row
        if row["pid"] and row["pid"] not in killed:
            killed.add(row["pid"])
            os.kill(row["pid"], signal.SIGKILL)
        return None

    looping = wait_for(f"{name} to back off in a crash loop", crash_until_looping, 60)
    assert "next try in" in looping["last_error"]  # it keeps trying, and says when
    sync_api.expect(field(page, name, "state")).to_have_text("backoff")
    detail = page.locator(f'tr[data-testid="provider-detail"][data-name="{name}"]')
    sync_api.expect(detail).to_be_visible()
    sync_api.expect(detail.locator('[data-testid="reason"]').first).to_have_text(
        looping["last_error"])
    row_locator(page, name).locator('[data-action="restart"]').click()
    sync_api.expect(field(page, name, "state")).to_have_text("ready")
    sync_api.expect(detail).to_be_hidden()


def test_strategy_selector_changes_the_gateway_config(dashboard) -> None:
    page, _ = dashboard
    select = page.locator('[data-testid="strategy-select"]')
    options = select.locator("option").evaluate_all("os => os.map(o => o.value)")
    assert {"round_robin", "least_connections", "model_specific"} <= set(options)
    for strategy in ("least_connections", "round_robin"):
        select.select_option(strategy)
        wait_for(f"GET /config strategy {strategy}", lambda s=strategy: httpx.get(
            f"{GATEWAY}/config", timeout=5).json()["gateway"]["strategy"] == s, 10)
        sync_api.expect(page.locator('[data-testid="summary-strategy"]')).to_have_text(strategy)
        sync_api.expect(page.locator('[data-testid="toolbar-outcome"]')).to_contain_text(strategy)


def _ask(page: Any, provider: str, message: str) -> Any:
    """Send one chat message; return the new turn, with its answer's growth being recorded."""
    page.locator('[data-testid="chat-provider"]').select_option(provider)
    page.locator('[data-testid="chat-input"]').fill(message)
    page.evaluate(
        """() => {
            window.__growth = [];
            const log = document.querySelector('[data-testid="chat-log"]');
            new MutationObserver(() => {
                const answers = log.querySelectorAll('[data-testid="chat-answer"]');
                const text = answers.length ? answers[answers.length - 1].textContent : "";
                const last = window.__growth[window.__growth.length - 1];
                if (!last || last.text !== text) window.__growth.push({t: performance.now(), text});
            }).observe(log, {childList: true, subtree: true, characterData: true});
        }"""
    )
    page.locator('[data-testid="chat-send"]').click()
    turn = page.locator('[data-testid="chat-turn"]').last
    sync_api.expect(turn).to_have_attribute("data-kind", "ok")
    return turn


def test_chat_streams_an_echo_answer_and_names_the_provider(dashboard) -> None:
    page, _ = dashboard
    message = "the quick brown fox jumps over the lazy dog"
    turn = _ask(page, "", message)
    assert turn.locator('[data-testid="chat-answer"]').inner_text().strip() == message
    answered_by = turn.locator('[data-testid="chat-provider-name"]').inner_text()
    assert answered_by in NAMES
    growth = page.evaluate("() => window.__growth")
    partial = [g for g in growth if g["text"] and g["text"].strip() != message]
    assert partial, f"the answer did not arrive in pieces: {growth}"
    assert len({g["t"] for g in growth if g["text"]}) >= 2

    turn = _ask(page, "zai-python-sdk", "pinned hello")
    assert turn.locator('[data-testid="chat-provider-name"]').inner_text() == "zai-python-sdk"
    assert turn.locator('[data-testid="chat-answer"]').inner_text().strip() == "pinned hello"
    sync_api.expect(turn.locator('[data-testid="chat-meta"]')).to_contain_text(" s")


def test_traffic_shows_in_the_table_and_the_charts(dashboard) -> None:
    page, _ = dashboard
    before = int(field(page, "Z.ai2api", "reqs").inner_text())
    for i in range(12):
        answer = httpx.post(
            f"{GATEWAY}/v1/chat/completions", headers={"X-Unigw-Provider": "Z.ai2api"},
            json={"model": "GLM-4.5", "messages": [{"role": "user", "content": f"ping {i}"}]},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.headers["x-unigw-provider"] == "Z.ai2api"
        time.sleep(0.15)
    sync_api.expect(field(page, "Z.ai2api", "reqs")).to_have_text(str(before + 12))
    sync_api.expect(field(page, "Z.ai2api", "latency")).to_contain_text("ms")
    chart = page.locator('[data-testid="chart"][data-name="Z.ai2api"]')
    sync_api.expect(chart.locator(".lat")).to_contain_text("ms")
    painted = chart.locator("canvas").evaluate(
        """c => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
    )
    assert painted > 100


def _pinned_chat(provider: str, model: str) -> httpx.Response:
    return httpx.post(
        f"{GATEWAY}/v1/chat/completions", headers={"X-Unigw-Provider": provider}, timeout=10,
        json={"model": model, "messages": [{"role": "user", "content": "are you serving?"}]})


def test_a_failed_call_shows_failing_with_its_message_until_a_good_call(dashboard) -> None:
    page, _ = dashboard
    name, port = "TalkAI", dict(PROVIDERS)["TalkAI"]
    model = rows()[name]["models"][0]
    badge = field(page, name, "serving").locator('[data-testid="serving"]')
    detail = page.locator(f'tr[data-testid="provider-detail"][data-name="{name}"]')
    echo = f"http://127.0.0.1:{port}/_echo/config"
    assert httpx.post(echo, json={"failure": "text-502", "fail_first": 1}).status_code == 200
    try:
        assert _pinned_chat(name, model).status_code == 502
        sync_api.expect(badge).to_have_text("failing")
        sync_api.expect(badge).to_have_attribute("data-serving", "failing")
        sync_api.expect(badge).to_have_attribute(
            "title", re.compile(r"upstream_error at \d\d:\d\d:\d\d: Failed to call upstream"))
        sync_api.expect(detail).to_be_visible()
        sync_api.expect(detail).to_contain_text("Failed to call upstream")

        assert _pinned_chat(name, model).status_code == 200  # fail_first: only the first failed
        sync_api.expect(badge).to_have_text("ok")
        sync_api.expect(badge).to_have_attribute("title", re.compile("last failure: upstream_error"))
        sync_api.expect(detail).not_to_contain_text("Failed to call upstream")
    finally:
        httpx.post(echo, json={"failure": None, "fail_first": None})


ROW_FIELDS = """rows => rows.map(r => ({id: Number(r.dataset.id), ok: r.dataset.ok,
    provider: r.querySelector('[data-field="provider"]').textContent,
    tokens: r.querySelector('[data-field="tokens"]').textContent}))"""


def chats(provider: str, n: int, text: str) -> None:
    """``n`` chat calls pinned to ``provider`` ("text 0", "text 1", …), each answered 200."""
    for i in range(n):
        answer = httpx.post(
            f"{GATEWAY}/v1/chat/completions", headers={"X-Unigw-Provider": provider},
            json={"model": "GLM-4.5", "messages": [{"role": "user", "content": f"{text} {i}"}]},
            timeout=10)
        assert answer.status_code == 200


def test_the_requests_panel_lists_calls_newest_first_and_filters_them(dashboard) -> None:
    page, _ = dashboard
    newest = httpx.get(f"{GATEWAY}/requests?n=1", timeout=5).json()["requests"]
    start = newest[0]["id"] if newest else 0  # earlier tests of this module logged calls too
    chats("TalkAI", 3, "logged")
    missing = httpx.post(f"{GATEWAY}/v1/chat/completions", headers={"X-Unigw-Provider": "nobody"},
                         json={"model": "GLM-4.5", "messages": [{"role": "user", "content": "x"}]})
    assert missing.status_code == 404
    panel = page.locator('[data-testid="requests-panel"]')
    rows = panel.locator('[data-testid="request-row"]')

    def fresh() -> list[dict[str, Any]]:
        return [r for r in rows.evaluate_all(ROW_FIELDS) if r["id"] > start]

    sync_api.expect(rows.first.locator('[data-field="status"]')).to_have_text("404")  # newest
    ids = [r["id"] for r in rows.evaluate_all(ROW_FIELDS)]
    assert ids == sorted(ids, reverse=True) and len(fresh()) == 4

    panel.locator('[data-testid="requests-provider"]').select_option("TalkAI")
    sync_api.expect(rows.first.locator('[data-field="provider"]')).to_have_text("TalkAI")
    sync_api.expect(rows.first.locator('[data-field="route"]')).to_contain_text(
        "/v1/chat/completions")
    talk = wait_for("the TalkAI calls alone", lambda: (f := fresh()) and len(f) == 3 and f)
    assert {r["provider"] for r in talk} == {"TalkAI"}
    assert all(r["tokens"].strip() not in ("", "—") for r in talk)

    panel.locator('[data-testid="requests-provider"]').select_option("")
    panel.locator('[data-testid="requests-outcome"]').select_option("failed")
    failed = wait_for("the failed call alone", lambda: (f := fresh()) and len(f) == 1 and f)
    assert failed[0]["ok"] == "false"
    panel.locator('[data-testid="requests-outcome"]').select_option("all")


def test_the_charts_start_from_the_stored_history_after_a_reload(demo, browser) -> None:
    chats("ZtoApits", 10, "seed")
    time.sleep(1.0)  # the log's writer flushes every half second
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{GATEWAY}/")
        charts = page.locator('[data-testid="charts"]')
        sync_api.expect(charts).to_have_attribute("data-seeded", re.compile(r"^[1-9][0-9]*$"))
        assert int(charts.get_attribute("data-seeded") or 0) >= 10
        card = page.locator('[data-testid="chart"][data-name="ZtoApits"]')
        # a fresh page has one poll, so no point of its own yet: these came from the log
        assert int(card.get_attribute("data-points") or 0) >= 2
    finally:
        context.close()


ATTACK_PAGE = """<!doctype html><html><body>
<form id="f" method="post" action="{url}"><input type="hidden" name="x" value="1"></form>
<script>
window.fetchDone = false;
fetch("{url}", {{method: "POST"}}).catch(() => null).finally(() => {{
  window.fetchDone = true;
  document.getElementById("f").submit();
}});
</script></body></html>"""


@pytest.fixture
def attacker_site() -> Iterator[str]:
    """A page on another origin (a free port) that tries to stop ZtoApi on the gateway."""
    html = ATTACK_PAGE.format(url=f"{GATEWAY}/providers/ZtoApi/stop").encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/attack.html"
    finally:
        server.shutdown()
        server.server_close()


def test_cross_origin_post_to_a_control_route_is_refused(demo, browser, attacker_site) -> None:
    before = rows()["ZtoApi"]
    assert before["state"] == "ready"
    context = browser.new_context()
    page = context.new_page()
    posts: list[str] = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    try:
        with page.expect_navigation(url=f"{GATEWAY}/providers/ZtoApi/stop") as nav:
            page.goto(attacker_site)
        refused = nav.value
        assert refused is not None and refused.status in (401, 403)
    finally:
        context.close()
    assert posts.count(f"{GATEWAY}/providers/ZtoApi/stop") == 2  # the fetch and the form
    time.sleep(1.0)
    after = rows()["ZtoApi"]
    assert after["state"] == "ready"
    assert after["pid"] == before["pid"]


def test_screenshot_of_the_page_is_saved(dashboard) -> None:
    page, recorder = dashboard
    page.bring_to_front()
    page.locator('[data-testid="log-provider"]').select_option("TalkAI")
    sync_api.expect(page.locator('[data-testid="log-status"]')).to_contain_text("lines of TalkAI")
    sync_api.expect(page.locator('[data-testid="summary-ready"]')).to_have_text("14/14 ready")
    page.wait_for_timeout(1600)
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "dashboard.png"
    target.unlink(missing_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 20_000
    page.emulate_media(color_scheme="dark")
    page.wait_for_timeout(1600)
    page.screenshot(path=str(ARTIFACTS / "dashboard-dark.png"), full_page=True)
    page.emulate_media(color_scheme="light")
    assert recorder.errors == []
    assert [u for u in recorder.urls if not u.startswith(f"{GATEWAY}/")] == []
