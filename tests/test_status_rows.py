"""The typed seam's status row: made into JSON once at the gateway's edge
(:class:`gateway.rows.ProviderRow`) and parsed once by the CLI
(:class:`supervisor.cli.output.StatusRow`)."""

from __future__ import annotations

import json

import pytest

from gateway.errors import FailureClass
from gateway.rows import ERROR_CHARS, ProviderRow
from gateway.stats import Failure, Serving
from supervisor.cli.output import StatusRow, health, status_cells, status_table
from supervisor.view import ProviderStatus, State

READY = ProviderStatus(
    name="a", port=8001, state=State.READY, pid=4242, uptime_s=75.0, restarts=1,
    probe_ok=True, probe_ms=12.3, cpu_percent=1.5, rss_bytes=2_000_000, runtime="python",
    models=("m1", "m2"), warnings=("listens on 0.0.0.0:8001",), description="demo",
)


@pytest.mark.parametrize(("probe_ok", "shown"), [(True, "ok"), (False, "fail"), (None, None)])
def test_health_in_json_is_made_from_probe_ok(probe_ok: bool | None, shown: str | None) -> None:
    status = ProviderStatus(name="a", port=1, state=State.STARTING, probe_ok=probe_ok)
    assert ProviderRow(status, 0, 0, 0, None).to_json()["health"] == shown


def test_a_row_survives_json_and_back_unchanged() -> None:
    row = ProviderRow(READY, reqs=7, errors=2, in_flight=1, latency_ms=3.5)
    parsed = StatusRow.from_json(json.loads(json.dumps(row.to_json())))
    assert parsed == StatusRow(READY, reqs=7, errors=2)


def test_status_cells_are_formatted_from_the_typed_row() -> None:
    cells = status_cells(StatusRow(READY, reqs=7, errors=2))
    assert cells == ["a", "8001", "ready", "4242", "1m15s", "1", "ok 12ms", "unknown", "7", "2",
                     "-"]
    failed = ProviderStatus(name="b", port=2, state=State.FAILED, last_error="missing  secret\nX")
    assert health(failed) == "-" and status_cells(StatusRow(failed, 0, 0))[-1] == "missing secret X"


def test_a_long_last_error_keeps_its_start_and_its_cause_at_the_end() -> None:
    error = ("clone failed: fatal: unable to access 'https://github.com/ZyphrZero/z.ai2api"
             "_python.git/': Could not resolve host: github.com")
    failed = ProviderStatus(name="b", port=2, state=State.FAILED, last_error=error)
    shown = status_cells(StatusRow(failed, 0, 0))[-1]
    assert len(shown) == 60 and shown.startswith("clone failed: fatal")
    assert shown.endswith("Could not resolve host: github.com") and "…" in shown


def test_only_the_state_column_is_coloured_and_only_on_request() -> None:
    rows = [StatusRow(READY, 0, 0)]
    assert "\x1b[" not in status_table(rows)
    coloured = status_table(rows, colour=True).splitlines()[1]
    assert coloured.split()[2] == "\x1b[32mready\x1b[0m" and coloured.count("\x1b[") == 2


def test_serving_and_the_last_failure_reach_the_json_and_the_cli_row() -> None:
    failure = Failure(FailureClass.UPSTREAM_ERROR, "Failed to call upstream " + "x" * 400, 502,
                      1_700_000_000.1234)
    row = ProviderRow(READY, 3, 1, 0, 5.0, Serving.FAILING, failure,
                      {FailureClass.UPSTREAM_ERROR: 1})
    data = json.loads(json.dumps(row.to_json()))
    assert (data["serving"], data["serving_class"], data["serving_error_at"]) == (
        "failing", "upstream_error", 1_700_000_000.123)
    assert data["serving_error"].startswith("Failed to call upstream")
    assert len(data["serving_error"]) == ERROR_CHARS
    assert data["failures"] == {kind.value: int(kind is FailureClass.UPSTREAM_ERROR)
                                for kind in FailureClass}
    parsed = StatusRow.from_json(data)
    assert parsed.serving == "failing"
    cells = status_cells(parsed)
    assert cells[7] == "failing" and cells[-1].startswith("upstream_error: Failed")


def test_a_row_with_no_failure_has_null_serving_fields_and_zero_counts() -> None:
    data = ProviderRow(READY, 0, 0, 0, None).to_json()
    assert (data["serving"], data["serving_class"], data["serving_error"],
            data["serving_error_at"]) == ("unknown", None, None, None)
    assert set(data["failures"].values()) == {0}


def test_last_error_shows_the_supervisors_error_unless_a_ready_provider_does_not_serve() -> None:
    backoff = ProviderStatus(name="b", port=2, state=State.BACKOFF, last_error="exited 1")
    failing = StatusRow(backoff, 1, 1, "failing", "timeout: no answer within 5s")
    assert status_cells(failing)[-1] == "exited 1"  # the process is the news
    recovered = StatusRow(READY, 1, 1, "ok", "timeout: no answer within 5s")
    assert status_cells(recovered)[-1] == "-"
    limited = StatusRow(READY, 1, 1, "rate_limited", "rate_limited: slow down")
    assert status_cells(limited)[-1] == "rate_limited: slow down"


def test_instances_are_shown_indented_under_one_line_of_their_provider() -> None:
    def instance(k: int, state: State) -> StatusRow:
        status = ProviderStatus(name=f"qw#{k}", port=8099 + k, state=state, restarts=k,
                                group="qw")
        return StatusRow(status, reqs=10 * k, errors=k)

    rows = [StatusRow(READY, 1, 0), instance(1, State.READY), instance(2, State.BACKOFF),
            instance(3, State.READY)]
    lines = status_table(rows).splitlines()
    assert [line.split()[:3] for line in lines[1:]] == [
        ["a", "8001", "ready"], ["qw", "8100-8102", "2/3"], ["qw#1", "8100", "ready"],
        ["qw#2", "8101", "backoff"], ["qw#3", "8102", "ready"]]
    assert [line[:6] for line in lines[3:]] == ["  qw#1", "  qw#2", "  qw#3"]
    group = lines[2].split()
    assert group[2:4] == ["2/3", "ready"] and group[6] == "6" and group[9:11] == ["60", "6"]
    coloured = status_table(rows, colour=True).splitlines()
    assert "\x1b[" not in coloured[2] and "\x1b[33mbackoff" in coloured[4]


def test_the_group_of_an_instance_survives_json_and_back() -> None:
    status = ProviderStatus(name="qw#2", port=8101, state=State.READY, group="qw")
    shown = ProviderRow(status, 0, 0, 0, None).to_json()
    assert shown["group"] == "qw" and ProviderRow(READY, 0, 0, 0, None).to_json()["group"] is None
    assert StatusRow.from_json(json.loads(json.dumps(shown))).status == status
