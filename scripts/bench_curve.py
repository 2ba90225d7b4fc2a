"""The benchmark's curve section (``scripts/bench.py --only curve``): how the gateway's cost grows.

The largest number of echo providers the plan names (100) are started once, each its own
process on a free port; then for each provider count (3, 14, 100) a fresh ``unigw gateway`` is
put in front of that many of them (default gateway settings, its state in a temporary folder)
and measured:

* idle, for a few seconds once every provider is ready: its RSS and CPU (the health probes);
* non-streaming chat calls with ``wrk`` at 1, 64, 512 and 2,048 connections (round_robin, so
  every provider is called): requests/s, p50 / p99, errors, the gateway's CPU milliseconds per
  call, its RSS after the run and how busy it was (its CPU over the run, in % of one core: near
  100 % it is the limit; far below, the calls waited on something else, and its fixed costs,
  such as probing every provider, are shared by fewer calls).

Then, for every client count, the growth from the fewest to the most providers next to the
growth in providers (100 / 3), and the verdict "grows at most linearly in providers": no CPU per
call, RSS or idle CPU grew by a larger factor than the providers did. The cost added per provider
from 3 to 14 and from 14 to 100 is printed too (a super-linear cost shows as a rising one).
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil
from bench_streams import children_cpu, cpu, start_echoes, start_gateway
from bench_supervisor import end

TICK = 0.01  # the resolution of a process's CPU time
WRK_TIMEOUT = 30.0  # at 2,048 clients a call waits seconds for its turn: no error for that
CALLS_PER_CLIENT = 100.0  # a run lasts at least clients / this many seconds (see measure)


class Wrk(Protocol):
    """bench.py's ``wrk``: (requests, p50 ms, p99 ms, errors) of one run."""

    def __call__(self, url: str, clients: int, seconds: float, lua: Path,
                 timeout: float = ...) -> tuple[int, float, float, int]: ...


@dataclass(frozen=True)
class CurvePlan:
    providers: tuple[int, ...]
    clients: tuple[int, ...]
    seconds: float  # per wrk measurement
    idle_seconds: float


FULL = CurvePlan((3, 14, 100), (1, 64, 512, 2048), seconds=3.0, idle_seconds=4.0)
QUICK = CurvePlan((3, 14), (1, 64), seconds=1.0, idle_seconds=2.0)  # the developer loop


@dataclass(frozen=True)
class Point:
    """One wrk run against a gateway with ``providers`` providers."""

    providers: int
    clients: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float  # the gateway's CPU per call
    busy: float  # the gateway's CPU over the run, in cores (1.0: its loop never waited)
    rss: int  # the gateway's RSS after the run


@dataclass(frozen=True)
class Idle:
    providers: int
    rss: int
    cpu_seconds: float  # over the idle window
    window: float


def measure(folder: Path, ports: list[int], plan: CurvePlan, wrk: Wrk,
            lua: Path) -> tuple[Idle, list[Point]]:
    """A fresh gateway in front of ``ports``: idle, then one wrk run per client count."""
    gateway, port = start_gateway(folder, ports)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        gw = psutil.Process(gateway.pid)
        time.sleep(1.0)  # the first probe round after ready
        before = cpu(gw)
        time.sleep(plan.idle_seconds)
        idle = Idle(len(ports), gw.memory_info().rss, cpu(gw) - before, plan.idle_seconds)
        points = []
        for clients in plan.clients:
            points.append(calls(gw, url, (len(ports), clients), plan, wrk, lua))
        return idle, points
    finally:
        end(gateway, signal.SIGTERM)


def calls(gw: psutil.Process, url: str, where: tuple[int, int], plan: CurvePlan, wrk: Wrk,
          lua: Path) -> Point:
    """One wrk run after a warm-up. It lasts long enough for each connection to make many
    calls (at 2,048 clients one call waits seconds): the calls still in flight when wrk stops
    cost the gateway CPU but are not counted, which would inflate the CPU per call."""
    providers, clients = where
    seconds = max(plan.seconds, clients / CALLS_PER_CLIENT)
    wrk(url, clients, 1, lua, timeout=WRK_TIMEOUT)  # warm the connections
    before = cpu(gw)
    requests, p50, p99, errors = wrk(url, clients, seconds, lua, timeout=WRK_TIMEOUT)
    used = cpu(gw) - before
    return Point(providers, clients, requests / seconds, p50, p99, errors,
                 used * 1000 / max(requests, 1), used / seconds, gw.memory_info().rss)


