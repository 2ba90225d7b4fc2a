"""Secrets stay where they belong: out of every log view and status, out of other children.

Real processes under a real supervisor: a provider that prints its token every way a pipe can
cut it and then crash-loops, and a provider that dumps the environment it was given.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.supervisor import (
    free_port,
    row,
    run,
    script,
    until,
    until_state,
    write_config,
)

from supervisor.lifecycle.manager import Supervisor

CHATTY = """\
import os, sys, time

token = os.environ["SSO"].encode()
half = len(token) // 2


def out(data):
    while data:
        data = data[os.write(1, data):]


# the token split across two reads: the first half is read before the rest is written
out(b"connecting with token " + token[:half])
time.sleep(0.3)
out(token[half:] + b" ok\\n")
# 5,000 lines naming it, written in 4 KiB pieces that ignore where lines end
flood = b"".join(b"request %d authorized by %s\\n" % (i, token) for i in range(5000))
for i in range(0, len(flood), 4096):
    out(flood[i:i + 4096])
# one line longer than any buffer, the token in it 2,000 times, written in pieces with pauses
long = b"cookie jar: " + b"".join(b"sso=%s; " % token for _ in range(2000))
for n, i in enumerate(range(0, len(long), 4093)):
    out(long[i:i + 4093])
    if n % 5 == 0:
        time.sleep(0.01)
out(b"\\n")
# its last words, which last_error quotes: the token split again, then cut off by the exit
out(b"fatal: upstream rejected token " + token[:5])
time.sleep(0.2)
out(token[5:] + b"\\n")
out(b"dying while printing " + token[:half])
sys.exit(1)
"""

NOSY = """\
import json, os
with open(os.environ["DUMP_TO"], "w") as f:
    json.dump(dict(os.environ), f)
print("my environment:", json.dumps(dict(os.environ)), flush=True)
from supervisor.demo.echo import main
main([])
"""


def _all_logs(config_state: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in (config_state / "logs").iterdir())


def test_a_token_printed_across_reads_and_crash_loops_reaches_no_log_and_no_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "chatty-sso-0123456789abcdefghij"
    monkeypatch.setenv("UNIGW_TEST_CHATTY", token)
    (tmp_path / "chatty.py").write_text(CHATTY)
    config = write_config(
        tmp_path, [script("chatty", free_port(), "chatty.py", env={"SSO": "${UNIGW_TEST_CHATTY}"})]
    )
    fragments = (token, token[: len(token) // 2], token[len(token) // 2:])

    async def body(sup: Supervisor) -> None:
        await until(lambda: (row(sup, "chatty").last_error or "").startswith("crash loop"),
                    60, "four runs, then a crash loop")
        error = row(sup, "chatty").last_error
        assert "crash loop" in error and "fatal: upstream rejected token ***" in error
        status = repr(sup.status())
        shown = "\n".join(sup.log_tail("chatty", 20_000) or [])
        assert "request 4999 authorized by ***" in shown  # the flood is there, scrubbed
        for piece in fragments:
            assert piece not in status
            assert piece not in shown

    run(config, body)
    logs = _all_logs(config.state_dir)
    assert logs.count("authorized by ***") >= 5000
    assert "dying while printing ***" in logs  # the cut-off start of the token, masked too
    for piece in fragments:
        assert piece not in logs


def test_a_child_gets_its_own_env_and_the_ordinary_one_but_no_one_elses_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    others = {"UNIGW_TEST_CHATTY": "chatty-secret-5555", "UNRELATED_TOKEN": "unrelated-6666",
              "UNIGW_API_KEY": "gateway-key-7777"}
    for name, value in others.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UNIGW_TEST_NOSY", "nosy-secret-8888")
    (tmp_path / "chatty.py").write_text(CHATTY)
    (tmp_path / "nosy.py").write_text(NOSY)
    dump = tmp_path / "env.json"
    port = free_port()
    config = write_config(tmp_path, [
        script("chatty", free_port(), "chatty.py", env={"SSO": "${UNIGW_TEST_CHATTY}"}),
        script("nosy", port, "nosy.py", env={
            "DUMP_TO": str(dump), "OWN": "plain value", "OWN_SECRET": "${UNIGW_TEST_NOSY}"}),
    ])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "nosy", "ready")
        await until(lambda: row(sup, "chatty").restarts >= 1, what="chatty to have run")

    run(config, body)
    env = json.loads(dump.read_text())
    assert env["OWN"] == "plain value" and env["OWN_SECRET"] == "nosy-secret-8888"
    assert env["PORT"] == str(port) and env["PATH"] and env["HOME"]
    assert not {"UNIGW_TEST_CHATTY", "UNRELATED_TOKEN", "UNIGW_API_KEY", "SSO"} & set(env)
    nosy_log = (config.state_dir / "logs" / "nosy.log").read_text()
    assert '"OWN_SECRET": "***"' in nosy_log  # its own secret, scrubbed from its own log
    assert not any(v in json.dumps(env) for v in others.values())
    assert not any(v in nosy_log for v in [*others.values(), "nosy-secret-8888"])
