"""``unigw check``: what would stop providers.yaml's providers from running, found up front.

The config itself was validated when it loaded; this looks at the machine: secrets the
environment (or .env) does not supply, toolchains, and ports that something else holds; a
``url:`` provider is only shown, with whether its host is another machine; a provider with
``instances:`` is one line, and what is true of several of its instances is said once. It
warns of a secret on a start command line (any local user can read it in ``ps``). When unigw
runs, it also passes on the instance's warnings (a provider exposed on 0.0.0.0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from supervisor.cli.client import ControlError, InstanceClient, NotRunning
from supervisor.config import Address, Config, ProviderConfig, is_loopback
from supervisor.install import toolchains
from supervisor.proc import instance
from supervisor.proc.leftovers import port_holder
from supervisor.proc.process import port_is_free


@dataclass
class Report:
    """Lines to show (one per provider) and the problems that make the check fail."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def run(config: Config) -> Report:
    """Check every enabled provider and the gateway's port."""
    report = Report()
    label = config.path.name
    ours = instance.running(config.state_dir) is not None  # our own instance holds the ports
    if not ours and not port_is_free(config.gateway.port, config.gateway.host):
        report.problems.append(f"{label}: gateway: port: {port_holder(config.gateway.port)}")
    if not config.providers:
        report.warnings.append(f"{label}: no providers: the gateway would have nothing to "
                               "route to")
    for unit in _units(config.providers):
        _check(unit, config, ours, report)
    if ours:
        report.lines.append("(unigw is running: its own ports were not checked)")
        report.warnings += _running_warnings(config)
    return report


def _units(providers: Sequence[ProviderConfig]) -> list[tuple[ProviderConfig, ...]]:
    """The providers as providers.yaml lists them: one, or all the instances of one."""
    units: dict[str, list[ProviderConfig]] = {}
    for p in providers:
        units.setdefault(p.group or p.name, []).append(p)
    return [tuple(unit) for unit in units.values()]


def _check(unit: tuple[ProviderConfig, ...], config: Config, ours: bool,
           report: Report) -> None:
    """One line for a provider (all its instances in one), and its warnings and problems,
    each said once for the instances it is true of."""
    p, label = unit[0], config.path.name
    name = p.group or p.name
    if not p.enabled:
        report.lines.append(f"{name}: disabled" + (f" ({len(unit)} instances)" if p.group else ""))
        return
    if p.remote:
        report.lines.append(_remote_line(p))
        report.problems += [f"{label}: {p.name}: {msg}" for msg in _secret_problems(p, config)]
        return
    where = f"port {p.port}" if not p.group else (
        f"{len(unit)} instances ({', '.join(m.name for m in unit)}) on ports "
        f"{', '.join(str(m.port) for m in unit)}")
    report.lines.append(f"{name}: {where}, {toolchains.describe(p, config)}")
    report.warnings += _once(label, unit, _argv_secrets)
    report.problems += _once(label, unit, lambda m: _provider_problems(m, config, ours))


def _once(label: str, unit: tuple[ProviderConfig, ...],
          find: Callable[[ProviderConfig], list[str]]) -> list[str]:
    """Each message ``find`` gives for the providers of ``unit``, once, naming the ones it is
    about: the provider when it is true of every instance, else those instances."""
    about: dict[str, list[str]] = {}
    for m in unit:
        for msg in find(m):
            about.setdefault(msg, []).append(m.name)
    every = unit[0].group or unit[0].name
    return [f"{label}: {every if len(names) == len(unit) else ', '.join(names)}: {msg}"
            for msg, names in about.items()]


def _running_warnings(config: Config) -> list[str]:
    """What the running instance warns of, such as a provider listening on 0.0.0.0."""
    client = InstanceClient(config)
    try:
        rows = client.get("/providers").get("providers", [])
    except (NotRunning, ControlError) as exc:
        return [f"could not ask the running instance: {exc}"]
    finally:
        client.close()
    return [f"{r['name']}: {w}" for r in rows for w in r.get("warnings") or []]


def _argv_secrets(p: ProviderConfig) -> list[str]:
    """A warning if the start command carries a secret (a ``${…}`` value, a secret-named flag)."""
    argv = list(p.start)
    hidden = [i for i, shown in enumerate(p.shown_argv(argv)) if shown != argv[i]]
    if not hidden:
        return []
    names = []
    for i in hidden:
        flag, eq, _ = argv[i].partition("=")
        if eq:
            names.append(flag)
        elif i > 0 and argv[i - 1].startswith("-"):
            names.append(argv[i - 1])
        else:
            names.append(f"argument {i}")
    return [
        f"passes a secret on its command line ({', '.join(names)}; readable by any local user "
        "in `ps`); where the program can read it from the environment or a file, give it "
        "through `env:` or that file instead"
    ]


def _remote_line(p: ProviderConfig) -> str:
    """A ``url:`` provider: where it is, and whether that is another host."""
    assert p.url is not None
    what = "another unigw" if p.nested else "remote"
    where = "this machine" if is_loopback(Address.parse(p.url).host) else (
        "NOT this machine: calls and its key go over the network")
    return f"{p.name}: {what} at {p.url} ({where}; not installed or started by unigw)"


def _secret_problems(p: ProviderConfig, config: Config) -> list[str]:
    if not p.missing_secrets:
        return []
    where = config.base_dir / ".env"
    names = ", ".join(p.missing_secrets)
    return [f"missing secret {names} (set it in the environment or in {where})"]


def _provider_problems(p: ProviderConfig, config: Config, ours: bool) -> list[str]:
    problems = _secret_problems(p, config)
    problems += toolchains.check_problems(p, config)
    if not ours and not port_is_free(p.port):
        problems.append(f"port: {port_holder(p.port)}")
    return problems