def machine_busy() -> float:
    """CPU seconds all cores have been busy since boot (user, nice, system, interrupts)."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def settle(procs: list[psutil.Process], limit: float = 30.0) -> None:
    """Wait (at most ``limit`` s) until the processes together use under 5 % of a core."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = sum(cpu(p) for p in procs)
        time.sleep(1.0)
        if sum(cpu(p) for p in procs) - before < 0.05:
            return


def run(folder: Path, plan: CurvePlan, wrk: Wrk, lua: Path) -> None:
    """Start the echoes, measure every provider count, print the table and the verdict."""
    started, busy, ours = time.monotonic(), machine_busy(), children_cpu()
    echoes, ports = start_echoes(max(plan.providers))
    echo_rss = sum(psutil.Process(e.pid).memory_info().rss for e in echoes)
    settle([psutil.Process(e.pid) for e in echoes])
    print(f"\ncurve: {len(echoes)} echo processes started in {time.monotonic() - started:.1f} s, "
          f"{echo_rss / 2**30:.2f} GiB RSS together")
    idles, points = [], []
    try:
        for n in plan.providers:
            idle, rows = measure(folder / f"curve-{n}", ports[:n], plan, wrk, lua)
            idles.append(idle)
            points += rows
    finally:
        for proc in echoes:
            end(proc, signal.SIGTERM)
    table(idles, points)
    elapsed, cores = time.monotonic() - started, psutil.cpu_count() or 1
    machine = (machine_busy() - busy) / elapsed / cores
    mine = (children_cpu() - ours) / elapsed / cores  # every process it started, all reaped
    print(f"machine busy over the section ({elapsed:.0f} s): {machine * 100:.0f} % of {cores} "
          f"cores; this bench {mine * 100:.0f} %, others {max(0.0, machine - mine) * 100:.0f} %")
    verdict(idles, points, plan)


def table(idles: list[Idle], points: list[Point]) -> None:
    mib = 2**20
    print(f"{'providers':>9} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'gw cpu ms/call':>14} {'gw RSS MiB':>10} {'gw busy':>7}")
    for idle in idles:
        print(f"{idle.providers:>9} {'idle':>7} {'':>8} {'':>8} {'':>8} {'':>6} "
              f"{idle.cpu_seconds / idle.window * 100:>12.2f} % {idle.rss / mib:>10.1f}")
        for p in (p for p in points if p.providers == idle.providers):
            print(f"{p.providers:>9} {p.clients:>7} {p.rps:>8.0f} {p.p50_ms:>8.2f} "
                  f"{p.p99_ms:>8.2f} {p.errors:>6} {p.cpu_ms:>14.3f} {p.rss / mib:>10.1f} "
                  f"{p.busy * 100:>5.0f} %")


def _growth(name: str, values: dict[int, float], unit: str) -> tuple[str, float]:
    """One line: the factor from the fewest to the most providers and the cost per added
    provider over each step; and the factor."""
    counts = sorted(values)
    low, high = values[counts[0]], values[counts[-1]]
    factor = high / low if low > 0 else float("inf")
    steps = ", ".join(f"{a}->{b} {(values[b] - values[a]) / (b - a):+.4f} {unit}"
                      for a, b in zip(counts, counts[1:], strict=False))
    return f"  {name:<26} x{factor:<7.2f} per added provider: {steps}", factor


def verdict(idles: list[Idle], points: list[Point], plan: CurvePlan) -> None:
    """Each measure's growth from the fewest to the most providers, next to theirs."""
    lo, hi = min(plan.providers), max(plan.providers)
    bound = hi / lo
    lines = []
    for clients in plan.clients:
        row = {p.providers: p for p in points if p.clients == clients}
        lines.append(_growth(f"CPU/call, {clients} clients", {n: p.cpu_ms for n, p in row.items()},
                             "ms"))
        lines.append(_growth(f"RSS, {clients} clients", {n: p.rss / 2**20 for n, p in row.items()},
                             "MiB"))
    lines.append(_growth("RSS, idle", {i.providers: i.rss / 2**20 for i in idles}, "MiB"))
    # idle CPU: at least one clock tick, so that an unmeasurably small base is no false alarm
    lines.append(_growth("CPU, idle", {i.providers: max(i.cpu_seconds, TICK) / i.window * 100
                                       for i in idles}, "%"))
    print(f"\ngrowth from {lo} to {hi} providers (x{bound:.1f}):")
    for text, _ in lines:
        print(text)
    worst = max(factor for _, factor in lines)
    ok = worst <= bound
    said = "grows at most linearly in providers" if ok else "GROWS FASTER THAN LINEARLY"
    print(f"verdict: {said} (largest factor x{worst:.2f} {'<=' if ok else '>'} x{bound:.1f})")
