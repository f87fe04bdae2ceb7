"""``agora trace <trace_id>``: every log line of one trace, across every process.

Reads the files `agora run` writes (``<state dir>/logs/<process>.log`` and their
rotated copies ``<process>.log.1``...), keeps the JSON lines whose ``trace_id``
is the one asked for, and prints them in time order (time, process, level,
message; a traceback indented below its line), then the trace's Zipkin link.
"""

import json
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_LOG_FILE = re.compile(r"^(?P<process>.+)\.log(\.(?P<generation>[0-9]+))?$")
TRACE_ID = re.compile(r"^([0-9a-f]{16}|[0-9a-f]{32})$")


def log_files(folder):
    """``[(process, path)]``: every current and rotated log file under ``folder``,
    oldest generation first (``orders.log.2``, ``orders.log.1``, ``orders.log``)."""
    found = []
    for path in Path(folder).glob("*.log*"):
        match = _LOG_FILE.match(path.name)
        if match and path.is_file():
            generation = int(match.group("generation") or 0)
            found.append((match.group("process"), -generation, path))
    return [(process, path) for process, _generation, path in sorted(found)]


def trace_lines(folder, trace_id):
    """The parsed JSON lines of ``trace_id`` in every log file under ``folder``,
    in time order, each with ``process`` (its file's process name) added.

    Lines that are not JSON objects (a crash's raw output) are skipped."""
    trace_id = trace_id.lower()
    lines = []
    for process, path in log_files(folder):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for text in fh:
                # Cheap test first: most lines belong to other traces.
                if trace_id not in text:
                    continue
                try:
                    entry = json.loads(text)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("trace_id") == trace_id:
                    lines.append({**entry, "process": process})
    # ts is ISO 8601 UTC with milliseconds: text order is time order. The sort is
    # stable, so lines of one millisecond keep their order within a file.
    return sorted(lines, key=lambda entry: str(entry.get("ts", "")))


def format_line(entry):
    """``06:04:15.286  orders      INFO   rpc orders.place_order ok 12.3 ms``."""
    ts = str(entry.get("ts", ""))
    clock = ts[11:23] if len(ts) >= 23 else ts
    text = (
        f"{clock:12}  {entry['process']:<16} {entry.get('level', ''):<7} {entry.get('message', '')}"
    )
    exception = entry.get("exception")
    if exception:
        text += "\n" + "\n".join(f"    {line}" for line in str(exception).splitlines())
    return text


def zipkin_ui_url(zipkin_url, trace_id):
    """The Zipkin UI page of ``trace_id``, from the collector's span endpoint
    (``http://host:9411/api/v2/spans`` -> ``http://host:9411/zipkin/traces/<id>``);
    None when no collector is configured."""
    if not zipkin_url:
        return None
    parts = urlsplit(zipkin_url)
    base = parts.path.split("/api/", 1)[0].rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, f"{base}/zipkin/traces/{trace_id}", "", ""))


def report(folder, trace_id, zipkin_url):
    """The lines ``agora trace`` prints, and how many log lines were found."""
    lines = trace_lines(folder, trace_id)
    out = []
    if lines:
        first, last = lines[0].get("ts", "?"), lines[-1].get("ts", "?")
        processes = sorted({entry["process"] for entry in lines})
        out.append(
            f"trace {trace_id}: {len(lines)} line(s) from {', '.join(processes)}, {first} to {last}"
        )
        out.extend(format_line(entry) for entry in lines)
    else:
        out.append(f"trace {trace_id}: no log line in {folder}")
    link = zipkin_ui_url(zipkin_url, trace_id)
    if link:
        out.append(f"spans: {link}")
    else:
        out.append("spans: no Zipkin collector configured (tracing.zipkin_url is empty)")
    return out, len(lines)
