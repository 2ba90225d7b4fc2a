"""Benchmark the gateway against calling an echo provider directly.

    python scripts/bench.py [--duration 3] [--quick] [--only gateway|supervisor]

The gateway part starts three echo providers and a gateway (``unigw gateway``) in front of them, all
as subprocesses on free ports, with every feature on (the request log, gateway keys, which every
call sends, the direct ones too), then measures with ``wrk`` (Debian: ``apt-get install wrk``):

* non-streaming chat calls at 1 and 64 concurrent clients, one echo provider called directly
  and the gateway with each strategy: requests/s, p50 and p99 latency, errors, and the
  gateway's CPU milliseconds per request (its process's CPU time over the run / requests);
* streams at 16, 4 and 1 clients, directly and through the gateway: time to first content
  p50 / p99 (:mod:`bench_ttfc`: a small asyncio client in its own process that stops the clock
  at the first chunk carrying content, not at the first byte) and the CPU per stream of the
  process that serves each path;
* the request log's cost: the gateway (round_robin, 64 clients) with ``request_log`` on and
  off, run back to back twice (the machine is noisy), its CPU milliseconds per call each time;
* the gateway's peak resident memory;
* the floors under it (:mod:`bench_floor`), served by uvicorn as the gateway is and measured
  beside it: a constant answer (what uvicorn itself costs a call) and a bare proxy through the
  gateway's own upstream client (uvicorn plus the client side, none of unigw's features), so
  the report can say how much of the gateway's CPU per call is uvicorn's, the upstream call's
  and its features' own, and the streams' time to first content through the bare proxy too.

The supervisor part (:mod:`bench_supervisor`) measures the echo provider's bare start,
``unigw up`` on 14 of them, kill → ready and the idle supervisor's CPU, each next to its target.

The streams part (:mod:`bench_streams`) holds 10,000 slow streams open through one gateway at once
(``--quick``: 1,000; ``--streams N`` asks for N) and reports failures, memory per open stream and
what limits it; the curve part (:mod:`bench_curve`) measures the gateway's CPU per call and memory
with 3, 14 and 100 echo providers behind it at 1, 64, 512 and 2,048 clients (``--quick``: 3
and 14 providers at 1 and 64 clients), with the verdict whether that grows at most linearly in
providers.

A full run takes about eleven minutes on the 2 shared cores (the gateway part four, streams
about two and a half, curve three and a half: starting 100 echo providers alone takes 20-50 s);
``--quick`` (1 s measurements, two strategies, a 10 s idle window, 1,000 streams, the curve at
3 and 14 providers and 1 and 64 clients) about two, ``--quick --only gateway`` under one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import bench_curve  # noqa: E402
import bench_floor  # noqa: E402
import bench_streams  # noqa: E402
import bench_supervisor  # noqa: E402
import bench_ttfc  # noqa: E402
from bench_ttfc import KEY, cpu_seconds  # noqa: E402

from gateway.strategies import STRATEGIES  # noqa: E402

BODY = json.dumps({"model": "echo-1", "messages": [
    {"role": "user", "content": "hello from the benchmark, echo this back please"}]})
LUA = """wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer """ + KEY + """"
"""


@dataclass
class Row:
    target: str
    clients: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float | None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered 200")


def start_echoes(n: int) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    ports = [free_port() for _ in range(n)]
    procs = [spawn([sys.executable, "-m", "supervisor.demo.echo", "--port", str(p)]) for p in ports]
    for port in ports:
        wait_http(f"http://127.0.0.1:{port}/health")
    return procs, ports


CONSTANT = "floor: uvicorn, constant answer"
BARE = "floor: uvicorn + bare proxy"


def start_floors(ports: list[int]) -> dict[str, tuple[subprocess.Popen[bytes], int]]:
    """The two floors of :mod:`bench_floor`, each on a free port: by label, (process, port)."""
    floors = {}
    for label, kind in ((CONSTANT, "constant"), (BARE, "proxy")):
        port = free_port()
        proc = spawn([sys.executable, bench_floor.__file__, kind, str(port),
                      *map(str, ports)])
        floors[label] = (proc, port)
        wait_http(f"http://127.0.0.1:{port}/health")
    return floors


def start_gateway(folder: Path, ports: list[int], request_log: bool = True,
                  ) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    providers = "\n".join(
        f"  - {{name: echo{i}, port: {p}, runtime: python, start: [x], health: /health, "
        f"models: [echo-1, echo-2]}}" for i, p in enumerate(ports))
    config = folder / "providers.yaml"
    log = "true" if request_log else "false"
    config.write_text(f"gateway: {{port: {port}, request_log: {log}, api_keys: [{KEY}]}}\n"
                      f"providers:\n{providers}\n")
    proc = spawn([sys.executable, "-m", "supervisor.cli", "gateway", "--config", str(config)])
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health")
    while httpx.get(url + "/providers").json()["summary"]["ready"] < len(ports):
        time.sleep(0.05)
    return proc, url


def _ms(text: str) -> float:
    """wrk's ``512.00us`` / ``3.21ms`` / ``1.05s`` / ``1.00m`` in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[match.group(2)]
    return float(match.group(1)) * unit


