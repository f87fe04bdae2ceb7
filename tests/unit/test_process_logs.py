"""`agora run`'s per-process log files (agora.supervisor.ProcessLog, rotated) and
`agora trace` reading them back (agora.trace): no broker needed."""

import io
import json
import subprocess
import sys

import pytest

from agora.supervisor import ProcessLog, ProcessSpec, Supervisor
from agora.trace import format_line, log_files, report, trace_lines, zipkin_ui_url

pytestmark = pytest.mark.unit

TRACE = "463ac35c9f6413ad48485a3953bb6124"
OTHER = "0123456789abcdef0123456789abcdef"


def entry(ts, message, trace_id=TRACE, level="INFO", **extra):
    return json.dumps({"ts": ts, "level": level, "message": message, "trace_id": trace_id, **extra})


def test_a_process_log_copies_each_line_to_the_console_and_rotates_by_size(tmp_path):
    console = io.StringIO()
    log = ProcessLog(tmp_path / "orders.log", max_bytes=400, backups=2, console=console)
    lines = [entry(f"2026-12-02T06:00:{n:02d}.000Z", f"line {n}") for n in range(30)]
    for line in lines:
        log.write(line)
    log.close()
    assert console.getvalue().splitlines() == lines
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["orders.log", "orders.log.1", "orders.log.2"]
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= 400
    # The newest lines survive rotation, in order, across the three files.
    files = [path for _process, path in log_files(tmp_path)]
    kept = [line for path in files for line in path.read_text().splitlines()]
    assert len(kept) >= 6  # about 120 bytes a line: three or so per file
    assert kept == lines[-len(kept) :]


def test_a_console_that_went_away_does_not_stop_the_file(tmp_path):
    console = io.StringIO()
    log = ProcessLog(tmp_path / "users.log", max_bytes=10_000, backups=1, console=console)
    log.write("before")
    console.close()  # writing to it now raises ValueError, as a closed pipe raises OSError
    log.write("after")
    log.close()
    assert (tmp_path / "users.log").read_text().splitlines() == ["before", "after"]


def test_trace_lines_come_from_every_process_and_rotated_file_in_time_order(tmp_path):
    (tmp_path / "orders.log.1").write_text(
        entry("2026-12-02T06:00:01.000Z", "rpc orders.place_order ok 9.0 ms") + "\n"
    )
    (tmp_path / "orders.log").write_text(
        entry("2026-12-02T06:00:03.000Z", "event orders.on_payment_succeeded ok") + "\n"
    )
    (tmp_path / "gateway.log").write_text(
        "\n".join(
            [
                entry("2026-12-02T06:00:00.500Z", "POST /v1/orders 202 20.0 ms"),
                "Traceback (most recent call last): not JSON, skipped " + TRACE,
                entry("2026-12-02T06:00:00.600Z", "another request", trace_id=OTHER),
            ]
        )
        + "\n"
    )
    (tmp_path / "billing.log").write_text(
        entry(
            "2026-12-02T06:00:02.000Z",
            "charge failed",
            level="ERROR",
            exception="Traceback (most recent call last):\nValueError: boom",
        )
        + "\n"
    )
    (tmp_path / "notes.txt").write_text(entry("2026-12-02T06:00:00.000Z", "not a log file"))

    found = trace_lines(tmp_path, TRACE.upper())
    assert [(e["process"], e["message"][:12]) for e in found] == [
        ("gateway", "POST /v1/ord"),
        ("orders", "rpc orders.p"),
        ("billing", "charge faile"),
        ("orders", "event orders"),
    ]
    assert format_line(found[2]) == (
        "06:00:02.000  billing          ERROR   charge failed\n"
        "    Traceback (most recent call last):\n"
        "    ValueError: boom"
    )


def test_the_zipkin_ui_link_is_derived_from_the_collector_url():
    assert (
        zipkin_ui_url("http://127.0.0.1:9411/api/v2/spans", TRACE)
        == f"http://127.0.0.1:9411/zipkin/traces/{TRACE}"
    )
    assert (
        zipkin_ui_url("https://tracing.example/zipkin-proxy/api/v2/spans", TRACE)
        == f"https://tracing.example/zipkin-proxy/zipkin/traces/{TRACE}"
    )
    assert zipkin_ui_url("", TRACE) is None


def test_the_report_says_when_a_trace_has_no_line(tmp_path):
    lines, found = report(tmp_path, TRACE, "http://127.0.0.1:9411/api/v2/spans")
    assert found == 0
    assert lines == [
        f"trace {TRACE}: no log line in {tmp_path}",
        f"spans: http://127.0.0.1:9411/zipkin/traces/{TRACE}",
    ]


def test_the_supervisor_tees_each_childs_output_to_its_file(tmp_path, capsys):
    supervisor = Supervisor(log_dir=tmp_path / "logs", log_max_bytes=10_000, log_backups=1)
    script = "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"
    child = supervisor.start(ProcessSpec("echo-1", [sys.executable, "-c", script]))
    child.process.wait(10)
    child.drain()
    supervisor.stop_all()
    written = (tmp_path / "logs" / "echo-1.log").read_text().splitlines()
    assert sorted(written) == ["to stderr", "to stdout"]
    assert sorted(capsys.readouterr().err.splitlines()) == ["to stderr", "to stdout"]


def test_agora_trace_refuses_what_is_not_a_trace_id():
    result = subprocess.run(
        [sys.executable, "-m", "agora", "trace", "not-a-trace"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "is not a trace id" in result.stderr
    assert "Traceback" not in result.stderr
