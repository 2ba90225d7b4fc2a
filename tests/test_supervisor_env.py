"""What a child is given: its port three ways, its env, secrets it needs but no log shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.supervisor import (
    echo,
    free_port,
    run,
    until_state,
    write_config,
)

from supervisor.lifecycle.manager import Supervisor

SHOW_ENV = """\
import os
print("env:", os.environ["PORT"], os.environ["SERVER_PORT"], os.environ["LISTEN_PORT"],
      os.environ["GREETING"], os.environ["UNIGW_PROVIDER"], flush=True)
from supervisor.demo.echo import main
main([])  # no --port: the echo server takes PORT from the environment
"""


def test_child_gets_its_port_in_three_variables_and_its_env(tmp_path: Path) -> None:
    (tmp_path / "show_env.py").write_text(SHOW_ENV)
    port = free_port()
    provider = echo("envy", port, env={"GREETING": "hello there"})
    provider["start"] = ["{python}", "show_env.py"]
    config = write_config(tmp_path, [provider])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "envy", "ready")
        assert f"env: {port} {port} {port} hello there envy" in (sup.log_tail("envy", 20) or [])

    run(config, body)


def test_secret_start_argument_and_key_are_used_but_never_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-value-4242"
    monkeypatch.setenv("UNIGW_TEST_SECRET", secret)
    provider = echo("guarded", free_port(), "--api-key", "${UNIGW_TEST_SECRET}",
                    health="/v1/models", key="${UNIGW_TEST_SECRET}")
    config = write_config(tmp_path, [provider])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "guarded", "ready")  # the probe sent the key the child wants
        assert any("--api-key ***" in line for line in sup.log_tail("guarded", 20) or [])
        assert secret not in repr(sup.status())

    run(config, body)
    logs = "".join(p.read_text() for p in (config.state_dir / "logs").iterdir())
    assert secret not in logs


PRINTS_ITS_TOKEN = """\
import os
print("loaded SSO token", os.environ["SSO"], "for the upstream", flush=True)
from supervisor.demo.echo import main
main([])
"""


def test_a_provider_printing_its_secret_has_it_scrubbed_from_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sso-cookie-0123456789"
    monkeypatch.setenv("UNIGW_TEST_SSO", secret)
    (tmp_path / "leaky.py").write_text(PRINTS_ITS_TOKEN)
    provider = echo("leaky", free_port(), env={"SSO": "${UNIGW_TEST_SSO}"})
    provider["start"] = ["{python}", "leaky.py"]
    config = write_config(tmp_path, [provider])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "leaky", "ready")  # it did get the real value: it started
        assert "loaded SSO token *** for the upstream" in (sup.log_tail("leaky", 20) or [])

    run(config, body)
    assert secret not in (config.state_dir / "logs" / "leaky.log").read_text()
