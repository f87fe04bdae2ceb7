"""The chaos report's text: what an operator reads after `make chaos`."""

import pytest

from chaos.report import render

pytestmark = pytest.mark.unit


def report(ok=True):
    return {
        "started_at": "2026-12-02T06:00:00+00:00",
        "duration_s": 420.0,
        "logs": "/tmp/logs",
        "faults": [
            {
                "fault": "kill -9 orders",
                "outage_s": 20.0,
                "started_s": 40.0,
                "ended_s": 60.1,
                "recovered_s": 64.3,
                "recovery_s": 4.2,
                "notes": [],
            },
            {
                "fault": "restart RabbitMQ",
                "outage_s": 5.0,
                "started_s": 80.0,
                "ended_s": 99.0,
                "recovered_s": None,
                "recovery_s": None,
                "notes": ["stopped in 3.1s", "started in 11.0s"],
            },
        ],
        "orders": {
            "placed": 12,
            "accepted": 10,
            "abandoned_after_retries": 1,
            "answers": {"place": {"202": 10, "503": 4, "connection_error": 2}},
            "terminal_states": {"confirmed": 7, "rejected": 3},
            "settled_s_after_last_recovery": 4.5,
        },
        "invariants": [
            {"name": "no oversell (inventory)", "ok": True, "detail": {"stock": []}},
            {
                "name": "every error the gateway returned was a 503 or 429",
                "ok": ok,
                "detail": {"other_errors_count": 0 if ok else 2, "other_errors": []},
            },
        ],
        "longest_recovery": {"fault": "kill -9 orders", "seconds": 4.2},
        "unrecovered_faults": ["restart RabbitMQ"],
        "unexpected_exits": [{"process": "orders", "code": 1, "at_s": 90.2}],
        "ok": ok,
    }


def test_the_report_names_faults_orders_invariants_and_recovery():
    text = render(report())
    assert "kill -9 orders" in text and "4.2" in text
    assert "stopped in 3.1s; started in 11.0s" in text
    assert "Orders: 12 placed, 10 accepted, 1 abandoned after retries" in text
    assert "202: 10, 503: 4, connection_error: 2" in text
    assert "confirmed: 7, rejected: 3" in text
    assert "[PASS] no oversell (inventory)" in text
    assert "Longest recovery: 4.2 s after kill -9 orders" in text
    assert "NOT RECOVERED: restart RabbitMQ" in text
    assert "Unexpected exit: orders (code 1) at 90.2 s" in text
    assert text.endswith("RESULT: PASS")


def test_a_failed_invariant_shows_its_evidence():
    text = render(report(ok=False))
    assert "[FAIL] every error the gateway returned was a 503 or 429" in text
    assert "other_errors_count: 2" in text
    assert text.endswith("RESULT: FAIL")


def test_a_run_that_failed_to_start_says_why():
    text = render(
        {"started_at": "x", "duration_s": 3.0, "error": "RuntimeError: boom", "ok": False}
    )
    assert "RUN FAILED: RuntimeError: boom" in text
    assert text.endswith("RESULT: FAIL")
