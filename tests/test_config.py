"""providers.yaml loading: the shipped file, every validation error, secrets and redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import ConfigError, load, loads

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = [
    ("qwen-api", 8000, "python"),
    ("qwenchat2api", 8001, "deno"),
    ("k2think2api3", 8002, "python"),
    ("k2think2api2", 8003, "python"),
    ("k2Think2Api", 8004, "python"),
    ("grok2api", 8005, "python"),
    ("OpenAI-Compatible-API-Proxy-for-Z", 8006, "go"),
    ("zai-python-sdk", 8007, "python"),
    ("z.ai2api_python", 8008, "python"),
    ("ZtoApi", 8009, "go"),
    ("Z.ai2api", 8010, "python"),
    ("ZtoApits", 8011, "deno"),
    ("TalkAI", 8012, "go"),
    ("Copilot-Proxy", 8013, "node"),
]


def problems_of(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path, environ=env or {})
    return info.value.problems


def provider(**fields: object) -> str:
    base: dict[str, object] = {"name": "p1", "port": 9001, "runtime": "python", "start": ["x"]}
    base.update(fields)
    lines = [f"    {k}: {v!r}" if isinstance(v, str) else f"    {k}: {v}" for k, v in base.items()]
    return "providers:\n  -\n" + "\n".join(lines) + "\n"


def test_shipped_providers_yaml_has_the_fourteen_providers_on_8000_to_8013() -> None:
    config = load(ROOT / "providers.yaml", environ={})
    assert [(p.name, p.port, p.runtime) for p in config.providers] == EXPECTED
    assert config.gateway.host == "127.0.0.1" and config.gateway.port == 7999
    for p in config.providers:
        assert p.repo and p.repo.startswith("https://github.com/"), p.name
        assert p.ref and len(p.ref) == 40 and int(p.ref, 16) >= 0, p.name
        assert p.start and p.models and p.health.startswith("/"), p.name
    by_name = {p.name: p for p in config.providers}
    assert by_name["qwen-api"].cwd == "py-api"
    assert by_name["z.ai2api_python"].env["ANONYMOUS_MODE"] == "true"
    assert by_name["Z.ai2api"].python == "3.12"
    assert "{port}" in by_name["k2Think2Api"].start
    assert by_name["TalkAI"].repo == "https://github.com/libaxuan/CtoAPi"
    assert by_name["Copilot-Proxy"].repo == "https://github.com/ericc-ch/copilot-api"


def test_shipped_file_names_secrets_only_as_references(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(ROOT / "providers.yaml", environ={})
    missing = {p.name: p.missing_secrets for p in config.providers if p.missing_secrets}
    assert missing == {
        "qwen-api": ("QWEN_BEARER_TOKEN",),
        "qwenchat2api": ("QWENCHAT2API_TOKENS", "QWENCHAT2API_SSXMOD_ITNA"),
        "k2think2api3": ("K2THINK_VALID_API_KEY", "K2THINK_TOKENS_FILE"),
        "grok2api": ("GROK_SSO",),
        "Copilot-Proxy": ("COPILOT_GITHUB_TOKEN",),  # written into its private HOME (files:)
    }


def test_secrets_resolve_from_environment_and_dotenv_and_are_redacted(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# comment\nexport TOKEN_A='from-dotenv'\nTOKEN_B=dotenv-b\n")
    text = provider(
        env={"A": "${TOKEN_A}", "B": "${TOKEN_B}", "C": "${UNSET:-fallback}"},
        key="${TOKEN_B}",
        start=["{python}", "--token", "${TOKEN_A}"],
    )
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    config = load(path, environ={"TOKEN_B": "from-env"})
    p = config.providers[0]
    assert p.env == {"A": "from-dotenv", "B": "from-env", "C": "fallback"}
    assert p.key == "from-env" and p.start[2] == "from-dotenv" and p.missing_secrets == ()
    shown = config.redacted()["providers"][0]
    assert shown["env"] == {"A": "***", "B": "***", "C": "***"}
    assert shown["key"] == "***" and shown["start"] == ["{python}", "--token", "***"]
    assert "from-env" not in repr(config.redacted()) and "from-dotenv" not in repr(
        config.redacted()
    )


def test_missing_secret_is_recorded_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(provider(env={"T": "${NEEDED_TOKEN}"}))
    assert load(path, environ={}).providers[0].missing_secrets == ("NEEDED_TOKEN",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (provider(colour="blue"), "providers.yaml: providers[0] (p1): colour: unknown field"),
        (
            "providers:\n  - {port: 9001, runtime: python, start: [x]}\n",
            "providers.yaml: providers[0]: name: missing required field",
        ),
        (
            provider(port=70000),
            "providers.yaml: providers[0] (p1): port: must be an integer in 1-65535, got 70000",
        ),
        (
            provider(port=0),
            "providers.yaml: providers[0] (p1): port: must be an integer in 1-65535, got 0",
        ),
        (
            provider(port="80"),
            "providers.yaml: providers[0] (p1): port: must be an integer, got a string '80'",
        ),
        (
            provider(start="python main.py"),
            "providers.yaml: providers[0] (p1): start: must be a list of strings, got a string 'python main.py'",
        ),
        (
            provider(start=[1, 2]),
            "providers.yaml: providers[0] (p1): start: must be a list of strings; item 0: must be a string, got int 1",
        ),
        (
            provider(runtime="cobol"),
            "providers.yaml: providers[0] (p1): runtime: unknown runtime 'cobol' (known: python, node, go, deno)",
        ),
        (
            provider(start=["{python}", "{nope}"]),
            "providers.yaml: providers[0] (p1): start: unknown placeholder {nope}",
        ),
        (
            provider(repo="https://example.invalid/x"),
            "providers.yaml: providers[0] (p1): ref: required with repo (pin a commit, never a branch)",
        ),
        (
            provider(cwd="../elsewhere"),
            "providers.yaml: providers[0] (p1): cwd: must be a folder inside the clone",
        ),
        (
            "gateway:\n  strategy: fastest\n",
            "providers.yaml: gateway: strategy: unknown strategy 'fastest' (known: round_robin,",
        ),
        (
            "gateway:\n  port: 123456\n",
            "providers.yaml: gateway: port: must be an integer in 1-65535, got 123456",
        ),
        ("gateway:\n  bogus: 1\n", "providers.yaml: gateway: bogus: unknown field"),
        (
            "gateway:\n  first_content_timeout: 0\n",
            "providers.yaml: gateway: first_content_timeout: must be more than 0 seconds, got 0",
        ),
        (
            "gateway:\n  hold_max_bytes: 0\n",
            "providers.yaml: gateway: hold_max_bytes: must be at least 1, got 0",
        ),
        ("gateway:\n  retries: -1\n", "providers.yaml: gateway: retries: must be 0 or more, got -1"),
        (
            "gateway:\n  request_timeout: 0\n",
            "providers.yaml: gateway: request_timeout: must be more than 0, got 0",
        ),
        (
            "gateway:\n  max_clients: 0\n",
            "providers.yaml: gateway: max_clients: must be at least 1, got 0",
        ),
        (
            provider(error_patterns=["ok", "/([a-z/"]),
            "providers.yaml: providers[0] (p1): error_patterns: item 1: '/([a-z/' is not a valid",
        ),
        (
            provider(error_patterns=[""]),
            "providers.yaml: providers[0] (p1): error_patterns: item 0: must not be empty",
        ),
        (
            provider(error_patterns="Failed"),
            "providers.yaml: providers[0] (p1): error_patterns: must be a list of strings",
        ),
        (
            "supervisor:\n  probe_interval: soon\n",
            "providers.yaml: supervisor: probe_interval: must be a number, got a string 'soon'",
        ),
        ("providers: {a: 1}\n", "providers.yaml: providers: must be a list, got a mapping"),
        ("- just\n- a list\n", "providers.yaml: the top level must be a mapping, got a list"),
        ("providers: [\n", "providers.yaml: not valid YAML"),
        (
            provider(start="{python} main.py"),
            "providers.yaml: providers[0] (p1): start: must be a list of strings, got a string "
            "'{python} main.py' (write it as a list of its words: [\"{python}\", \"main.py\"])",
        ),
        (
            provider(key="${TOKEN"),
            "providers.yaml: providers[0].key: '${TOKEN' has a '${' with no closing '}'",
        ),
        (
            provider(env={"Q": "$TOKEN"}),
            "providers.yaml: providers[0].env.Q: '$TOKEN' is not expanded: write ${TOKEN}",
        ),
        (
            "providers:\n  - name: a\n    port: 8000\n    port: 8050\n",
            "providers.yaml: line 4: 'port' is given twice in one mapping (first at line 3); "
            "keep one",
        ),
    ],
)
def test_each_validation_error_names_file_provider_and_field(
    text: str, expected: str, tmp_path: Path
) -> None:
    problems = problems_of(text, tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


def test_duplicate_names_and_ports_are_reported(tmp_path: Path) -> None:
    text = (
        "providers:\n"
        "  - {name: a, port: 9001, runtime: python, start: [x]}\n"
        "  - {name: a, port: 9002, runtime: python, start: [x]}\n"
        "  - {name: b, port: 9001, runtime: python, start: [x]}\n"
    )
    problems = problems_of(text, tmp_path)
    assert (
        "providers.yaml: providers[1] (a): name: duplicate name 'a' (also providers[0])" in problems
    )
    assert (
        "providers.yaml: providers[2] (b): port: duplicate port 9001 (also used by a)" in problems
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        "gateway: {strategy: fastest}\n"
        "providers:\n"
        "  - {name: a, port: 70000, runtime: cobol, start: 'x y', colour: blue}\n"
    )
    problems = problems_of(text, tmp_path)
    fields = sorted(p.split(": ")[2] for p in problems if "providers[0]" in p)
    assert fields == ["colour", "port", "runtime", "start"]
    assert any("strategy" in p for p in problems)


def test_routes_must_name_known_providers(tmp_path: Path) -> None:
    text = "gateway:\n  routes: {GLM-4.5: [ghost]}\n" + provider()
    assert "providers.yaml: gateway: routes: GLM-4.5: unknown provider 'ghost'" in problems_of(
        text, tmp_path
    )


def test_model_groups_load_as_names_to_member_tuples(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text("gateway:\n  model_groups: {K2-Think: [k2-think, MBZUAI-IFM/K2-Think]}\n"
                    + provider())
    groups = load(path, environ={}).gateway.model_groups
    assert groups == {"K2-Think": ("k2-think", "MBZUAI-IFM/K2-Think")}


def test_model_group_problems_name_the_group_and_the_clash(tmp_path: Path) -> None:
    text = ("gateway:\n"
            "  aliases: {gpt-4: GLM-4.5, x: y}\n"
            "  routes: {k2-think: [p1]}\n"
            "  model_groups:\n"
            "    K2-Think: [k2-think, MBZUAI-IFM/K2-Think]\n"
            "    K2: [k2-think, x]\n"
            "    Empty: []\n"
            "    gpt-4: [GLM-4.5]\n"
            "    m1: [m2]\n"
            + provider(models=["m1"]))
    problems = problems_of(text, tmp_path)
    where = "providers.yaml: gateway: model_groups"
    assert f"{where}: K2: member 'k2-think' is also in group 'K2-Think'" in problems
    assert f"{where}: K2: member 'x' is also an alias (aliases: x)" in problems
    assert f"{where}: Empty: must list at least one member model" in problems
    assert (f"{where}: gpt-4: 'gpt-4' is also an alias (aliases: gpt-4); a name is either a "
            "group or an alias") in problems
    assert f"{where}: m1: 'm1' is also a model served by p1: list it as a member" in problems
    assert ("providers.yaml: gateway: routes: k2-think: 'k2-think' is a member of model group "
            "'K2-Think'; key the route by the group name") in problems
    assert len(problems) == 6, problems


def test_shipped_files_group_the_models_providers_name_differently() -> None:
    real = load(ROOT / "providers.yaml", environ={})
    demo = loads((ROOT / "supervisor" / "demo" / "demo.yaml").read_text(), Path.cwd() / "demo.yaml")
    assert demo.gateway.model_groups == real.gateway.model_groups
    groups = real.gateway.model_groups
    assert {"k2-think", "MBZUAI-IFM/K2-Think"} <= set(groups["K2-Think"])
    assert {"GLM-4.5", "glm-4.5"} <= set(groups["GLM-4.5"])
    served = {m for p in real.providers for m in p.models}
    for group, members in groups.items():
        owners = {p.name for p in real.providers if set(members) & set(p.models)}
        assert set(members) <= served and len(owners) >= 2, group


def test_demo_config_describes_fourteen_echo_providers_with_the_real_names() -> None:
    demo = loads((ROOT / "supervisor" / "demo" / "demo.yaml").read_text(), Path.cwd() / "demo.yaml")
    real = load(ROOT / "providers.yaml", environ={})
    assert [(p.name, p.port) for p in demo.providers] == [(p.name, p.port) for p in real.providers]
    assert all(p.local and "supervisor.demo.echo" in p.start for p in demo.providers)
    assert [p.models for p in demo.providers] == [p.models for p in real.providers]


def test_display_hides_provider_keys_and_secret_looking_values(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(provider(key="sk-literal", env={"HOST": "127.0.0.1", "DEFAULT_KEY": "sk-x"},
                             start=["{python}", "--api-key", "k1", "--github-token=t1", "--port", "{port}"]))
    config = load(path, environ={})
    shown = config.redacted()["providers"][0]
    assert shown["key"] == "***"
    assert shown["env"] == {"HOST": "127.0.0.1", "DEFAULT_KEY": "***"}
    assert shown["start"] == ["{python}", "--api-key", "***", "--github-token=***", "--port", "{port}"]
    assert config.providers[0].key == "sk-literal"  # the gateway still sends the real one


def test_a_whole_answer_has_a_deadline_and_a_size_limit(tmp_path: Path) -> None:
    gw = load(ROOT / "providers.yaml", environ={}).gateway
    assert (gw.total_timeout, gw.max_response_bytes) == (180.0, 32 * 1024 * 1024)
    text = ("gateway:\n  first_byte_timeout: 60\n  total_timeout: 30\n"
            "  max_response_bytes: 0\n" + provider())
    assert problems_of(text, tmp_path) == [
        "providers.yaml: gateway: total_timeout: must be at least first_byte_timeout (60), "
        "got 30",
        "providers.yaml: gateway: max_response_bytes: must be at least 1, got 0"]


def test_allowed_hosts_are_bare_host_names(tmp_path: Path) -> None:
    assert load(ROOT / "providers.yaml", environ={}).gateway.allowed_hosts == ()
    ok = "gateway:\n  allowed_hosts: [unigw.lan, 192.168.1.5, '[fe80::1]']\n" + provider()
    (tmp_path / "ok.yaml").write_text(ok)
    assert load(tmp_path / "ok.yaml", environ={}).gateway.allowed_hosts == (
        "unigw.lan", "192.168.1.5", "[fe80::1]")
    text = "gateway:\n  allowed_hosts: ['http://unigw.lan', 'unigw.lan:7999']\n" + provider()
    assert problems_of(text, tmp_path) == [
        "providers.yaml: gateway: allowed_hosts: item 0: must be a host name or address without "
        "scheme, port or path (e.g. unigw.lan), got 'http://unigw.lan'",
        "providers.yaml: gateway: allowed_hosts: item 1: must be a host name or address without "
        "scheme, port or path (e.g. unigw.lan), got 'unigw.lan:7999'"]
