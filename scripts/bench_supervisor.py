"""The supervisor's part of the benchmark (``scripts/bench.py``): start, recovery, idle CPU.

Everything runs on free ports, in a temporary folder, with unigw's echo provider:

* the echo provider's **bare start** (spawn → first HTTP answer, no supervisor), the median of
  a few, and the time for 14 of them spawned at once to all answer (the slowest bare start when
  14 start together, the fair yardstick for ``unigw up``);
* ``unigw up`` on 14 echo providers (an installed config: local, nothing to clone) **from
  spawn to 14 ready** in ``GET /providers``;
* **kill → ready**: one provider SIGKILLed, until ``GET /providers/<name>`` shows it ready with
  a new pid; each kill hits a different provider (a second kill of the same one within
  ``backoff_reset_after`` is backed off on purpose: that is the crash-loop policy);
* the **idle CPU** of the ``unigw up`` process (its own CPU time over a quiet window, as a
  percentage of one core) at the default probe interval.

Each number is printed next to its target (issue 13: recovery within the bare start + 0.2 s,
start within the slowest bare start + 1 s, idle below 1% of a core).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
ECHO = [sys.executable, "-m", "supervisor.demo.echo"]


@dataclass(frozen=True)
class Plan:
    """How much to measure: ``--quick`` does less of each."""

    bare_runs: int
    kills: int
    idle_seconds: float
    settle_seconds: float = 5.0  # after the kills: the restarted ones leave their start cadence
    providers: int = 14


FULL = Plan(bare_runs=5, kills=8, idle_seconds=60.0, settle_seconds=10.0)
QUICK = Plan(bare_runs=3, kills=4, idle_seconds=10.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int, path: str = "/health") -> bool:
    """True once ``GET path`` on the port gets any HTTP answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", path)
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()


def spawn(argv: list[str], log: Path | None = None, **kw: Any) -> subprocess.Popen[bytes]:
    out = subprocess.DEVNULL if log is None else log.open("wb")
    return subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True, **kw)


def end(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL, wait: float = 30.0) -> None:
    """Signal the process's group and reap it (SIGKILL after ``wait`` seconds)."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(wait)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- bare starts -------------------------------------------------------------------------------

def bare_starts(n: int) -> list[float]:
    """Spawn ``n`` echo providers at once; seconds until each one answered (sorted)."""
    ports = [free_port() for _ in range(n)]
    started = time.perf_counter()
    procs = [spawn([*ECHO, "--port", str(p)]) for p in ports]
    times: dict[int, float] = {}
    try:
        while len(times) < n:
            if time.perf_counter() - started > 60:
                raise RuntimeError("echo providers did not answer within 60 s")
            for port in ports:
                if port not in times and answers(port):
                    times[port] = time.perf_counter() - started
            time.sleep(0.005)
    finally:
        for proc in procs:
            end(proc)
    return sorted(times.values())


# -- unigw up ----------------------------------------------------------------------------------

def write_config(folder: Path, n: int) -> tuple[Path, int]:
    """providers.yaml with ``n`` echo providers and default timings; (its path, gateway port)."""
    gateway = free_port()
    rows = [f"  - {{name: echo{i}, port: {free_port()}, runtime: python, health: /health, "
            f"start: ['{{python}}', -m, supervisor.demo.echo, --port, '{{port}}'], "
            f"models: [echo-1]}}" for i in range(n)]
    path = folder / "providers.yaml"
    path.write_text(f"gateway: {{port: {gateway}}}\nsupervisor: {{state_dir: {folder / 'state'}}}"
                    "\nproviders:\n" + "\n".join(rows) + "\n")
    return path, gateway


class Gateway:
    """Reads ``GET /providers`` of a running ``unigw up`` over one kept-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> Any | None:
        """The JSON answer, or None while the gateway does not answer."""
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5.0)
            self._conn.request("GET", path)
            return json.loads(self._conn.getresponse().read())
        except (OSError, http.client.HTTPException, ValueError):
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return None

    def until(self, path: str, done: Any, timeout: float = 60.0, step: float = 0.01) -> float:
        """Poll ``path`` until ``done(answer)``; the seconds it took."""
        started = time.perf_counter()
        while True:
            answer = self.get(path)
            if answer is not None and done(answer):
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{path} never became what was waited for: {answer}")
            time.sleep(step)


