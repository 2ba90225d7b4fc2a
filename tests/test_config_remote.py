"""``url:`` providers in providers.yaml: what they take, what they derive, every error named
(file, provider, field), and how ``unigw check`` and ``unigw install`` show them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.echo import REPO_ROOT, free_port

from supervisor.config import ConfigError, load

LOCAL = {"name": "here", "port": 9001, "runtime": "python", "start": ["x"]}


def write(tmp_path: Path, *providers: dict[str, object]) -> Path:
    path = tmp_path / "providers.yaml"
    doc = {"gateway": {"port": free_port()}, "providers": list(providers)}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def problems(tmp_path: Path, *providers: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, *providers), environ={})
    return info.value.problems


def test_a_url_provider_needs_no_port_runtime_or_start_and_mixes_with_local_ones(
        tmp_path: Path) -> None:
    config = load(write(tmp_path, LOCAL,
                        {"name": "far", "url": "http://10.0.0.12:9001", "models": ["m"]},
                        {"name": "tls", "url": "https://api.example.org/"}), environ={})
    here, far, tls = config.providers
    assert not here.remote and here.base_url == "http://127.0.0.1:9001"
    assert far.remote and far.port == 9001 and far.runtime == "remote" and far.start == ()
    assert far.base_url == "http://10.0.0.12:9001" and far.health == "/v1/models"
    assert not far.nested and far.models == ("m",)
    assert tls.port == 443 and tls.base_url == "https://api.example.org"


def test_kind_unigw_probes_the_nodes_health_unless_told_otherwise(tmp_path: Path) -> None:
    config = load(write(tmp_path, {"name": "node-2", "url": "http://127.0.0.1:7001",
                                   "kind": "unigw", "key": "k"},
                        {"name": "node-3", "url": "http://127.0.0.1:7002", "kind": "unigw",
                         "health": "/v1/models"}), environ={})
    two, three = config.providers
    assert two.nested and two.health == "/health" and two.key == "k"
    assert three.nested and three.health == "/v1/models"


@pytest.mark.parametrize(("url", "says"), [
    ("ftp://host:21", "must start with http:// or https://"),
    ("http://:8000", "must name a host"),
    ("http://host:99999", "not a valid URL"),
    ("http://host:0", "port must be in 1-65535"),
    ("http://host:8000/v1", "with no path"),
    ("http://user:pw@host:8000", "must not carry a user or password"),
])
def test_a_bad_url_is_an_error_naming_file_provider_and_field(tmp_path: Path, url: str,
                                                               says: str) -> None:
    found = problems(tmp_path, {"name": "far", "url": url})
    assert len(found) == 1, found
    assert found[0].startswith("providers.yaml: providers[0] (far): url: "), found
    assert says in found[0], found


def test_fields_about_running_a_program_are_refused_with_a_url(tmp_path: Path) -> None:
    found = problems(tmp_path, {"name": "far", "url": "http://h:1", "port": 1,
                                "runtime": "python", "start": ["x"], "repo": "r"})
    for field in ("port", "runtime", "start", "repo"):
        assert f"providers.yaml: providers[0] (far): {field}: not used with url" in " ".join(
            found), (field, found)


def test_kind_must_be_known_and_unigw_needs_a_url(tmp_path: Path) -> None:
    found = problems(tmp_path, {"name": "a", "url": "http://h:1", "kind": "cluster"},
                     {**LOCAL, "kind": "unigw"})
    assert any(p.startswith("providers.yaml: providers[0] (a): kind: must be one of "
                            "provider, unigw") for p in found), found
    assert any(p.startswith("providers.yaml: providers[1] (here): kind: unigw needs url")
               for p in found), found


def test_remote_providers_may_share_a_port_on_different_hosts(tmp_path: Path) -> None:
    config = load(write(tmp_path, {"name": "a", "url": "http://10.0.0.1:7999"},
                        {"name": "b", "url": "http://10.0.0.2:7999"}), environ={})
    assert [p.port for p in config.providers] == [7999, 7999]


def unigw(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supervisor.cli", *args, "-c", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


def test_check_shows_remote_providers_and_marks_other_hosts(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "near", "url": f"http://127.0.0.1:{free_port()}"},
                 {"name": "node-2", "url": "http://10.0.0.12:7999", "kind": "unigw"})
    out = unigw(path, "check")
    assert out.returncode == 0, (out.stdout, out.stderr)
    lines = out.stdout.splitlines()
    near = next(line for line in lines if line.startswith("near:"))
    node = next(line for line in lines if line.startswith("node-2:"))
    assert "remote at http://127.0.0.1:" in near and "(this machine;" in near
    assert "another unigw at http://10.0.0.12:7999" in node
    assert "NOT this machine" in node


def test_install_says_a_remote_provider_has_nothing_to_install(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "node-2", "url": "http://10.0.0.12:7999", "kind": "unigw"})
    out = unigw(path, "install", "--plain")
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert "node-2: remote, nothing to install (http://10.0.0.12:7999)" in out.stdout


def test_check_shows_a_provider_with_instances_as_one_line_beside_remote_ones(
        tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    qw = {"name": "qw", "ports": ports, "runtime": "python", "key": "${QW_TOKEN}",
          "start": ["{python}", "-m", "supervisor.demo.echo", "--api-key", "${QW_TOKEN}"],
          "instances": [{}, {"secrets": {"QW_TOKEN": "QW_TOKEN_2"}}, {}]}
    path = write(tmp_path, qw, {"name": "node-2", "url": "http://10.0.0.12:7999",
                                "kind": "unigw", "key": "${NODE_KEY}"})
    out = unigw(path, "check")
    assert out.returncode == 1
    qw_line, node_line = out.stdout.splitlines()  # one line each
    assert qw_line.startswith(
        f"qw: 3 instances (qw#1, qw#2, qw#3) on ports {', '.join(map(str, ports))}, python ")
    assert node_line == ("node-2: another unigw at http://10.0.0.12:7999 (NOT this machine: "
                         "calls and its key go over the network; not installed or started by "
                         "unigw)")
    said = [line.split(": ", 3)[2:] for line in out.stderr.splitlines()[:-1]]
    assert [(who, msg.split(" (")[0]) for who, msg in said] == [
        ("qw", "passes a secret on its command line"),  # once, for every instance
        ("qw#1, qw#3", "missing secret QW_TOKEN"),
        ("qw#2", "missing secret QW_TOKEN_2"),
        ("node-2", "missing secret NODE_KEY")]
    assert out.stderr.splitlines()[-1] == "unigw: 3 problem(s) found"


def test_logs_of_a_remote_provider_says_there_is_no_local_log(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "far", "url": "http://10.0.0.12:9001"},
                 {"name": "node-2", "url": "http://10.0.0.13:7999", "kind": "unigw"})
    far, node = unigw(path, "logs", "far"), unigw(path, "logs", "node-2", "-f")
    assert (far.returncode, far.stdout, node.returncode, node.stdout) == (1, "", 1, "")
    assert far.stderr == ("unigw: far runs at http://10.0.0.12:9001, not here: unigw has no "
                          "log of it (read its output where it runs)\n")
    assert "`unigw logs` there" in node.stderr
