"""What the demo prints, as a newcomer reads it: no 0 % of nothing, progress that does not
shrink when a task is skipped, plan growth said aloud, events in the stream's order, a summary
table that long task keys do not break."""
from __future__ import annotations

import importlib.util
import io

import pytest

from tests.scripts.test_script_help import ROOT

spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)


def watched_with(statuses: dict[str, str]) -> "demo.Watched":
    watched = demo.Watched("MUNI_LIEN_SEARCH", "w1")
    watched.tasks = {key: {"taskKey": key, "status": status, "sequence": i, "slaStatus": "ON_TIME"}
                     for i, (key, status) in enumerate(statuses.items())}
    watched.count()
    return watched


def test_before_the_plan_exists_the_bar_says_so():
    bar = demo.Watched("PAYOFF_REQUEST", "w1").bar()
    assert "plan is not written yet" in bar and "0/0" not in bar and "%" not in bar


def test_a_skipped_task_counts_as_done_and_the_plan_does_not_shrink():
    before = watched_with({"a": "COMPLETED", "b": "RUNNING", "c": "PENDING"})
    after = watched_with({"a": "COMPLETED", "b": "SKIPPED", "c": "PENDING"})
    assert (before.completed, before.total) == (1, 3)
    assert (after.completed, after.total) == (2, 3)
    assert "67% 2/3" in after.bar()
    assert watched_with({"a": "COMPLETED", "x": "CANCELLED"}).total == 1


def test_events_come_out_in_the_stream_order_however_the_channels_interleave():
    in_order = demo.InOrder(hold=0.3)
    for arrived, event_id in ((0.0, 12), (0.05, 10), (0.1, 11), (0.2, 14)):
        in_order.push({"id": event_id}, arrived)
    in_order.push({"type": "error"}, 0.2)
    assert in_order.due(0.25) == [{"type": "error"}]  # not held
    assert [e["id"] for e in in_order.due(0.31)] == [10, 11, 12]  # 14 waits its own 0.3 s
    assert [e["id"] for e in in_order.due(0.51)] == [14]
    in_order.push({"id": 13}, 1.0)
    assert in_order.due(1.1) == [] and [e["id"] for e in in_order.due(1.31)] == [13]


def test_the_summary_keeps_its_columns_with_long_task_keys():
    out = io.StringIO()
    runner = demo.Demo("http://127.0.0.1:1", "token", b"secret", out=out)
    long_key = "portal_access:travis-county-utility-district-number-seventeen"
    runner.watched = {"w1": watched_with({"research_municipality": "COMPLETED", long_key: "COMPLETED"})}
    runner.summary()
    lines = [line for line in out.getvalue().splitlines() if line.startswith("  ") and "SLA" in line]
    assert len(lines) == 2
    assert len({line.index("COMPLETED") for line in lines}) == 1  # the status column lines up
    assert long_key not in out.getvalue() and long_key[:demo.KEY_WIDTH - 1] + "…" in out.getvalue()


@pytest.mark.parametrize("late", ["PENDING", "IN_PROGRESS", "WAITING", "BLOCKED"])
@pytest.mark.parametrize("final", sorted(demo.FINAL))
def test_a_stream_event_that_comes_after_the_api_showed_the_end_does_not_take_the_workflow_back(late, final):
    """Through a balancer the stream can lag the API: the poll sees the final status, then the
    event of an earlier change arrives. The bar prints that event's status; the workflow keeps
    the API's, and the demo's verdict with it."""
    out = io.StringIO()
    runner = demo.Demo("http://127.0.0.1:1", "token", b"secret", out=out)
    watched = watched_with({"a": "COMPLETED", "b": "COMPLETED"})
    runner.watched = {"w1": watched}
    runner.refresh = lambda w: setattr(w, "status", final)  # what the API says now
    runner.refresh(watched)
    runner.on_event({"type": "workflow_status_changed", "workflowId": "w1", "id": 7, "status": late})
    assert watched.status == final and not watched.final_event
    assert f"2/2 {late}" in out.getvalue()
    runner.on_event({"type": "workflow_status_changed", "workflowId": "w1", "id": 8, "status": final})
    assert watched.status == final and watched.final_event


def test_after_the_end_the_demo_prints_the_stream_events_still_on_their_way_and_stops_at_the_last():
    out = io.StringIO()
    runner = demo.Demo("http://127.0.0.1:1", "token", b"secret", out=out)
    watched = watched_with({"a": "COMPLETED"})
    watched.status = "COMPLETED"
    runner.watched = {"w1": watched}
    runner.refresh = lambda w: None
    for event_id, status in ((5, "IN_PROGRESS"), (6, "COMPLETED")):
        runner.events.put({"type": "workflow_status_changed", "workflowId": "w1", "id": event_id, "status": status})
    in_order = demo.InOrder(hold=0.05)
    started = demo.time.monotonic()
    runner.drain(in_order, until=started + 5)
    assert demo.time.monotonic() - started < 2  # it stopped at the final event, not at the limit
    assert watched.final_event and watched.status == "COMPLETED"
    assert out.getvalue().index("1/1 IN_PROGRESS") < out.getvalue().index("1/1 COMPLETED")
