"""``instances:``: one provider entry of providers.yaml run as several children (accounts).

A provider with ``instances: 3``, or a list of per-instance settings, becomes providers
``NAME#1`` … ``NAME#n`` at load, each a whole :class:`~supervisor.config.model.ProviderConfig`
with ``group`` set to ``NAME``: its own port, process, log, restarts and probes, and to the
gateway its own backend. They share the provider's clone, virtual environment and install
(``ProviderConfig.home``).

Ports: ``ports: 8100-8102`` (a range) or ``ports: [8100, 8105, 8107]`` (a list), one per
instance; without ``ports``, instance k (from 1) listens on ``port + k - 1``.

Each item of an ``instances`` list may give:

``env``      variables merged over the provider's ``env`` (``${NAME}`` references allowed)
``key``      the key the gateway sends to this instance, instead of the provider's ``key``
``secrets``  ``{VAR: DOTENV_NAME}``: every ``${VAR}`` of the provider's ``env``, ``key``,
             ``start`` and ``files`` is read from ``DOTENV_NAME`` for this instance (three
             accounts, three ``.env`` names: ``secrets: {QWEN_TOKEN: QWEN_TOKEN_2}``)
"""

from __future__ import annotations

import re
from typing import Any

from supervisor.config.schema import kind, show
from supervisor.config.secrets import NAME, rename_refs

INSTANCE_FIELDS = ("env", "key", "secrets")
_RANGE = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")


def expand(
    item: dict[str, Any], where: str, problems: list[str]
) -> list[tuple[dict[str, Any], str]]:
    """The raw provider entries ``item`` stands for, each with its group ("" for a plain one)."""
    if "instances" not in item:
        if "ports" in item:
            problems.append(f"{where}: ports: only with instances (one port per instance)")
        return [({k: v for k, v in item.items() if k != "ports"}, "")]
    if "url" in item:
        problems.append(f"{where}: instances: not used with url (a remote provider is one "
                        "address: list each as a provider of its own)")
        return []
    base = {k: v for k, v in item.items() if k not in ("instances", "ports")}
    settings = _settings(item["instances"], where, problems)
    if not settings:
        return []
    ports = _ports(item, len(settings), where, problems)
    if ports is None:
        return []
    name = item.get("name")
    group = name if isinstance(name, str) else ""
    out = []
    for k, (own, port) in enumerate(zip(settings, ports, strict=True), start=1):
        raw = dict(base, name=f"{group}#{k}")
        if port is not None:
            raw["port"] = port
        if isinstance(own.get("env"), dict) and isinstance(base.get("env", {}), dict):
            raw["env"] = {**base.get("env", {}), **own["env"]}
        if "key" in own:
            raw["key"] = own["key"]
        out.append((_renamed(raw, own.get("secrets", {})), group))
    return out


def _settings(value: Any, where: str, problems: list[str]) -> list[dict[str, Any]]:
    """Each instance's own settings (``{}`` for a counted one); [] when ``instances`` is bad."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            problems.append(f"{where}: instances: must be at least 1, got {value}")
            return []
        return [{} for _ in range(value)]
    if not isinstance(value, list) or not value:
        problems.append(f"{where}: instances: must be a count (at least 1) or a non-empty list "
                        f"of mappings with {', '.join(INSTANCE_FIELDS)}, got {show(value)}")
        return []
    ok = True
    for i, own in enumerate(value):
        ok = _check_instance(own, f"{where}: instances[{i}]", problems) and ok
    return [own or {} for own in value] if ok else []


def _check_instance(own: Any, where: str, problems: list[str]) -> bool:
    """Whether one item of an ``instances`` list is well formed (each problem reported)."""
    if own is None:
        return True
    if not isinstance(own, dict):
        problems.append(f"{where}: must be a mapping with {', '.join(INSTANCE_FIELDS)}, "
                        f"got {kind(own)}")
        return False
    before = len(problems)
    for key in own:
        if key not in INSTANCE_FIELDS:
            problems.append(f"{where}: {key}: unknown field (known: {', '.join(INSTANCE_FIELDS)})")
    env = own.get("env", {})
    if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool)
            for k, v in env.items()):
        problems.append(f"{where}: env: must be a mapping of names to strings")
    if "key" in own and not isinstance(own["key"], str):
        problems.append(f"{where}: key: must be a string, got {show(own['key'])}")
    secrets = own.get("secrets", {})
    if not isinstance(secrets, dict) or not all(
            isinstance(k, str) and NAME.fullmatch(k) and isinstance(v, str) and NAME.fullmatch(v)
            for k, v in secrets.items()):
        problems.append(f"{where}: secrets: must map variable names to the names to read them "
                        "from (QWEN_TOKEN: QWEN_TOKEN_2)")
    return len(problems) == before


def _ports(item: dict[str, Any], count: int, where: str,
           problems: list[str]) -> list[Any] | None:
    """One port per instance: from ``ports``, else ``port`` counting up (None: bad ports)."""
    if "ports" not in item:
        port = item.get("port")
        if isinstance(port, int) and not isinstance(port, bool):
            return [port + k for k in range(count)]
        return [port] * count  # missing or mistyped: the provider's check names it
    if "port" in item:
        problems.append(f"{where}: port: give port or ports, not both (ports: one per instance)")
    value = item["ports"]
    ports = _parse_ports(value)
    if ports is None:
        problems.append(f"{where}: ports: must be a range like 8100-8102 or a list of ports, "
                        f"got {show(value)}")
    elif len(ports) != count:
        problems.append(f"{where}: ports: {len(ports)} port(s) for {count} instances")
    elif len(set(ports)) != count:
        problems.append(f"{where}: ports: lists a port twice")
    else:
        return ports
    return None


def _parse_ports(value: Any) -> list[int] | None:
    if isinstance(value, str):
        m = _RANGE.fullmatch(value)
        if m is None or int(m.group(1)) > int(m.group(2)):
            return None
        return list(range(int(m.group(1)), int(m.group(2)) + 1))
    if isinstance(value, list) and value and all(
            isinstance(p, int) and not isinstance(p, bool) for p in value):
        return list(value)
    return None


def _renamed(raw: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    """``raw`` with every ``${VAR}`` of ``renames`` reading its new name instead."""
    if not renames:
        return raw
    out = dict(raw)
    for field in ("env", "files"):
        if isinstance(raw.get(field), dict):
            out[field] = {k: rename_refs(v, renames) if isinstance(v, str) else v
                          for k, v in raw[field].items()}
    if isinstance(raw.get("key"), str):
        out["key"] = rename_refs(raw["key"], renames)
    if isinstance(raw.get("start"), list):
        out["start"] = [rename_refs(a, renames) if isinstance(a, str) else a
                        for a in raw["start"]]
    return out