def kill_to_ready(gw: Gateway, name: str) -> float:
    """SIGKILL the provider's process; seconds until it is ready again with a new pid."""
    row = gw.get(f"/providers/{name}")
    assert row is not None and row["state"] == "ready", row
    old = row["pid"]
    os.kill(old, signal.SIGKILL)
    started = time.perf_counter()
    gw.until(f"/providers/{name}", lambda r: r["state"] == "ready" and r["pid"] not in (None, old))
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@dataclass(frozen=True)
class Supervised:
    start_s: float
    kills_s: list[float]
    idle_percent: float


def supervised(folder: Path, plan: Plan) -> Supervised:
    """``unigw up`` on ``plan.providers`` echo providers: start, kills, idle CPU."""
    config, port = write_config(folder, plan.providers)
    gw = Gateway(port)
    started = time.perf_counter()
    log = folder / "unigw-up.log"
    proc = spawn([sys.executable, "-m", "supervisor.cli", "up", "--config", str(config)], log,
                 env={**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"})
    try:
        gw.until("/providers", lambda a: a["summary"]["ready"] == plan.providers, step=0.02)
        start_s = time.perf_counter() - started
        time.sleep(1.0)  # let the start settle before the kills
        kills = [kill_to_ready(gw, f"echo{i % plan.providers}") for i in range(plan.kills)]
        time.sleep(plan.settle_seconds)
        before, t0 = cpu_seconds(proc.pid), time.perf_counter()
        time.sleep(plan.idle_seconds)
        idle = (cpu_seconds(proc.pid) - before) / (time.perf_counter() - t0) * 100
        return Supervised(start_s, kills, idle)
    except RuntimeError:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        end(proc, signal.SIGTERM, wait=60.0)


# -- the report --------------------------------------------------------------------------------

def run(folder: Path, plan: Plan) -> None:
    """Measure and print the supervisor's table."""
    single = [bare_starts(1)[0] for _ in range(plan.bare_runs)]
    bare = statistics.median(single)
    together = bare_starts(plan.providers)
    sup = supervised(folder, plan)
    kill_med, kill_max = statistics.median(sup.kills_s), max(sup.kills_s)
    n = plan.providers
    rows = [
        (f"echo bare start, median of {len(single)}", f"{bare:.3f} s", "", None),
        (f"{n} echoes spawned at once, all answer", f"{together[-1]:.3f} s",
         f"(fastest {together[0]:.3f} s)", None),
        (f"kill -> ready, median of {len(sup.kills_s)}", f"{kill_med:.3f} s",
         f"<= {bare + 0.2:.3f} s (bare + 0.2)", kill_med <= bare + 0.2),
        (f"kill -> ready, max of {len(sup.kills_s)}", f"{kill_max:.3f} s",
         f"<= {bare + 0.2:.3f} s (bare + 0.2)", kill_max <= bare + 0.2),
        (f"unigw up -> {n} ready", f"{sup.start_s:.3f} s",
         f"<= {together[-1] + 1:.3f} s (slowest + 1)", sup.start_s <= together[-1] + 1),
        (f"idle unigw CPU, {plan.idle_seconds:g} s window", f"{sup.idle_percent:.2f} %",
         "< 1 % of one core", sup.idle_percent < 1.0),
    ]
    print(f"\nsupervisor: {n} echo providers, default probe interval"
          f"\n{'measure':<40} {'value':>10}   {'target':<30} {'':>4}")
    for label, value, target, ok in rows:
        verdict = "" if ok is None else ("ok" if ok else "MISS")
        print(f"{label:<40} {value:>10}   {target:<30} {verdict:>4}")
