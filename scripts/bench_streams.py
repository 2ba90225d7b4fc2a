"""The benchmark's streams section (``scripts/bench.py --only streams``): many open streams at once.

One gateway (``unigw gateway``) in front of a few echo providers that stream slowly
(``--chunk-delay``), all on free ports on 127.0.0.1. Client processes (asyncio, raw sockets, one
connection per stream) open the streams at a fixed rate, so that the first ones are still open
when the last ones start; every stream must end with its ``[DONE]`` event. Meanwhile the
gateway's resident memory, file descriptors and CPU are sampled. Printed:

* streams asked, completed, failed (by cause), the peak number open at once, and the rate they
  opened at;
* the gateway's RSS before, at the peak and after, and the memory per open stream
  ((peak - before) / peak open);
* its CPU per stream and its busiest second (the gateway is one asyncio loop: one core at most);
* what limits it: file descriptors (the gateway holds two per stream, the client's and the
  provider's), memory, CPU; and how busy the machine was (other engineers share it).

The bench raises its own ``RLIMIT_NOFILE`` soft limit to the hard one, which the gateway and the
clients inherit. A gateway process cannot hold more streams than (limit - its idle fds) / 2: the
section runs at most that many unless a stream count is asked for explicitly.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import resource
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from bench_stream_client import GAPS, Outcome, raise_fd_limit
from bench_supervisor import Gateway, end, free_port, spawn

REPO = Path(__file__).resolve().parents[1]
CLIENT = Path(__file__).with_name("bench_stream_client.py")


@dataclass(frozen=True)
class StreamPlan:
    """How many streams, opened how fast, held how long after the last one opened."""

    streams: int
    echoes: int
    rate: float  # streams opened per second, all clients together
    hold: float  # seconds every stream stays open after the last one opened (if on schedule)
    clients: int = 2  # client processes
    capped: bool = True  # run at most as many as the gateway's fd limit holds

    @property
    def ramp(self) -> float:
        """Seconds from the first stream opened to the last, on schedule."""
        return self.streams / self.rate

    @property
    def chunk_delay(self) -> float:
        """The echo's delay between chunks until every stream is open: a stream lasts three
        times the ramp plus the hold and 5 s (a busy machine opens them late), and the delay
        stays under the gateway's first_content_timeout."""
        return min(25.0, (self.slack + self.hold) / GAPS)

    @property
    def slack(self) -> float:
        """Seconds the streams are given to be all open at once."""
        return 3 * self.ramp + 5


FULL = StreamPlan(streams=10_000, echoes=4, rate=250.0, hold=5.0)
QUICK = StreamPlan(streams=1_000, echoes=2, rate=400.0, hold=2.0)
FD_SPARE = 16  # the gateway's fds beside its idle ones and two per stream (probes, the log)
RELEASE_DELAY = 0.05  # the echoes' chunk delay once every stream has been open at once


# -- the processes --------------------------------------------------------------------------------

