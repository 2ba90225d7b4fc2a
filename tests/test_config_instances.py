"""``instances:`` in providers.yaml: one provider entry becomes NAME#1…NAME#n, each with its
own port, env, key and secrets, sharing the provider's clone and install; and every mistake
in it is a config error naming the file, the provider and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from supervisor.config import Config, ConfigError, load
from supervisor.install import runspec


def write(tmp_path: Path, *providers: dict[str, object], **gateway: object) -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump({"gateway": gateway, "providers": list(providers)}))
    return path


def prov(name: str = "qw", **fields: object) -> dict[str, object]:
    base: dict[str, object] = {"name": name, "port": 9100, "runtime": "python",
                               "start": ["{python}", "serve.py", "--port", "{port}"]}
    return {**base, **fields}


def loaded(tmp_path: Path, *providers: dict[str, object], env: dict[str, str] | None = None,
           **gateway: object) -> Config:
    return load(write(tmp_path, *providers, **gateway), environ=env or {})


def problems(tmp_path: Path, *providers: dict[str, object], **gateway: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loaded(tmp_path, *providers, **gateway)
    return info.value.problems


def test_a_count_of_instances_makes_numbered_providers_on_consecutive_ports(
        tmp_path: Path) -> None:
    config = loaded(tmp_path, prov(instances=3), prov("other", port=9200))
    assert [(p.name, p.port, p.group, p.home) for p in config.providers] == [
        ("qw#1", 9100, "qw", "qw"), ("qw#2", 9101, "qw", "qw"), ("qw#3", 9102, "qw", "qw"),
        ("other", 9200, "", "other")]
    assert [p.name for p in config.members("qw")] == ["qw#1", "qw#2", "qw#3"]
    assert [p.name for p in config.members("qw#2")] == ["qw#2"]
    assert config.members("other")[0].name == "other" and config.members("nope") == ()


def test_ports_take_a_range_or_a_list(tmp_path: Path) -> None:
    ranged = dict(prov(instances=2), ports="8300-8301")
    del ranged["port"]
    assert [p.port for p in loaded(tmp_path, ranged).providers] == [8300, 8301]
    listed = dict(prov(instances=3), ports=[8400, 8407, 8402])
    del listed["port"]
    assert [p.port for p in loaded(tmp_path, listed).providers] == [8400, 8407, 8402]


def test_each_instance_reads_its_own_secret_and_merges_its_own_env(tmp_path: Path) -> None:
    env = {"TOKEN": "token-default", "TOKEN_2": "token-second", "KEY_3": "key-third-one"}
    p = prov(env={"QWEN_TOKEN": "${TOKEN}", "MODE": "a"}, key="${TOKEN}",
             start=["{python}", "serve.py", "--token", "${TOKEN}"],
             instances=[None, {"secrets": {"TOKEN": "TOKEN_2"}, "env": {"MODE": "b"}},
                        {"key": "${KEY_3}"}])
    first, second, third = loaded(tmp_path, p, env=env).providers
    assert (first.env["QWEN_TOKEN"], first.key, first.start[-1]) == ("token-default",) * 3
    assert (second.env["QWEN_TOKEN"], second.key, second.start[-1]) == ("token-second",) * 3
    assert (first.env["MODE"], second.env["MODE"]) == ("a", "b")
    assert third.key == "key-third-one" and third.key_is_secret
    assert second.secret_names == ("TOKEN_2",) and second.secret_values() == ("token-second",)
    assert set(third.secret_names) == {"TOKEN", "KEY_3"}
    shown = loaded(tmp_path, p, env=env).redacted()["providers"][1]
    assert "token-second" not in repr(shown) and shown["group"] == "qw"


def test_an_instance_whose_secret_is_unset_is_the_only_one_missing_it(tmp_path: Path) -> None:
    p = prov(env={"QWEN_TOKEN": "${TOKEN}"},
             instances=[{"secrets": {"TOKEN": "TOKEN_1"}}, {"secrets": {"TOKEN": "TOKEN_2"}}])
    config = loaded(tmp_path, p, env={"TOKEN_1": "one-token"})
    assert [q.missing_secrets for q in config.providers] == [(), ("TOKEN_2",)]
    assert config.needing("TOKEN_2") == ["qw#2"]


def test_instances_share_the_providers_clone_and_virtual_environment(tmp_path: Path) -> None:
    config = loaded(tmp_path, prov(instances=2, repo="https://example.com/x.git", ref="a" * 40))
    specs = [runspec.build(p, config, None, config.state_dir, config.apis_dir)
             for p in config.providers]
    assert specs[0].clone_dir == specs[1].clone_dir == config.apis_dir / "qw"


def test_a_gateway_route_naming_the_provider_means_its_instances(tmp_path: Path) -> None:
    config = loaded(tmp_path, prov(instances=2), prov("b", port=9200),
                    routes={"m": ["b", "qw"]})
    assert config.gateway.routes == {"m": ("b", "qw#1", "qw#2")}


@pytest.mark.parametrize(("instances", "message"), [
    (0, "instances: must be at least 1, got 0"),
    (-2, "instances: must be at least 1, got -2"),
    ([], "instances: must be a count (at least 1) or a non-empty list"),
    ("three", "instances: must be a count (at least 1) or a non-empty list"),
    ([{"port": 1}], "instances[0]: port: unknown field (known: env, key, secrets)"),
    (["x"], "instances[0]: must be a mapping with env, key, secrets, got a string"),
    ([{"secrets": {"TOKEN": "not a name"}}], "instances[0]: secrets: must map variable names"),
    ([{"key": 5}], "instances[0]: key: must be a string, got int 5"),
])
def test_bad_instances_name_the_file_provider_and_field(tmp_path: Path, instances: object,
                                                         message: str) -> None:
    (problem,) = problems(tmp_path, prov(instances=instances))
    assert problem.startswith(f"providers.yaml: providers[0] (qw): {message}"), problem


@pytest.mark.parametrize(("ports", "message"), [
    ("8302-8300", "ports: must be a range like 8100-8102 or a list of ports, got a string"),
    ("8300..8302", "ports: must be a range like 8100-8102 or a list of ports, got a string"),
    ("8300-8301", "ports: 2 port(s) for 3 instances"),
    ([8300, 8300, 8301], "ports: lists a port twice"),
    ([8300, "x", 8301], "ports: must be a range like 8100-8102 or a list of ports, got a list"),
])
def test_a_bad_ports_range_is_a_config_error(tmp_path: Path, ports: object,
                                              message: str) -> None:
    p = dict(prov(instances=3), ports=ports)
    del p["port"]
    (problem,) = problems(tmp_path, p)
    assert problem.startswith(f"providers.yaml: providers[0] (qw): {message}"), problem


def test_ports_need_instances_and_replace_port(tmp_path: Path) -> None:
    assert problems(tmp_path, dict(prov(), ports="8300-8301")) == [
        "providers.yaml: providers[0] (qw): ports: only with instances (one port per instance)"]
    assert problems(tmp_path, dict(prov(instances=2), ports="8300-8301")) == [
        "providers.yaml: providers[0] (qw): port: give port or ports, not both "
        "(ports: one per instance)"]


def test_an_instance_port_clashing_with_another_provider_is_named(tmp_path: Path) -> None:
    assert problems(tmp_path, prov("b", port=9102), prov(instances=3)) == [
        "providers.yaml: providers[1] (qw): port: duplicate port 9102 of qw#3 (also used by b)"]
    ranged = dict(prov(instances=2), ports=[9301, 9302])
    del ranged["port"]
    assert problems(tmp_path, ranged, prov("b", port=9302)) == [
        "providers.yaml: providers[1] (b): port: duplicate port 9302 (also used by qw#2)"]
    assert problems(tmp_path, prov(instances=2), port=9101) == [
        "providers.yaml: gateway: port: 9101 is also the port of provider 'qw#2'"]


def test_a_provider_named_like_a_group_is_a_duplicate(tmp_path: Path) -> None:
    assert problems(tmp_path, prov(instances=2), prov("qw", port=9200)) == [
        "providers.yaml: providers[1] (qw): name: duplicate name 'qw' (also providers[0])"]


def test_a_field_error_of_a_provider_with_instances_is_reported_once(tmp_path: Path) -> None:
    assert problems(tmp_path, prov(instances=3, runtime="cobol")) == [
        "providers.yaml: providers[0] (qw): runtime: unknown runtime 'cobol' "
        "(known: python, node, go, deno)"]


def test_a_remote_provider_cannot_have_instances(tmp_path: Path) -> None:
    remote = {"name": "r", "url": "http://127.0.0.1:9555", "instances": 2, "models": ["m"]}
    assert problems(tmp_path, remote) == [
        "providers.yaml: providers[0] (r): instances: not used with url (a remote provider is "
        "one address: list each as a provider of its own)"]
