"""The bench's reading of wrk's output and its tables (no wrk, no platform)."""

from datetime import UTC, datetime, timedelta

import pytest

from bench import report, sagas, wrk

pytestmark = pytest.mark.unit

WRK_OUTPUT = """Running 20s test @ http://127.0.0.1:8080
  2 threads and 16 connections
  Latency Distribution
     50%    4.00ms
  4000 requests in 20.00s, 1.20MB read
BENCH_RESULT {"requests": 4000, "duration_us": 20000000, "bytes": 1258291, \
"errors": {"connect": 0, "read": 1, "write": 0, "timeout": 2, "status": 3}, \
"statuses": {"503": 3, "304": 5}, \
"latency_us": {"p50": 4000, "p90": 9500, "p99": 31250, "max": 80000, "mean": 5012.5}}
Requests/sec:    200.00
"""


def test_parse_reads_counts_latencies_and_every_non_2xx_status():
    result = wrk.parse("GET /x", 16, WRK_OUTPUT)

    assert (result.scenario, result.clients, result.requests) == ("GET /x", 16, 4000)
    assert result.seconds == 20.0
    assert result.latency_ms == {"p50": 4.0, "p90": 9.5, "p99": 31.25, "max": 80.0, "mean": 5.0125}
    assert result.statuses == {"503": 3, "304": 5}
    # wrk counts only statuses above 399; the script counts every non-2xx answer.
    assert result.errors["status"] == 8
    assert result.ok == 3992
    assert result.rps == pytest.approx(199.6)
    assert result.error_count == 11
    assert result.error_text() == "11 (read 1, timeout 2, 304 5, 503 3)"


def test_parse_without_the_result_line_says_what_wrk_printed():
    with pytest.raises(ValueError, match="unable to connect"):
        wrk.parse("GET /x", 1, "unable to connect to 127.0.0.1:1 Connection refused\n")


def test_a_run_without_answers_has_no_latencies():
    output = (
        'BENCH_RESULT {"requests": 0, "duration_us": 10000000, "bytes": 0, "errors": '
        '{"connect": 16, "read": 0, "write": 0, "timeout": 0, "status": 0}, "statuses": {}, '
        '"latency_us": {"p50": 0, "p90": 0, "p99": 0, "max": 0, "mean": 0.0}}'
    )
    result = wrk.parse("GET /x", 16, output)

    assert result.latency_ms == {}
    assert result.rps == 0.0
    assert result.error_text() == "16 (connect 16)"
    assert "16 (connect 16)" in report.table([result])


def test_table_aligns_one_row_per_result():
    fast = wrk.parse("GET /healthz", 16, WRK_OUTPUT)
    fast.platform_cpu_s = 7.984
    clean = wrk.Result(
        "GET /v1/products/{id} cached", 1, 300, 10.0, latency_ms={"p50": 3.2, "p99": 9.87}
    )

    lines = report.table([fast, clean]).splitlines()

    assert lines[0].split() == [
        "scenario", "clients", "req/s", "p50", "ms", "p99", "ms", "CPU", "ms/req", "errors",
    ]  # fmt: skip
    assert set(lines[1]) <= {"-", " "}
    # 7.984 s of the platform's CPU over 3992 good answers: 2 ms each.
    assert lines[2].split()[:7] == ["GET", "/healthz", "16", "199.6", "4.0", "31.2", "2.0"]
    assert lines[3].split() == [
        "GET", "/v1/products/{id}", "cached", "1", "30.0", "3.2", "9.9", "-", "0",
    ]  # fmt: skip
    # Numbers are right-aligned: the req/s column ends at the same place on every line.
    ends = {
        line.index(value) + len(value)
        for line, value in zip(lines[2:], ("199.6", "30.0"), strict=True)
    }
    assert len(ends) == 1


def test_saga_figures_count_placed_and_confirmed_per_second():
    first = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    figures = sagas.summarise(
        {"confirmed": 90, "rejected": 10},
        seconds=10.0,
        first=first,
        last=first + timedelta(seconds=12),
        p50=timedelta(milliseconds=250),
        p99=timedelta(seconds=1.5),
    )

    assert figures == {
        "placed": 100,
        "statuses": {"confirmed": 90, "rejected": 10},
        "placed_per_s": 10.0,
        "confirmed": 90,
        "confirmed_per_s": 7.5,
        "p50_ms": 250.0,
        "p99_ms": 1500.0,
    }
    row = {**figures, "scenario": "sustained", "drained": False, "cpu_ms_per_order": 41.25}
    assert report.sagas_table([row]).splitlines()[-1].split() == [
        "sustained", "100", "10.0", "7.5", "250", "1500", "41.2",
        "confirmed", "90,", "rejected", "10", "(still", "open", "at", "the", "deadline)",
    ]  # fmt: skip


def test_no_confirmation_gives_no_rate_rather_than_a_division_by_zero():
    figures = sagas.summarise({"rejected": 3}, seconds=5.0)

    assert figures["confirmed_per_s"] is None
    assert "-" in report.sagas_table([{**figures, "scenario": "s"}]).splitlines()[-1].split()


def test_rest_table_and_document_total_every_process():
    rest = {
        "seconds": 30.0,
        "processes": [
            {"name": "orders", "pid": 11, "cpu_percent": 0.5, "rss_mb": 80.0},
            {"name": "gateway", "pid": 12, "cpu_percent": 0.1, "rss_mb": 60.0},
            {"name": "gateway worker", "pid": 13, "cpu_percent": 0.25, "rss_mb": 90.5},
        ],
    }

    lines = report.rest_table(rest).splitlines()
    assert [line.split()[0] for line in lines[2:5]] == ["gateway", "gateway", "orders"]
    assert lines[-1].split() == ["total", "(3", "processes)", "0.85", "230.5"]

    result = wrk.Result("GET /healthz", 1, 10, 1.0)
    started = datetime(2026, 12, 1, tzinfo=UTC)
    document = report.document([result], [], rest, "2 cores", started)
    assert document["at_rest"]["total"] == {"cpu_percent": 0.85, "rss_mb": 230.5, "processes": 3}
    assert document["scenarios"][0]["rps"] == 10.0
    assert document["scenarios"][0]["cpu_ms_per_request"] is None
    assert document["started"] == "2026-12-01T00:00:00+00:00"
    assert report.document([], [], None, "2 cores", started)["at_rest"] is None
