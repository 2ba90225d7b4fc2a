"""`unigw export kubernetes` for the shipped providers.yaml, as a user runs it (a real `unigw`
subprocess): schema-valid manifests, no secret value in them, and probes and providers that
say what providers.yaml says.

The schemas are kubernetes-validate's own copies (offline), pinned to one Kubernetes version.
No cluster and no Docker here: this checks the manifests, not a deployment.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.app import check_bind
from supervisor.cli.k8s_configs import node_names
from supervisor.config import Config, load, loads

ROOT = Path(__file__).resolve().parent.parent
K8S_VERSION = "1.33"  # kubernetes-validate 1.37 ships the schemas of 1.25-1.37
GATEWAY_KEYS = ("UNIGW_API_KEY", "UNIGW_NODE_KEY", "UNIGW_ADMIN_KEY")
PLAIN_ENV = {"UNIGW_CONFIG", "PYTHONUNBUFFERED"}


def unigw(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supervisor.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The shipped providers.yaml in a folder whose .env gives every secret it names (and the
    gateway keys) a marker value, and the export of it, on stdout and with --out."""
    tmp = tmp_path_factory.mktemp("export")
    shutil.copy(ROOT / "providers.yaml", tmp / "providers.yaml")
    names = {n for p in load(ROOT / "providers.yaml", environ={}).providers
             for n in p.secret_names} | set(GATEWAY_KEYS)
    markers = {name: f"marker-{name.lower()}-9f1c2e7a" for name in sorted(names)}
    (tmp / ".env").write_text("".join(f"{k}={v}\n" for k, v in markers.items()))
    env = {k: v for k, v in os.environ.items() if k not in names and k != "UNIGW_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    out = unigw("export", "kubernetes", cwd=tmp, env=env)
    assert out.returncode == 0, out.stderr
    to_dir = unigw("export", "kubernetes", "--out", str(tmp / "k8s"), cwd=tmp, env=env)
    assert to_dir.returncode == 0, to_dir.stderr
    return {"tmp": tmp, "markers": markers, "stdout": out.stdout, "stderr": out.stderr,
            "out": to_dir, "docs": list(yaml.safe_load_all(out.stdout)),
            "config": load(tmp / "providers.yaml", environ={})}


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in of_kind(docs, kind) if d["metadata"]["name"] == name)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    spec = deployment["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "unigw")


def mounted_file(docs: list[dict[str, Any]], deployment: dict[str, Any]) -> str:
    """The providers.yaml a Deployment's pods read: its ConfigMap's."""
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    cm = next(v["configMap"]["name"] for v in volumes if v["name"] == "config")
    return str(named(docs, "ConfigMap", cm)["data"]["providers.yaml"])


def ran_with(text: str, environ: dict[str, str] | None = None) -> Config:
    """The file a pod runs with, through unigw's own loader (the edge's are ``url:`` ones)."""
    return loads(text, Path("/etc/unigw/providers.yaml"), environ=environ or {})


def provider_of(deployment: dict[str, Any]) -> str:
    return str(deployment["metadata"]["annotations"]["unigw/provider"]) \
        if "annotations" in deployment["metadata"] else ""


def nodes(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {provider_of(d): d for d in of_kind(docs, "Deployment") if provider_of(d)}


def test_every_manifest_passes_the_kubernetes_schema(setup: dict[str, Any]) -> None:
    docs = setup["docs"]
    assert {d["kind"] for d in docs} == {"ConfigMap", "NetworkPolicy", "Deployment", "Service"}
    for doc in docs:
        # strict: an unknown field anywhere is an error too
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == K8S_VERSION


def test_no_secret_value_appears_in_the_manifests(setup: dict[str, Any]) -> None:
    config: Config = setup["config"]
    resolved = {v for p in config.providers for v in p.secret_values()}
    assert set(setup["markers"].values()) & resolved, "the markers were not read: vacuous test"
    written = [p.read_text() for p in (setup["tmp"] / "k8s").iterdir()]
    for marker in setup["markers"].values():
        for text in (setup["stdout"], setup["stderr"], setup["out"].stdout, *written):
            assert marker not in text


def test_each_deployments_probes_match_providers_yaml(setup: dict[str, Any]) -> None:
    docs = setup["docs"]
    deployments = of_kind(docs, "Deployment")
    assert len(deployments) == len(nodes(docs)) + 1  # the nodes and the edge
    for deployment in deployments:
        # the probes round-trip: read back from the file the pod runs with
        ran = ran_with(mounted_file(docs, deployment))
        sup, port, c = ran.supervisor, ran.gateway.port, container(deployment)
        period = math.ceil(sup.probe_interval)
        assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c[kind]
            assert probe["httpGet"]["path"] == "/health"
            assert probe["httpGet"]["port"] == port
            assert probe["periodSeconds"] == period
            assert probe["timeoutSeconds"] == math.ceil(sup.probe_timeout)
        window = {k: c[k]["failureThreshold"] * period for k in ("startupProbe", "livenessProbe")}
        assert c["readinessProbe"]["failureThreshold"] == sup.liveness_failures
        # the kubelet restarts a container only after unigw's own restart had its time ...
        assert window["livenessProbe"] >= (sup.liveness_failures * sup.probe_interval
                                           + sup.backoff_max + sup.startup_grace)
        # ... and a container that clones and installs gets the time unigw gives those
        assert window["startupProbe"] >= (sup.clone_timeout + sup.install_timeout
                                          + sup.startup_grace)


def test_the_pods_settings_are_the_users_but_where_they_listen_and_keep_files(
    setup: dict[str, Any],
) -> None:
    docs, shipped = setup["docs"], load(ROOT / "providers.yaml", environ={})
    for deployment in of_kind(docs, "Deployment"):
        ran = ran_with(mounted_file(docs, deployment))
        moved = {"apis_dir", "state_dir"}
        assert {k: v for k, v in vars(ran.supervisor).items() if k not in moved} == \
            {k: v for k, v in vars(shipped.supervisor).items() if k not in moved}
        assert ran.supervisor.state_dir.startswith("/var/lib/unigw/")
        assert ran.gateway.host == "0.0.0.0" and ran.gateway.port == shipped.gateway.port
        assert ran.gateway.routes == shipped.gateway.routes


def test_a_node_listens_on_the_pod_only_with_its_key(setup: dict[str, Any]) -> None:
    docs = setup["docs"]
    for deployment in nodes(docs).values():
        text = mounted_file(docs, deployment)
        keyed = ran_with(text, {"UNIGW_API_KEY": "k"})
        assert check_bind(keyed) is None
        assert keyed.gateway.admin_key == "k"
        assert check_bind(ran_with(text))
        env = {e["name"]: e for e in container(deployment)["env"]}
        assert env["UNIGW_API_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "unigw-secrets", "key": "UNIGW_NODE_KEY", "optional": False}


def test_there_is_one_node_per_enabled_provider_running_up_only_it(
    setup: dict[str, Any],
) -> None:
    docs, config = setup["docs"], setup["config"]
    found = nodes(docs)
    assert sorted(found) == sorted(p.name for p in config.providers if p.enabled)
    for provider, deployment in found.items():
        spec = deployment["spec"]["template"]["spec"]
        assert container(deployment)["args"] == ["up", "--only", provider, "--plain"]
        assert [c["args"] for c in spec["initContainers"]] == [["install", provider, "--plain"]]
        service = named(docs, "Service", deployment["metadata"]["name"])
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert [p["port"] for p in service["spec"]["ports"]] == [config.gateway.port]


def test_each_providers_secrets_are_secret_references_in_its_node(
    setup: dict[str, Any],
) -> None:
    docs, config = setup["docs"], setup["config"]
    for provider, deployment in nodes(docs).items():
        needed = set(config.provider(provider).secret_names)
        env = {e["name"]: e for e in container(deployment)["env"]}
        assert needed <= env.keys()
        for name, entry in env.items():
            if name in PLAIN_ENV:
                continue
            if name.endswith("_FILE"):  # a file secret: mounted, the variable names its path
                assert entry["value"] == f"/var/run/unigw-secrets/{name}"
                volumes = deployment["spec"]["template"]["spec"]["volumes"]
                files = next(v["secret"] for v in volumes if v["name"] == "file-secrets")
                assert files["secretName"] == "unigw-secrets"
                assert {"key": name, "path": name} in files["items"]
            else:
                ref = entry["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "unigw-secrets"
                assert ref["key"] == ("UNIGW_NODE_KEY" if name == "UNIGW_API_KEY" else name)


def test_the_edge_fronts_every_node_through_its_service(setup: dict[str, Any]) -> None:
    docs, config = setup["docs"], setup["config"]
    edge = named(docs, "Deployment", "unigw")
    assert container(edge)["args"] == ["gateway"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container(edge)["env"]
           if "valueFrom" in e}
    assert env == {k: k for k in GATEWAY_KEYS}
    edge_file = yaml.safe_load(mounted_file(docs, edge))
    services = {d["metadata"]["name"]: d for d in of_kind(docs, "Service")}
    for remote in edge_file["providers"]:
        node = nodes(docs)[remote["name"]]["metadata"]["name"]
        assert remote["url"] == f"http://{node}:{config.gateway.port}"
        assert node in services
        assert remote["key"] == "${UNIGW_NODE_KEY}" and remote["health"] == "/health"
        assert remote["kind"] == "unigw"  # the node's inner provider is named at the edge
        assert tuple(remote["models"]) == config.provider(remote["name"]).models
    assert [r["name"] for r in edge_file["providers"]] == sorted(
        nodes(docs), key=[p.name for p in config.providers].index)
    assert edge_file["gateway"]["host"] == "0.0.0.0"


def test_out_writes_each_object_to_its_own_file_in_apply_order(setup: dict[str, Any]) -> None:
    files = sorted((setup["tmp"] / "k8s").iterdir())
    assert [str(f) for f in files] == setup["out"].stdout.split()
    assert [yaml.safe_load(f.read_text()) for f in files] == setup["docs"]
    assert all(len(list(yaml.safe_load_all(f.read_text()))) == 1 for f in files)


def test_node_names_are_distinct_dns_labels_whatever_the_provider_names(tmp_path: Path) -> None:
    entries = "".join(
        f"  - {{name: {name}, port: {8000 + i}, runtime: python, start: [x]}}\n"
        for i, name in enumerate(["Z.ai2api", "z-ai2api", "z_AI2api", "a" * 70]))
    config = loads(f"providers:\n{entries}", tmp_path / "providers.yaml", environ={})
    names = node_names(config)
    assert len(set(names.values())) == 4
    for name in names.values():
        assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name), name


def test_the_image_runs_unigw_and_never_gets_the_dotenv() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["unigw"]' in dockerfile
    assert re.search(r"^USER 10001", dockerfile, re.M)  # the pods' runAsUser
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".unigw", "apis"} <= set(ignored)


def test_a_gateway_key_written_in_the_file_is_warned_of_without_being_shown(
    tmp_path: Path,
) -> None:
    (tmp_path / "providers.yaml").write_text(
        "gateway: {api_keys: [literal-key-5b1e, '${UNIGW_API_KEY}'], admin_key: admin-7c2d}\n"
        "providers:\n  - {name: one, port: 8100, runtime: python, start: [x]}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = unigw("export", "kubernetes", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    warned = [line for line in out.stderr.splitlines() if "warning" in line]
    assert [w.split()[2] for w in warned] == ["gateway.api_keys", "gateway.admin_key"]
    assert "literal-key-5b1e" not in out.stderr and "admin-7c2d" not in out.stderr
