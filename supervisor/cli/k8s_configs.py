"""The providers.yaml each pod of ``unigw export kubernetes`` reads, made from the user's file
as written (its ``${NAME}`` references, never their values), and the names of those references.

Two files, each a ConfigMap (see :mod:`supervisor.cli.k8s_manifests` for the objects):

* the **node** file: the user's providers.yaml with the gateway listening on every address of
  the pod (allowed only with a key: ``api_keys`` comes from ``UNIGW_API_KEY``, which each node
  gets from the Secret's ``UNIGW_NODE_KEY``; the same key is the node's admin key) and the
  supervisor's folders on the pod's volume. Every node mounts the same file and runs
  ``unigw up --only NAME``, so one edit reaches every node.
* the **edge** file: the user's gateway and supervisor sections, listening on every address
  with the client key ``UNIGW_API_KEY`` (and an admin key ``UNIGW_ADMIN_KEY`` unless the file
  names one), in front of one remote provider per node: ``url: http://unigw-node-NAME:PORT``,
  which answers ``/health`` 200 only while that node's provider is ready.

Secrets stay references: a ``${NAME}`` is written as is and becomes a Secret key reference in
the pod's environment (:func:`references`).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from supervisor.config import Config
from supervisor.config.secrets import expand_tracked

DATA_DIR = "/var/lib/unigw"  # the pod's volume: clones, state, toolchains, request log
CONFIG_DIR = "/etc/unigw"  # where the ConfigMap's providers.yaml is mounted
NODE_KEY = "UNIGW_NODE_KEY"  # the key between the edge and the nodes
CLIENT_KEY = "UNIGW_API_KEY"  # the clients' key at the edge (and the name unigw reads)
ADMIN_KEY = "UNIGW_ADMIN_KEY"  # the edge's control routes from outside the pod
NODE_PREFIX = "unigw-node-"
_DNS_MAX = 63  # a Service name is a DNS label


@dataclass(frozen=True)
class SecretRef:
    """One ``${NAME}``: whether it has a ``:-default`` (then the Secret key may be absent)."""

    name: str
    required: bool


def references(data: Any) -> tuple[SecretRef, ...]:
    """Every ``${NAME}`` in the strings of ``data`` (nested lists and mappings), in order, once;
    a name used both with and without a default is required."""
    found: dict[str, bool] = {}
    for text in _strings(data):
        _, refs, missing = expand_tracked(text, {})  # with nothing set, missing = required
        for name in refs:
            found[name] = found.get(name, False) or name in missing
    return tuple(SecretRef(name, required) for name, required in found.items())


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, Mapping):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


def literal_keys(raw: Mapping[str, Any]) -> list[str]:
    """The gateway keys written in the file itself rather than as ``${NAME}``: they would go
    into a ConfigMap, readable by whoever may read the namespace's ConfigMaps."""
    gateway = raw.get("gateway") or {}
    keys = [("api_keys", k) for k in gateway.get("api_keys") or () if isinstance(k, str)]
    if isinstance(gateway.get("admin_key"), str):
        keys.append(("admin_key", gateway["admin_key"]))
    return [field for field, key in keys if key and not references(key)]


def node_names(config: Config) -> dict[str, str]:
    """Each enabled provider's node name (``unigw-node-`` and its name as a DNS label).

    Provider names may hold capitals, dots and underscores; a Service name may not. A name
    that would clash with another's, or be too long, gets a short hash of the real name.
    """
    slugs: dict[str, str] = {}
    taken: set[str] = set()
    for p in config.providers:
        if not p.enabled:
            continue
        slug = re.sub(r"[^a-z0-9]+", "-", p.name.lower()).strip("-") or "provider"
        name = NODE_PREFIX + slug
        if name in taken or len(name) > _DNS_MAX:
            digest = hashlib.sha256(p.name.encode()).hexdigest()[:6]
            name = f"{name[:_DNS_MAX - 7].rstrip('-')}-{digest}"
        taken.add(name)
        slugs[p.name] = name
    return slugs


def node_file(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The node's providers.yaml: the user's, listening on the pod's addresses with the node
    key, its folders on the pod's volume."""
    out = copy.deepcopy(dict(raw))
    gateway = dict(out.get("gateway") or {})
    gateway.update(host="0.0.0.0", api_keys=[], admin_key=f"${{{CLIENT_KEY}}}")
    gateway.pop("allowed_hosts", None)  # any Host: the edge calls it by its Service name
    out["gateway"] = gateway
    out["supervisor"] = _on_volume(out.get("supervisor"), apis=True)
    return out


def edge_file(raw: Mapping[str, Any], config: Config, nodes: Mapping[str, str]) -> dict[str, Any]:
    """The edge's providers.yaml: the user's gateway in front of one remote provider per node."""
    gateway = copy.deepcopy(dict(raw.get("gateway") or {}))
    gateway["host"] = "0.0.0.0"
    gateway.setdefault("admin_key", f"${{{ADMIN_KEY}}}")
    gateway["canary_interval"] = 0  # the nodes' canaries already test their providers
    port = config.gateway.port
    providers = []
    for p in config.providers:
        if p.name not in nodes:
            continue
        remote: dict[str, Any] = {"name": p.name, "url": f"http://{nodes[p.name]}:{port}",
                                  "kind": "unigw", "key": f"${{{NODE_KEY}}}", "health": "/health",
                                  "models": list(p.models), "weight": p.weight}
        if p.description:
            remote["description"] = p.description
        providers.append(remote)
    return {"gateway": gateway, "supervisor": _on_volume(raw.get("supervisor"), apis=False),
            "providers": providers}


def _on_volume(section: Any, *, apis: bool) -> dict[str, Any]:
    out = dict(section or {})
    out["state_dir"] = f"{DATA_DIR}/state"
    if apis:
        out["apis_dir"] = f"{DATA_DIR}/apis"
    return out


def provider_entry(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The user's entry of provider ``name`` as written (for its ``${NAME}`` references)."""
    for item in raw.get("providers") or ():
        if isinstance(item, Mapping) and item.get("name") == name:
            return item
    return {}