def wrk(url: str, clients: int, seconds: float, lua: Path,
        timeout: float = 2.0) -> tuple[int, float, float, int]:
    """(requests, p50 ms, p99 ms, errors) of one wrk run; a call slower than ``timeout``
    seconds counts as an error (wrk's own default: 2 s)."""
    argv = ["wrk", "-t1", f"-c{clients}", f"-d{round(seconds)}s", f"--timeout={timeout:g}s",
            "--latency", "-s", str(lua), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, p50, p99, errors + (int(non2xx.group(1)) if non2xx else 0)


def measure(target: str, url: str, clients: int, seconds: float, lua: Path,
            gateway: psutil.Process | None) -> Row:
    wrk(url, clients, 1, lua)  # warm the connections and the caches
    before = cpu_seconds(gateway)
    requests, p50, p99, errors = wrk(url, clients, seconds, lua)
    cpu = (cpu_seconds(gateway) - before) * 1000 / max(requests, 1) if gateway else None
    return Row(target, clients, requests / seconds, p50, p99, errors, cpu)


# -- the run ---------------------------------------------------------------------------------------

def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM on Linux; else the current RSS)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return int(psutil.Process(pid).memory_info().rss)


def run(seconds: float, folder: Path, strategies: list[str],
        stream_clients: tuple[int, ...], log_only: bool = False) -> None:
    lua = folder / "post.lua"
    lua.write_text(LUA % BODY)
    echoes, ports = start_echoes(3)
    gateway = None
    floors: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        if log_only:
            log_report(log_cost(seconds, folder, ports, lua))
            return
        floors = start_floors(ports)
        gateway, url = start_gateway(folder, ports)
        gw = psutil.Process(gateway.pid)
        direct = f"http://127.0.0.1:{ports[0]}/v1/chat/completions"
        rows = [measure("echo direct", direct, c, seconds, lua, None) for c in (1, 64)]
        for label, (proc, port) in floors.items():
            rows += [measure(label, f"http://127.0.0.1:{port}/v1/chat/completions", c, seconds,
                             lua, psutil.Process(proc.pid)) for c in (1, 64)]
        for name in strategies:
            httpx.put(url + "/config", json={"strategy": name}, headers={"X-Unigw-Client": "bench"})
            for clients in (1, 64):
                rows.append(measure(f"gateway {name}", url + "/v1/chat/completions", clients,
                                    seconds, lua, gw))
        report(rows)
        floor_report(rows)
        httpx.put(url + "/config", json={"strategy": "round_robin"},
                  headers={"X-Unigw-Client": "bench"})
        gateway_port = int(url.rsplit(":", 1)[1])
        servers = {ports[0]: psutil.Process(echoes[0].pid), gateway_port: gw,
                   floors[BARE][1]: psutil.Process(floors[BARE][0].pid)}
        bench_ttfc.stream_report(ports[0], gateway_port, seconds, stream_clients,
                                 [(BARE, floors[BARE][1])], servers)
        print(f"\ngateway peak RSS: {peak_rss(gateway.pid) / 2**20:.1f} MiB")
        log_report(log_cost(seconds, folder, ports, lua))
    finally:
        for proc in [*echoes, *([gateway] if gateway else []),
                     *(proc for proc, _ in floors.values())]:
            with_group(proc, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                with_group(proc, signal.SIGKILL)


def log_cost(seconds: float, folder: Path, ports: list[int], lua: Path) -> list[Row]:
    """The gateway with the request log on, then off, twice: a fresh gateway for each run."""
    rows = []
    for run_no, order in ((1, (True, False)), (2, (False, True))):  # neither always goes first
        for on in order:
            where = folder / f"log-{run_no}-{'on' if on else 'off'}"
            where.mkdir()
            proc, url = start_gateway(where, ports, request_log=on)
            try:
                rows.append(measure(f"request log {'on' if on else 'off'} (run {run_no})",
                                    url + "/v1/chat/completions", 64, seconds, lua,
                                    psutil.Process(proc.pid)))
                if on:
                    writer_cpu_per_row(url)
            finally:
                with_group(proc, signal.SIGTERM)
                proc.wait(10)
    return rows


def writer_cpu_per_row(url: str) -> None:
    """The writer thread's own CPU per row, from /metrics."""
    time.sleep(1.0)  # the last batch
    text = httpx.get(url + "/metrics").text
    value = {m.group(1): float(m.group(2)) for m in re.finditer(
        r"^(unigw_request_log_\w+_total) (\S+)$", text, re.M)}
    rows = value.get("unigw_request_log_rows_total", 0.0)
    cpu = value.get("unigw_request_log_writer_cpu_seconds_total", 0.0)
    print(f"  (request log writer thread: {cpu * 1e6 / max(rows, 1):.1f} µs CPU per row, "
          f"{rows:.0f} rows)", file=sys.stderr)


def log_report(rows: list[Row]) -> None:
    """The request log's rows, and the CPU per call it adds (the mean of the two runs)."""
    print(f"\n{'request log, 64 clients':<32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'gw cpu ms/req':>13}")
    for r in rows:
        print(f"{r.target:<32} {r.rps:>9.0f} {r.p50_ms:>8.3f} {r.p99_ms:>8.3f} {r.errors:>6} "
              f"{r.cpu_ms or 0.0:>13.3f}")
    on = [r.cpu_ms or 0.0 for r in rows if " on " in r.target]
    off = [r.cpu_ms or 0.0 for r in rows if " off " in r.target]
    print(f"gateway CPU per call: log on {sum(on) / len(on):.3f} ms, off "
          f"{sum(off) / len(off):.3f} ms ({(sum(on) - sum(off)) / len(on) * 1000:+.0f} µs)")


def with_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def report(rows: list[Row]) -> None:
    base = {r.clients: r.p50_ms for r in rows if r.target == "echo direct"}
    print(f"{'target':<32} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'+p50 ms':>8} {'errors':>6} {'gw cpu ms/req':>13}")
    for r in rows:
        added = "" if r.target == "echo direct" else f"{r.p50_ms - base[r.clients]:+.3f}"
        cpu = "" if r.cpu_ms is None else f"{r.cpu_ms:.3f}"
        print(f"{r.target:<32} {r.clients:>7} {r.rps:>9.0f} {r.p50_ms:>8.3f} {r.p99_ms:>8.3f} "
              f"{added:>8} {r.errors:>6} {cpu:>13}")


def floor_report(rows: list[Row]) -> None:
    """Where the gateway's CPU per call goes: uvicorn's own, the client side, its features."""
    cpu = {(r.target, r.clients): r.cpu_ms or 0.0 for r in rows}
    print("\ngateway CPU per call, against the floors (round_robin):")
    for clients in (1, 64):
        server, bare = cpu[CONSTANT, clients], cpu[BARE, clients]
        gateway = cpu.get(("gateway round_robin", clients), 0.0)
        print(f"  {clients:>2} clients: uvicorn alone {server:.3f} ms, + the upstream call "
              f"{bare - server:+.3f} = {bare:.3f} ms (bare proxy), + unigw's features "
              f"{gateway - bare:+.3f} = {gateway:.3f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=3, help="seconds per measurement")
    parser.add_argument("--log-only", action="store_true",
                        help="measure only the request log's cost (on vs off)")
    parser.add_argument("--quick", action="store_true",
                        help="everything, shorter (1 s measurements, 2 strategies, 1,000 "
                        "streams, a small curve): about two minutes; --only gateway under one")
    parser.add_argument("--only", choices=("gateway", "supervisor", "streams", "curve"),
                        help="one part only")
    parser.add_argument("--streams", type=int,
                        help="open streams in the streams part (default 10,000, --quick 1,000); "
                        "asked for, they are run even past the gateway's file descriptor limit")
    args = parser.parse_args(argv)
    if args.only in (None, "gateway", "curve") and shutil.which("wrk") is None:
        print("bench: wrk is not installed (Debian: apt-get install -y wrk)", file=sys.stderr)
        return 2
    seconds = 1 if args.quick else args.duration
    strategies = list(STRATEGIES)[:2] if args.quick else list(STRATEGIES)
    with tempfile.TemporaryDirectory(prefix="unigw-bench-") as folder:
        if args.only in (None, "gateway"):
            run(seconds, Path(folder), strategies, (16,) if args.quick else (16, 4, 1),
                args.log_only)
        if args.log_only:
            return 0
        if args.only in (None, "supervisor"):
            plan = bench_supervisor.QUICK if args.quick else bench_supervisor.FULL
            bench_supervisor.run(Path(folder), plan)
        if args.only in (None, "streams"):
            streams = bench_streams.QUICK if args.quick else bench_streams.FULL
            if args.streams is not None:
                streams = dataclasses.replace(streams, streams=args.streams, capped=False)
            bench_streams.run(Path(folder), streams)
        if args.only in (None, "curve"):
            lua = Path(folder) / "post.lua"
            lua.write_text(LUA % BODY)
            bench_curve.run(Path(folder), bench_curve.QUICK if args.quick else bench_curve.FULL,
                            wrk, lua)
    return 0


if __name__ == "__main__":
    sys.exit(main())
