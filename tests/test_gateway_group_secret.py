"""``POST /providers/{group}/secret``: a provider with ``instances:`` takes any secret one of
its instances reads: its own variable (each instance without a ``secrets:`` mapping for it
reads that one) or an instance's own ``.env`` name; a name none of them reads is a 400 that
says to store the instance's name. The gateway app in process (a Starlette TestClient, no
provider running): this is about which names the route accepts and where the value goes."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from supervisor.config import loads
from supervisor.lifecycle.external import ExternalView

BASE = "http://127.0.0.1:7990"
CLIENT = {"X-Unigw-Client": "test"}
CONFIG = """
gateway: {port: 7990}
providers:
  - name: qw
    port: 7991
    runtime: python
    start: [x, --token, "${QW_TOKEN}"]
    enabled: false
    instances:
      - {}
      - secrets: {QW_TOKEN: QW_TOKEN_2}
      - {}
  - name: each
    port: 7995
    runtime: python
    start: [x]
    env: {TOKEN: "${EACH_TOKEN}"}
    enabled: false
    instances:
      - secrets: {EACH_TOKEN: EACH_TOKEN_1}
      - secrets: {EACH_TOKEN: EACH_TOKEN_2}
"""


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[TestClient]:
    config = loads(CONFIG, tmp_path / "providers.yaml", environ={})
    with TestClient(create_app(config, ExternalView(config)), base_url=BASE) as client:
        yield client


def secret(gateway: TestClient, provider: str, name: str, value: str = "v-1") -> dict[str, object]:
    r = gateway.post(f"/providers/{provider}/secret", json={"name": name, "value": value},
                     headers=CLIENT)
    return {"status": r.status_code, **r.json()}


def test_a_groups_own_variable_is_stored_for_the_instances_that_read_it(
        gateway: TestClient, tmp_path: Path) -> None:
    answer = secret(gateway, "qw", "QW_TOKEN", "tok-group")
    assert answer == {"status": 200, "stored": "QW_TOKEN", "needed_by": ["qw#1", "qw#3"]}
    dotenv = tmp_path / ".env"
    assert dotenv.read_text() == "QW_TOKEN=tok-group\n"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600


def test_an_instances_own_name_is_stored_through_its_group(gateway: TestClient,
                                                           tmp_path: Path) -> None:
    answer = secret(gateway, "qw", "QW_TOKEN_2", "tok-two")
    assert answer == {"status": 200, "stored": "QW_TOKEN_2", "needed_by": ["qw#2"]}
    assert secret(gateway, "qw%232", "QW_TOKEN_2")["status"] == 200  # and through itself
    assert secret(gateway, "qw%232", "QW_TOKEN")["status"] == 400  # qw#2 does not read it


def test_a_variable_every_instance_maps_is_refused_with_the_names_to_use(
        gateway: TestClient, tmp_path: Path) -> None:
    answer = secret(gateway, "each", "EACH_TOKEN")
    assert answer["status"] == 400
    message = answer["error"]["message"]  # type: ignore[index]
    assert "EACH_TOKEN_1, EACH_TOKEN_2" in message and "own .env name" in message
    assert not (tmp_path / ".env").exists()
    assert secret(gateway, "nobody", "QW_TOKEN")["status"] == 404