def free_ports(n: int) -> list[int]:
    """``n`` different free ports (each held until all are chosen, so none comes twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def start_echoes(n: int, *flags: str) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    """``n`` echo providers on free ports, spawned at once; returns once all answer."""
    ports = free_ports(n)
    procs = [spawn([sys.executable, "-m", "supervisor.demo.echo", "--port", str(p), *flags])
             for p in ports]
    deadline = time.monotonic() + 30 + n * 0.5
    for port in ports:
        while Gateway(port).get("/health") is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"echo on {port} did not answer")
            time.sleep(0.05)
    return procs, ports


def start_gateway(folder: Path, ports: list[int], **gateway: object,
                  ) -> tuple[subprocess.Popen[bytes], int]:
    """``unigw gateway`` in front of the echoes on ``ports``, its state in ``folder``, with
    extra ``gateway:`` settings; returns once every provider is ready."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"  - {{name: echo{i}, port: {p}, runtime: python, start: [x], "
                     f"health: /health, models: [echo-1, echo-2]}}" for i, p in enumerate(ports))
    settings = ", ".join(f"{k}: {json.dumps(v)}" for k, v in {"port": port, **gateway}.items())
    config = folder / "providers.yaml"
    config.write_text(f"gateway: {{{settings}}}\nsupervisor: {{state_dir: {folder / 'state'}}}\n"
                      f"providers:\n{rows}\n")
    proc = spawn([sys.executable, "-m", "supervisor.cli", "gateway", "--config", str(config)],
                 folder / "gateway.log")
    try:
        Gateway(port).until("/providers", lambda a: a["summary"]["ready"] == len(ports),
                            timeout=60 + len(ports), step=0.05)
    except RuntimeError:
        end(proc)
        print((folder / "gateway.log").read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    return proc, port


# -- sampling the gateway -------------------------------------------------------------------------

@dataclass
class Samples:
    """The gateway's RSS, fds and CPU seconds, and the machine's busy CPU, every ``step`` s."""

    rss: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    machine: list[float] = field(default_factory=list)  # busy fraction of all cores


class Sampler(threading.Thread):
    def __init__(self, pid: int, step: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.proc, self.step, self.samples = psutil.Process(pid), step, Samples()
        self._stop_event = threading.Event()

    def run(self) -> None:
        psutil.cpu_percent()
        while not self._stop_event.wait(self.step):
            times = self.proc.cpu_times()
            self.samples.rss.append(self.proc.memory_info().rss)
            self.samples.fds.append(self.proc.num_fds())
            self.samples.cpu.append(times.user + times.system)
            self.samples.machine.append(psutil.cpu_percent() / 100)

    def stop(self) -> Samples:
        self._stop_event.set()
        self.join()
        return self.samples


def busiest_second(cpu: list[float], step: float) -> float:
    """The largest CPU seconds used over any one-second window of the samples (per core)."""
    k = max(1, round(1 / step))
    return max((cpu[i + k] - cpu[i] for i in range(len(cpu) - k)), default=0.0) / (k * step)


def peak_open(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = now = 0
    for _, delta in edges:
        now += delta
        most = max(most, now)
    return most


# -- the run --------------------------------------------------------------------------------------

def start_clients(port: int, n: int, plan: StreamPlan, timeout: float,
                  ) -> list[subprocess.Popen[bytes]]:
    """``plan.clients`` client processes opening ``n`` streams at ``plan.rate`` together."""
    first, step = time.monotonic() + 1.5, plan.clients / plan.rate  # 1.5 s: the clients start
    children = []
    for j in range(plan.clients):
        count = n // plan.clients + (j < n % plan.clients)
        argv = [sys.executable, str(CLIENT), str(port), repr(first + j / plan.rate),
                repr(step), str(count), repr(timeout)]
        children.append(subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE))
    return children


def collect(children: list[subprocess.Popen[bytes]], timeout: float) -> Outcome:
    """The clients' outcomes, added up."""
    total = Outcome()
    for child in children:
        out, _ = child.communicate(timeout=timeout)
        part = json.loads(out)
        total.spans += [(a, b) for a, b in part["spans"]]
        total.failures.update(part["failures"])
        total.events.update({int(k): v for k, v in part["events"].items()})
    return total


def set_chunk_delay(ports: list[int], seconds: float) -> None:
    """The echoes' delay between stream chunks, changed at run time (``POST /_echo/config``)."""
    for port in ports:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5.0)
        conn.request("POST", "/_echo/config", json.dumps({"chunk_delay": seconds}))
        answer = conn.getresponse()
        answer.read()
        conn.close()
        if answer.status != 200:
            raise RuntimeError(f"echo on {port} refused chunk_delay: HTTP {answer.status}")


def hold_then_release(gw: psutil.Process, ports: list[int], fds: int, until: float,
                      hold: float) -> None:
    """Wait until the gateway holds ``fds`` descriptors (about every stream open) or ``until``,
    keep them open ``hold`` seconds, then let the echoes finish fast."""
    while gw.num_fds() < fds and time.monotonic() < until:
        time.sleep(0.1)
    time.sleep(hold)
    set_chunk_delay(ports, RELEASE_DELAY)


@dataclass(frozen=True)
class Run:
    """What one streams run measured."""

    plan: StreamPlan  # as run (capped)
    asked: int
    limit: int
    idle_fds: int
    outcome: Outcome
    samples: Samples
    rss_before: int
    rss_after: int
    gateway_cpu: float
    ours_cpu: float  # gateway, echoes and clients
    seconds: float
    available: int  # memory available when it began


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_streams(folder: Path, plan: StreamPlan) -> Run:
    """Start the echoes and the gateway, warm it, measure; stop everything."""
    limit = raise_fd_limit()
    echoes, ports = start_echoes(plan.echoes)
    room = max(16384, plan.streams + 64)
    gateway, port = start_gateway(folder, ports, max_connections=room, max_clients=room)
    try:
        gw = psutil.Process(gateway.pid)
        warm = StreamPlan(50, plan.echoes, 100.0, 0.0, plan.clients)
        collect(start_clients(port, 50, warm, 30.0), 60.0)
        time.sleep(1.0)
        idle_fds = gw.num_fds()
        n = plan.streams if not plan.capped else min(plan.streams,
                                                     (limit - idle_fds - FD_SPARE) // 2)
        return measure(dataclasses.replace(plan, streams=n), gw, port, ports, echoes,
                       (plan.streams, limit, idle_fds))
    finally:
        for proc in [gateway, *echoes]:
            end(proc, wait=10.0)


def measure(plan: StreamPlan, gw: psutil.Process, port: int, ports: list[int],
            echoes: list[subprocess.Popen[bytes]], given: tuple[int, int, int]) -> Run:
    """Open ``plan.streams`` streams, all open at once for ``plan.hold`` s, sampling the gateway."""
    asked, limit, idle_fds = given
    rss_before, available = gw.memory_info().rss, psutil.virtual_memory().available
    set_chunk_delay(ports, plan.chunk_delay)
    procs = [gw, *(psutil.Process(e.pid) for e in echoes)]
    before = sum(cpu(p) for p in procs) + children_cpu()
    gateway_before, started = cpu(gw), time.monotonic()
    sampler = Sampler(gw.pid)
    sampler.start()
    timeout = plan.slack + plan.chunk_delay * GAPS + 60
    children = start_clients(port, plan.streams, plan, timeout)
    fds = idle_fds + 2 * plan.streams - FD_SPARE  # a probe's connection comes and goes
    hold_then_release(gw, ports, fds, started + plan.slack, plan.hold)
    outcome = collect(children, timeout + plan.slack + 30)
    time.sleep(2.0)
    samples, seconds = sampler.stop(), time.monotonic() - started
    ours = sum(cpu(p) for p in procs) + children_cpu() - before
    return Run(plan, asked, limit, idle_fds, outcome, samples, rss_before,
               gw.memory_info().rss, cpu(gw) - gateway_before, ours, seconds, available)


# -- the report -----------------------------------------------------------------------------------

def rows(r: Run) -> list[tuple[str, str, str]]:
    """(measure, value, note) of the run."""
    o, s, mib, n = r.outcome, r.samples, 2**20, r.plan.streams
    done = sum(o.events.values()) - o.failures["no [DONE]"]
    peak, rss_peak = peak_open(o.spans), max(s.rss, default=r.rss_before)
    opens = sorted(a for a, _ in o.spans)
    rate = (len(opens) - 1) / (opens[-1] - opens[0]) if len(opens) > 1 else 0.0
    cores = psutil.cpu_count() or 1
    machine = sum(s.machine) / max(len(s.machine), 1)
    ours = r.ours_cpu / r.seconds / cores
    failures = ", ".join(f"{k} {v}" for k, v in o.failures.most_common()) or "none"
    held = "all open at once" if peak == n else "NOT all open at once"
    return [
        ("completed with [DONE]", f"{done:,} of {n:,}", f"failed: {failures}"),
        ("peak open at once", f"{peak:,}", f"{held}; opened at {rate:.0f}/s "
         f"(asked {r.plan.rate:.0f}/s)"),
        ("gateway RSS before / peak / after",
         f"{r.rss_before / mib:.0f} / {rss_peak / mib:.0f} / {r.rss_after / mib:.0f} MiB", ""),
        ("gateway memory per open stream", f"{per_stream(r) / 1024:.1f} KiB",
         "(peak - before) / peak open"),
        ("gateway fds at peak", f"{max(s.fds, default=0):,}", f"of {r.limit:,} (RLIMIT_NOFILE)"),
        ("gateway CPU per stream", f"{r.gateway_cpu * 1000 / max(n, 1):.2f} ms",
         f"{r.gateway_cpu:.1f} s in all"),
        ("gateway busiest second", f"{busiest_second(s.cpu, 0.25) * 100:.0f} %", "of one core"),
        ("machine busy over the run", f"{machine * 100:.0f} %", f"of {cores} cores; this bench "
         f"{ours * 100:.0f} %, others {max(0.0, machine - ours) * 100:.0f} %"),
    ]


def per_stream(r: Run) -> float:
    """The gateway's resident bytes per open stream: (peak - before) / peak open."""
    rss_peak = max(r.samples.rss, default=r.rss_before)
    return (rss_peak - r.rss_before) / max(peak_open(r.outcome.spans), 1)


def report(r: Run) -> None:
    """Print what the run measured and what limits it."""
    plan = r.plan
    print(f"\nstreams: {plan.streams:,} slow echo streams through one gateway ({plan.echoes} "
          f"echo providers, {plan.clients} client processes, a chunk every "
          f"{plan.chunk_delay:.2f} s until all are open)")
    fd_room = (r.limit - r.idle_fds - FD_SPARE) // 2
    if plan.streams < r.asked:
        print(f"  asked {r.asked:,}: the gateway's fd limit {r.limit:,} holds ({r.limit:,} - "
              f"{r.idle_fds} idle - {FD_SPARE} spare fds) / 2 per stream = {fd_room:,} streams")
    for label, value, note in rows(r):
        print(f"  {label:<36} {value:>22}   {note}")
    memory = int(r.available / per_stream(r)) if per_stream(r) > 0 else 0
    per_ms = r.gateway_cpu * 1000 / max(plan.streams, 1)
    print(f"  limits: fds {fd_room:,} streams per gateway process (2 fds each, RLIMIT_NOFILE "
          f"{r.limit:,}); memory ~{memory:,} streams in the {r.available / 2**30:.1f} GiB "
          f"available; CPU ~{1000 / max(per_ms, 1e-9):.0f} streams/s on the gateway's one core "
          "(an open stream costs CPU only per chunk)")
    print(f"  -> the first limit is {'fds' if fd_room <= memory else 'memory'}")


def run(folder: Path, plan: StreamPlan) -> None:
    """Measure and print the streams section."""
    report(run_streams(folder / "streams", plan))
