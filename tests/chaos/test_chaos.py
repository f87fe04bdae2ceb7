"""The chaos suite in its bounded form (``python -m chaos --bounded``; ``make
chaos`` runs the full schedule): its own RabbitMQ node, PostgreSQL cluster and
Redis, the whole platform under a steady order load, while orders and billing
are killed with SIGKILL, RabbitMQ restarts and the catalog loses its database.

The run is a separate process (the suite is not an eventlet program, and this
test process is monkey-patched); its JSON report holds every invariant's result
and evidence, asserted here one by one."""

import json
import os
import subprocess
import sys

import pytest

from chaos.report import render
from services.chassis.config import ROOT

pytestmark = pytest.mark.e2e

# The bounded schedule takes about 3 minutes on the 2-core CI machine.
RUN_TIMEOUT = 900


def test_no_order_is_lost_doubled_or_oversold_through_the_bounded_faults(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "chaos", "--bounded"],
        env={**os.environ, "AGORA_STATE_DIR": str(tmp_path)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    report_path = tmp_path / "chaos" / "latest.json"
    assert report_path.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    text = render(report)
    assert "error" not in report, text + "\n" + result.stderr[-3000:]
    assert report["orders"]["accepted"] > 0, text
    assert [f["fault"] for f in report["faults"]] == [
        "kill -9 orders",
        "kill -9 billing",
        "restart RabbitMQ",
        "cut the catalog's database",
    ], text
    assert report["unrecovered_faults"] == [], text
    failed = [check for check in report["invariants"] if not check["ok"]]
    assert failed == [], text
    assert report["ok"], text
