"""``unigw export kubernetes``: manifests for running providers.yaml on a Kubernetes cluster
(built by :mod:`supervisor.cli.k8s_manifests`)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import click
import yaml

from supervisor.cli.app import cli, config_option, fail, load_config
from supervisor.cli.k8s_configs import literal_keys
from supervisor.cli.k8s_manifests import EDGE_CONFIG, SECRET, dump, file_name, manifests


def _default_image() -> str:
    try:
        return f"unigw:{metadata.version('unigw')}"
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unigw:latest"


@cli.group()
def export() -> None:
    """This setup, written for something else to run: `unigw export kubernetes`."""


@export.command()
@config_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write one file per object into this folder (made if missing) instead of "
              "one multi-document YAML on stdout; prints the files written.")
@click.option("--image", default=_default_image, show_default="unigw:<version>",
              help="The unigw image the pods run (build it from the Dockerfile and push it "
              "where the cluster can pull it).")
def kubernetes(config_path: str, out_dir: Path | None, image: str) -> None:
    """Kubernetes manifests (plain YAML, no Helm) for providers.yaml.

    One node per enabled provider: a Deployment whose init container runs `unigw install
    NAME` and whose container runs `unigw up --only NAME` (the provider behind its own
    gateway), and a Service unigw-node-NAME on the gateway's port. The edge: a Deployment and
    Service `unigw` running `unigw gateway` in front of the nodes (remote providers,
    url: http://unigw-node-NAME:PORT). Startup, readiness and liveness probes are on /health,
    timed from the supervisor section. Two ConfigMaps hold the node and edge providers.yaml.

    Secrets are references, never values: every ${NAME} of the file is key NAME of the Secret
    unigw-secrets, with UNIGW_API_KEY (clients' key at the edge), UNIGW_NODE_KEY (between edge
    and nodes) and UNIGW_ADMIN_KEY. Create it from .env without its _FILE lines (a file
    secret goes in as the file itself: README, Kubernetes, gives the commands), then `kubectl
    apply -f DIR`.
    """
    config = load_config(config_path)
    raw = yaml.safe_load(config.path.read_text(encoding="utf-8")) or {}
    objects = manifests(config, raw, image)
    for field in dict.fromkeys(literal_keys(raw)):
        click.echo(f"unigw: warning: gateway.{field} in {config.path.name} holds a key as "
                   f"written; it goes into the ConfigMap {EDGE_CONFIG} in clear. Write it as "
                   "${NAME} and put NAME in the Secret instead", err=True)
    if out_dir is None:
        click.echo(dump(objects), nl=False)
        return
    written = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, obj in enumerate(objects):
            path = out_dir / file_name(i, obj)
            path.write_text(dump([obj]), encoding="utf-8")
            written.append(str(path))
    except OSError as exc:
        fail(f"cannot write {out_dir}: {exc.strerror or exc}")
    try:  # every file is written first: a reader that stops early (`| head`) loses none
        click.echo("\n".join(written))
    except BrokenPipeError:
        pass
    click.echo(f"unigw: {len(objects)} objects written; they need the Secret {SECRET} "
               f"(README: Kubernetes), then `kubectl apply -f {out_dir}`", err=True)
