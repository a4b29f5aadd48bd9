"""The benchmark and fuzzing commands the docs show (docs/performance.md, docs/reliability.md,
docs/testing.md) run as shown, in their short forms: every benchmark and every fault scenario
through run_all.py --quick (about 7 minutes here), and the Schemathesis runner with a couple of
examples. The figures of these runs are not for quoting; that they run is the point."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.perf.run_all import BENCHMARKS, ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(2400)
def test_every_benchmark_and_fault_scenario_runs(tmp_path):
    done = subprocess.run([sys.executable, "tests/perf/run_all.py", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=2300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    summary = (ROOT / "tests" / "perf" / "results" / "summary.md").read_text()
    for name in BENCHMARKS:  # each one ran, and ended well
        assert re.search(rf"^## {name} \([\d.]+ s, exit 0\)$", summary, re.M), (name, summary[:3000])


@pytest.mark.timeout(900)
@pytest.mark.parametrize("extra", [[], ["--random"]], ids=["fixed seed", "random seed"])
def test_the_schemathesis_runner_runs(tmp_path, extra):
    done = subprocess.run([sys.executable, "-m", "tests.fuzz.run_schemathesis", "--examples", "1", "--out", str(tmp_path),
                           *extra], cwd=ROOT, capture_output=True, text=True, timeout=850)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert (tmp_path / "schemathesis.md").exists() and (tmp_path / "schemathesis.json").exists()
