"""What the demo prints, as a newcomer reads it: no 0 % of nothing, progress that does not
shrink when a task is skipped, plan growth said aloud, events in the stream's order, a summary
table that long task keys do not break."""
from __future__ import annotations

import importlib.util
import io

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
