"""The bench's tables (text) and its JSON document: pure formatting."""

import math


def _number(value, digits=1):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _columns(header, rows):
    """Rows of strings as aligned text: the first column left-aligned, the last as it
    is, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row):
        middle = zip(row[1:-1], widths[1:-1], strict=True)
        cells = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in middle)]
        return "  ".join([*cells, row[-1]]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def table(results):
    """wrk results (bench.wrk.Result): scenario, clients, req/s, p50, p99, the
    platform's CPU per request, errors."""
    header = ("scenario", "clients", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "errors")
    rows = [
        (
            r.scenario,
            str(r.clients),
            _number(r.rps),
            _number(r.latency_ms.get("p50")),
            _number(r.latency_ms.get("p99")),
            _number(r.cpu_ms_per_request),
            r.error_text(),
        )
        for r in results
    ]
    return _columns(header, rows)


def cpu_split_table(results):
    """CPU ms per good answer by process kind, for the runs with more than one client:
    where each path's cost lies."""
    runs = [r for r in results if r.clients > 1 and r.cpu_by_process_s]
    kinds = sorted({kind for r in runs for kind in r.cpu_by_process_s})
    if not runs:
        return ""
    header = ("scenario, CPU ms/req", *kinds, "")
    rows = []
    for r in runs:
        split = r.cpu_ms_per_request_by_process()
        rows.append((r.scenario, *(_number(split.get(kind), 2) for kind in kinds), ""))
    return _columns(header, rows)


def sagas_table(rows):
    """Saga figures (bench.sagas.figures plus scenario, drained, cpu_ms_per_order)."""
    header = (
        "sagas",
        "placed",
        "placed/s",
        "confirmed/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/order",
        "statuses",
    )
    lines = [
        (
            row["scenario"],
            str(row["placed"]),
            _number(row["placed_per_s"]),
            _number(row["confirmed_per_s"]),
            _number(row["p50_ms"], 0),
            _number(row["p99_ms"], 0),
            _number(row.get("cpu_ms_per_order")),
            ", ".join(f"{status} {count}" for status, count in row["statuses"].items())
            + ("" if row.get("drained", True) else " (still open at the deadline)"),
        )
        for row in rows
    ]
    return _columns(header, lines)


def rest_totals(rest):
    processes = rest["processes"]
    return {
        "cpu_percent": round(sum(p["cpu_percent"] for p in processes), 2),
        "rss_mb": round(sum(p["rss_mb"] for p in processes), 1),
        "processes": len(processes),
    }


def rest_table(rest):
    """The platform at rest (bench.rest.sample): % of one core and RSS per process."""
    rows = [
        (p["name"], str(p["pid"]), _number(p["cpu_percent"], 2), _number(p["rss_mb"]), "")
        for p in sorted(rest["processes"], key=lambda p: p["name"])
    ]
    totals = rest_totals(rest)
    rows.append(
        (
            f"total ({totals['processes']} processes)",
            "",
            _number(totals["cpu_percent"], 2),
            _number(totals["rss_mb"]),
            "",
        )
    )
    header = (f"at rest, {rest['seconds']:g} s", "pid", "% of a core", "RSS MB", "")
    return _columns(header, rows)


def document(results, sagas, rest, machine, started):
    """Everything measured, for BENCH_JSON."""
    return {
        "started": started.isoformat(),
        "machine": machine,
        "scenarios": [result.as_dict() for result in results],
        "sagas": sagas,
        "at_rest": {**rest, "total": rest_totals(rest)} if rest else None,
    }
