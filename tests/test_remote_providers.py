"""Providers something else runs (``url:``), and unigw behind unigw (``kind: unigw``): whole
``unigw up -d`` instances, echo providers, real sockets and the official openai client."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest
import yaml
from playwright.sync_api import expect
from support.echo import EchoProc, free_port, start_echo
from support.supervisor import FAST, echo
from test_cli_instance import cleanup

CLIENT = {"X-Unigw-Client": "test"}


def until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class Instance:
    """One ``unigw up -d`` in its own folder, on its own gateway port."""

    def __init__(self, folder: Path, providers: list[dict[str, Any]], **gateway: Any) -> None:
        folder.mkdir()
        self.folder = folder
        self.path = folder / "providers.yaml"
        self.port = free_port()
        doc = {"gateway": {"port": self.port, **gateway}, "supervisor": FAST,
               "providers": providers}
        self.path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.url = f"http://127.0.0.1:{self.port}"

    def unigw(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "supervisor.cli", *args, "-c",
                               str(self.path)], capture_output=True, text=True, timeout=120)

    def up(self) -> None:
        out = self.unigw("up", "-d")
        assert out.returncode == 0, out.stderr

    def rows(self) -> dict[str, dict[str, Any]]:
        data = httpx.get(self.url + "/providers", timeout=5).json()
        return {r["name"]: r for r in data["providers"]}

    def state(self, name: str) -> str:
        return str(self.rows()[name]["state"])

    def act(self, name: str, action: str) -> dict[str, Any]:
        r = httpx.post(f"{self.url}/providers/{name}/{action}", headers=CLIENT, timeout=30)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def client(self, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key="sk-test", max_retries=0,
                             timeout=20, **kw)

    def requests(self, **query: str) -> list[dict[str, Any]]:
        r = httpx.get(self.url + "/requests", params={"n": "50", **query}, timeout=5)
        return list(r.json()["requests"])


def chat(inst: Instance, model: str, pin: str | None = None) -> str:
    """One chat through ``inst``; the provider its answer names."""
    headers = {"X-Unigw-Provider": pin} if pin else None
    raw = inst.client().chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello"}], extra_headers=headers)
    assert raw.parse().choices[0].message.content
    return str(raw.headers["x-unigw-provider"])


def chats_received(e: EchoProc) -> int:
    stats = httpx.get(e.url + "/_echo/stats", timeout=5).json()
    return int(stats["by_path"].get("/v1/chat/completions", 0))


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Instance | EchoProc]]:
    """What a test starts: instances are brought down, echoes stopped, at its end."""
    things: list[Instance | EchoProc] = []
    try:
        yield things
    finally:
        try:
            for thing in reversed(things):
                if isinstance(thing, Instance):
                    out = thing.unigw("down")  # exit 3 when the test brought it down already
                    assert out.returncode in (0, 3), out.stderr
                else:
                    thing.stop()
        finally:
            cleanup(tmp_path)  # whatever happened above, nothing survives the test


def test_a_remote_provider_mixes_with_local_ones_and_follows_its_probes(
        tmp_path: Path, started: list[Instance | EchoProc]) -> None:
    outside = start_echo("--models", "m-r")  # run by the test, not by unigw
    started.append(outside)
    inst = Instance(tmp_path / "one", [
        echo("local", free_port(), "--models", "m-l"),
        {"name": "far", "url": outside.url, "models": ["m-r"], "health": "/health"},
    ])
    started.append(inst)
    inst.up()
    until(lambda: {r["state"] for r in inst.rows().values()} == {"ready"}, "both ready")
    far = inst.rows()["far"]
    assert (far["runtime"], far["url"], far["pid"], far["health"]) == (
        "remote", outside.url, None, "ok")

    assert chat(inst, "m-r") == "far" and chat(inst, "m-l") == "local"
    assert chats_received(outside) == 1
    logs = httpx.get(inst.url + "/providers/far/logs", timeout=10).json()["lines"]
    assert logs[0].startswith(f"far runs at {outside.url}, not here")  # the dashboard's panel

    assert inst.act("far", "stop")["state"] == "stopped"
    with pytest.raises(openai.APIStatusError) as info:
        chat(inst, "m-r")
    assert info.value.status_code == 503
    assert chats_received(outside) == 1  # out of traffic: nothing reached it
    assert outside.proc.poll() is None  # and "stop" stopped nothing

    assert inst.act("far", "start")["state"] == "ready"
    assert chat(inst, "m-r") == "far"
    assert chats_received(outside) == 2

    outside.stop()
    until(lambda: inst.state("far") == "unhealthy", "far unhealthy once it went away")
    row = inst.rows()["far"]
    assert row["health"] == "fail" and "health probe" in row["last_error"]
    assert chat(inst, "m-l") == "local"  # the local one never noticed


def test_an_edge_unigw_routes_to_a_node_unigw_names_both_and_fails_over(
        tmp_path: Path, started: list[Instance | EchoProc], browser: Any) -> None:
    node = Instance(tmp_path / "node", [
        echo("ZtoApi", free_port(), "--models", "m-node,m-both"),
        echo("Qwen", free_port(), "--models", "m-node,m-both"),
    ], api_keys=["node-key"])
    started.append(node)
    node.up()
    edge = Instance(tmp_path / "edge", [
        echo("local", free_port(), "--models", "m-both"),
        {"name": "node-2", "url": node.url, "kind": "unigw", "key": "node-key"},
    ])
    started.append(edge)
    edge.up()
    until(lambda: {r["state"] for r in edge.rows().values()} == {"ready"}, "edge ready")
    until(lambda: "m-node" in edge.rows()["node-2"]["models"], "the node's models read")

    served = chat(edge, "m-node")  # only the node's providers serve it
    outer, _, inner = served.partition("/")
    assert outer == "node-2" and inner in ("ZtoApi", "Qwen"), served
    until(lambda: bool(edge.requests()), "the edge's request log row")  # written in batches
    newest = edge.requests()[0]
    assert newest["provider"] == served and newest["status"] == 200
    assert [r["provider"] for r in edge.requests(provider="node-2")][:1] == [served]
    row = edge.rows()["node-2"]
    assert (row["inner"], row["url"], row["runtime"]) == (inner, node.url, "remote")
    table = edge.unigw("status")
    assert f"node-2 → {inner}" in table.stdout, table.stdout
    until(lambda: bool(node.requests()), "the node's request log row")
    assert node.requests()[0]["provider"] == inner  # the node logged the same call

    for name in ("Qwen", "ZtoApi", "Qwen"):  # a pin passes through the edge to the node
        assert chat(edge, "m-both", pin=f"node-2/{name}") == f"node-2/{name}"
    assert edge.rows()["node-2"]["inner"] == "Qwen"
    page = browser.new_page()
    try:  # the dashboard names the node's address and the provider behind it that answered
        page.goto(edge.url + "/")
        desc = page.locator('tr[data-name="node-2"] [data-field="name"] .pdesc')
        expect(desc).to_have_text(f"{node.url} → Qwen", timeout=20_000)
    finally:
        page.close()
    with edge.client().chat.completions.with_streaming_response.create(
            model="m-both", stream=True, messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Unigw-Provider": "node-2/ZtoApi"}) as raw:
        assert raw.headers["x-unigw-provider"] == "node-2/ZtoApi"  # a stream's answer too
        assert any(chunk.choices for chunk in raw.parse())
    smuggled = httpx.post(edge.url + "/v1/chat/completions",
                          params={"provider": "node-2/Qwen\r\nX-Evil: 1"},
                          json={"model": "m-both", "messages": [{"role": "user", "content": "x"}]})
    assert smuggled.status_code == 400, smuggled.text  # never a header of the node's request
    with pytest.raises(openai.NotFoundError):
        chat(edge, "m-both", pin="local/Qwen")  # not a unigw node: it has no inner providers

    assert node.unigw("down").returncode == 0  # the node goes away
    assert {chat(edge, "m-both") for _ in range(4)} == {"local"}
    until(lambda: edge.state("node-2") == "unhealthy", "node-2 unhealthy")
    with pytest.raises(openai.APIStatusError) as info:
        chat(edge, "m-node")
    assert info.value.status_code == 503


def test_an_edit_moves_a_running_provider_to_its_url_and_back(
        tmp_path: Path, started: list[Instance | EchoProc]) -> None:
    """providers.yaml edited while ``unigw up`` runs: the child stops, the calls go to the
    url; edited back, a child runs again and the calls come home."""
    outside = start_echo("--models", "m")
    started.append(outside)
    local = echo("p", free_port(), "--models", "m")
    inst = Instance(tmp_path / "one", [local])
    started.append(inst)
    inst.up()
    until(lambda: inst.state("p") == "ready", "p ready")
    child = inst.rows()["p"]["pid"]
    doc = yaml.safe_load(inst.path.read_text())

    doc["providers"] = [{"name": "p", "url": outside.url, "models": ["m"], "health": "/health"}]
    inst.path.write_text(yaml.safe_dump(doc, sort_keys=False))
    until(lambda: inst.rows()["p"]["runtime"] == "remote" and inst.state("p") == "ready",
          "p remote and ready")
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
    assert (inst.rows()["p"]["pid"], inst.rows()["p"]["url"]) == (None, outside.url)
    assert chat(inst, "m") == "p" and chats_received(outside) == 1

    doc["providers"] = [local]
    inst.path.write_text(yaml.safe_dump(doc, sort_keys=False))
    until(lambda: inst.rows()["p"]["runtime"] == "python" and inst.state("p") == "ready",
          "p local and ready again")
    assert inst.rows()["p"]["pid"] not in (None, child)
    assert chat(inst, "m") == "p" and chats_received(outside) == 1  # served here again
    assert outside.proc.poll() is None
