"""A provider that echoes a secret in its error text: the client, the status views and the
request log get ``***`` in its place (gateway.scrub). Replay providers on real sockets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
import pytest
from support.replay import MODEL, Bench, Replay, head

from gateway.scrub import Secrets

PROVIDER_KEY = "prov-secret-AAAA1234"
CLIENT_KEY = "sk-test"  # what Bench's client sends: a gateway key here
ECHOED = (f'{{"error": {{"message": "bad key {PROVIDER_KEY} (Authorization: Bearer '
          f'{CLIENT_KEY})"}}}}').encode()


def test_secrets_masks_the_longest_value_first_and_ignores_short_ones() -> None:
    secrets = Secrets(["abcd", "abcdefgh", "xyz", ""])
    assert secrets.text("k=abcdefgh k=abcd xyz") == "k=*** k=*** xyz"
    assert secrets.data(b"abcdefgh") == b"***"
    assert Secrets().text("abcd") == "abcd"


@pytest.mark.parametrize("status", [500, 401])
def test_a_failing_providers_echoed_secrets_are_masked_everywhere_it_is_shown(
        tmp_path: Path, status: int) -> None:
    bad = Replay(plain=[head(status, "application/json"), ECHOED])
    with Bench(tmp_path, {"bad": bad}, fields={"bad": {"key": PROVIDER_KEY}},
               api_keys=[CLIENT_KEY]) as b:
        with pytest.raises(openai.APIStatusError) as exc:
            b.client().chat.completions.create(model=MODEL, messages=[
                {"role": "user", "content": "hi"}])
        assert "bad key *** (Authorization: Bearer ***)" in exc.value.message
        log = b.gateway.calls.log
        assert log is not None
        deadline = time.monotonic() + 10  # the call's row is queued after its answer went out
        while not log.query(limit=1) and time.monotonic() < deadline:
            log.flush()
            time.sleep(0.02)
        with b.http() as http:
            auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
            shown = [http.get(route, headers=auth).text
                     for route in ("/providers", "/providers/bad", "/requests", "/metrics")]
        assert "bad key ***" in json.loads(shown[1])["serving_error"]
        assert "bad key ***" in shown[2]
        assert not [text for text in [exc.value.message, *shown] if PROVIDER_KEY in text]
        stats = b.stats("bad")
        assert stats.last_failure is not None and PROVIDER_KEY not in stats.last_failure.message


def test_a_providers_400_passed_back_has_its_echoed_secrets_masked(tmp_path: Path) -> None:
    bad = Replay(plain=[head(400, "application/json"), ECHOED])
    with Bench(tmp_path, {"bad": bad}, fields={"bad": {"key": PROVIDER_KEY}},
               api_keys=[CLIENT_KEY]) as b:
        with pytest.raises(openai.BadRequestError) as exc:
            b.client().chat.completions.create(model=MODEL, messages=[
                {"role": "user", "content": "hi"}])
        assert exc.value.message.endswith("bad key *** (Authorization: Bearer ***)")
        assert exc.value.body == {"message": "bad key *** (Authorization: Bearer ***)"}

