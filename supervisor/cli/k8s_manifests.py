"""``unigw export kubernetes``: the objects, as plain dicts, for running providers.yaml on a
cluster (:func:`manifests`), and their YAML (:func:`dump`). Pure: no I/O, no click.

What runs where:

* one **node** per enabled provider: a Deployment (one replica, ``Recreate``: a provider's
  account is not shared by two pods) whose init container runs ``unigw install NAME`` and whose
  container runs ``unigw up --only NAME``, the provider and a gateway in front of it, plus a
  Service ``unigw-node-NAME`` on the gateway's port. Clones, virtual environments and the
  bootstrapped Go/Deno live on the pod's ``emptyDir`` (kept across container restarts, made
  again when the pod is rescheduled);
* the **edge**: a Deployment and Service ``unigw`` running ``unigw gateway`` in front of the
  nodes (remote providers, ``url: http://unigw-node-NAME:PORT``);
* two ConfigMaps (the node and edge providers.yaml, :mod:`supervisor.cli.k8s_configs`) and a
  NetworkPolicy that lets into a node only its gateway's port (some providers listen on every
  address of the pod, with no key).

Secrets are never values here: each ``${NAME}`` becomes a reference to key ``NAME`` of the
Secret ``unigw-secrets`` (a ``NAME_FILE`` secret is mounted as a file and ``NAME_FILE`` set to
its path), which the user creates with ``kubectl create secret``.

Probes are all on the gateway's ``/health`` (200 while a provider is ready), timed from the
supervisor section (:class:`Probes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from supervisor.cli.k8s_configs import (
    CLIENT_KEY,
    CONFIG_DIR,
    DATA_DIR,
    NODE_KEY,
    SecretRef,
    edge_file,
    node_file,
    node_names,
    provider_entry,
    references,
)
from supervisor.config import Config, SupervisorConfig
from supervisor.config.secrets import is_file_secret

SECRET = "unigw-secrets"
EDGE = "unigw"
NODE_CONFIG = "unigw-nodes"
EDGE_CONFIG = "unigw-edge"
FILE_SECRETS_DIR = "/var/run/unigw-secrets"
UID = 10001  # the image's unigw user (Dockerfile)
PART = "app.kubernetes.io/component"
_BASE_LABELS = {"app.kubernetes.io/name": "unigw", "app.kubernetes.io/managed-by": "unigw-export"}


@dataclass(frozen=True)
class Probes:
    """The three probes' timing, from the supervisor section (Kubernetes counts in whole
    seconds, at least 1).

    * readiness: ``liveness_failures`` failed checks take the pod out of its Service, as the
      supervisor takes a provider out of traffic;
    * liveness: only after unigw's own recovery had its time (notice the failure, the longest
      restart delay ``backoff_max``, then ``startup_grace``) does the kubelet restart the pod's
      container: unigw restarts the provider first;
    * startup: the container may have to clone and install (after a restart or an edit of the
      ref), so it gets ``clone_timeout + install_timeout + startup_grace``.
    """

    period: int
    timeout: int
    ready_failures: int
    live_failures: int
    start_failures: int

    @classmethod
    def of(cls, sup: SupervisorConfig) -> Probes:
        period = max(1, math.ceil(sup.probe_interval))

        def checks(seconds: float) -> int:
            return max(1, math.ceil(seconds / period))

        live = sup.liveness_failures * period + sup.backoff_max + sup.startup_grace
        return cls(period=period, timeout=max(1, math.ceil(sup.probe_timeout)),
                   ready_failures=max(1, sup.liveness_failures), live_failures=checks(live),
                   start_failures=checks(sup.clone_timeout + sup.install_timeout
                                         + sup.startup_grace))

    def container_fields(self, port: int) -> dict[str, Any]:
        """The probes of a container whose gateway listens on ``port``."""

        def probe(failures: int) -> dict[str, Any]:
            # Host localhost: always one of the gateway's own names, whatever allowed_hosts says
            return {"httpGet": {"path": "/health", "port": port,
                                "httpHeaders": [{"name": "Host", "value": "localhost"}]},
                    "periodSeconds": self.period, "timeoutSeconds": self.timeout,
                    "failureThreshold": failures}

        return {"startupProbe": probe(self.start_failures),
                "readinessProbe": probe(self.ready_failures),
                "livenessProbe": probe(self.live_failures)}


def manifests(config: Config, raw: Mapping[str, Any], image: str) -> list[dict[str, Any]]:
    """Every object, in the order ``kubectl apply`` should meet them. ``raw`` is providers.yaml
    as written (``yaml.safe_load`` of the file ``config`` was loaded from)."""
    nodes = node_names(config)
    edge_yaml = edge_file(raw, config, nodes)
    objects = [
        _config_map(NODE_CONFIG, "node", node_file(raw), config),
        _config_map(EDGE_CONFIG, "edge", edge_yaml, config),
        _node_policy(config.gateway.port),
    ]
    for name, node in nodes.items():
        refs = _unique(SecretRef(CLIENT_KEY, True), *references(provider_entry(raw, name)))
        objects += _node(config, name, node, refs, image)
    edge_refs = _unique(SecretRef(CLIENT_KEY, True), SecretRef(NODE_KEY, True),
                        *references(edge_yaml["gateway"]))
    objects += _edge(config, edge_refs, image)
    return objects


def _unique(*refs: SecretRef) -> tuple[SecretRef, ...]:
    """Each name once; required if any use of it is."""
    required: dict[str, bool] = {}
    for ref in refs:
        required[ref.name] = required.get(ref.name, False) or ref.required
    return tuple(SecretRef(name, req) for name, req in required.items())


def _meta(name: str, part: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "labels": {**_BASE_LABELS, PART: part, **labels}}


def _config_map(name: str, part: str, data: Mapping[str, Any], config: Config) -> dict[str, Any]:
    head = (f"# made by `unigw export kubernetes` from {config.path.name}; edit that file and "
            "export again\n")
    text = head + yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, width=100)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, part),
            "data": {"providers.yaml": text}}


def _node_policy(port: int) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta("unigw-nodes-gateway-only", "node"),
            "spec": {"podSelector": {"matchLabels": {PART: "node"}},
                     "policyTypes": ["Ingress"],
                     "ingress": [{"ports": [{"protocol": "TCP", "port": port}]}]}}


def _node(config: Config, provider: str, name: str, refs: Sequence[SecretRef],
          image: str) -> list[dict[str, Any]]:
    """A node's Deployment and Service."""
    labels = {PART: "node", "unigw/node": name}
    port = config.gateway.port
    main = _container("unigw", image, ["up", "--only", provider, "--plain"], port,
                      [_env(ref, node=True) for ref in refs])
    main |= Probes.of(config.supervisor).container_fields(port)
    init = _container("install", image, ["install", provider, "--plain"], None, [])
    pod = _pod_spec(config, [main], NODE_CONFIG, refs, init=[init])
    meta = _meta(name, "node", **{"unigw/node": name})
    meta["annotations"] = {"unigw/provider": provider}
    return [_deployment(meta, labels, pod, strategy="Recreate"), _service(meta, labels, port)]


def _edge(config: Config, refs: Sequence[SecretRef], image: str) -> list[dict[str, Any]]:
    """The edge's Deployment and Service."""
    labels = {PART: "edge"}
    port = config.gateway.port
    main = _container("unigw", image, ["gateway"], port,
                      [_env(ref, node=False) for ref in refs])
    main |= Probes.of(config.supervisor).container_fields(port)
    pod = _pod_spec(config, [main], EDGE_CONFIG, refs)
    meta = _meta(EDGE, "edge")
    return [_deployment(meta, labels, pod, strategy="RollingUpdate"), _service(meta, labels, port)]


def _container(name: str, image: str, args: list[str], port: int | None,
               secrets: list[dict[str, Any]]) -> dict[str, Any]:
    """A container running ``unigw ARGS`` with the config and the volume mounted; ``secrets``:
    its environment's Secret references."""
    env = [{"name": "UNIGW_CONFIG", "value": f"{CONFIG_DIR}/providers.yaml"},
           {"name": "PYTHONUNBUFFERED", "value": "1"}, *secrets]
    out: dict[str, Any] = {
        "name": name, "image": image, "args": args, "env": env,
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": "data", "mountPath": DATA_DIR}],
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if any(is_file_secret(e["name"]) for e in secrets):
        out["volumeMounts"].append({"name": "file-secrets", "mountPath": FILE_SECRETS_DIR,
                                    "readOnly": True})
    if port is not None:
        out["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    return out


def _env(ref: SecretRef, *, node: bool) -> dict[str, Any]:
    """A ``${NAME}`` as the pod's environment: a Secret key, or a file secret's path. A node's
    gateway key ``UNIGW_API_KEY`` is the Secret's ``UNIGW_NODE_KEY``."""
    if is_file_secret(ref.name):
        return {"name": ref.name, "value": f"{FILE_SECRETS_DIR}/{ref.name}"}
    key = NODE_KEY if node and ref.name == CLIENT_KEY else ref.name
    return {"name": ref.name, "valueFrom": {"secretKeyRef": {
        "name": SECRET, "key": key, "optional": not ref.required}}}


def _pod_spec(config: Config, containers: list[dict[str, Any]], config_map: str,
              refs: Sequence[SecretRef], init: list[dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [{"name": "config", "configMap": {"name": config_map}},
                                     {"name": "data", "emptyDir": {}}]
    files = [r for r in refs if is_file_secret(r.name)]
    if files:
        volumes.append({"name": "file-secrets", "secret": {
            "secretName": SECRET, "defaultMode": 0o440,  # group: the pod's fsGroup reads it
            "optional": not all(r.required for r in files),
            "items": [{"key": r.name, "path": r.name} for r in files]}})
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,  # unigw never calls the Kubernetes API
        # the stop sequence's grace, then a margin for the gateway and the record
        "terminationGracePeriodSeconds": math.ceil(config.supervisor.stop_grace) + 15,
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                            "fsGroup": UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "volumes": volumes,
    }
    if init:
        spec["initContainers"] = init
    return spec


def _deployment(meta: dict[str, Any], labels: dict[str, str], pod: dict[str, Any],
                strategy: str) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": "unigw", **labels}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 1, "strategy": {"type": strategy},
                     "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": {**_BASE_LABELS, **labels},
                                               "annotations": {
                                                   **meta.get("annotations", {}),
                                                   # kubectl exec/logs without -c
                                                   "kubectl.kubernetes.io/default-container":
                                                       "unigw"}},
                                  "spec": pod}}}


def _service(meta: dict[str, Any], labels: dict[str, str], port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": "ClusterIP",
                     "selector": {"app.kubernetes.io/name": "unigw", **labels},
                     "ports": [{"name": "http", "port": port, "targetPort": "http",
                                "protocol": "TCP"}]}}


class _Dumper(yaml.SafeDumper):
    """Safe YAML, with a multi-line string (a ConfigMap's providers.yaml) as a ``|`` block,
    and no anchors: an object repeated is written out again, as ``kubectl`` users read it."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump(objects: Sequence[Mapping[str, Any]]) -> str:
    """The objects as one multi-document YAML stream."""
    return yaml.dump_all([dict(o) for o in objects], Dumper=_Dumper, sort_keys=False,
                         allow_unicode=True, width=100)


def file_name(index: int, obj: Mapping[str, Any]) -> str:
    """The file one object is written to with ``--out``: numbered in apply order."""
    return f"{index:02d}-{obj['metadata']['name']}.{str(obj['kind']).lower()}.yaml"


__all__ = ["EDGE", "EDGE_CONFIG", "SECRET", "Probes", "dump", "file_name", "manifests"]
