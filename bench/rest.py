"""The platform at rest: CPU (utime + stime) and resident memory of its processes,
read from /proc (Linux)."""

import os
import time

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid):
    """/proc/<pid>/stat after the command name (which may hold spaces): field 3 on."""
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def _cpu_seconds(pid):
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _rss_mb(pid):
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE / 2**20


def _children_by_parent():
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents.setdefault(int(_stat_fields(entry)[1]), []).append(int(entry))
            except OSError:  # gone meanwhile
                pass
    return parents


def processes(children):
    """PID -> name of every live process of the platform: ``children`` maps a name to
    a started process (agora.supervisor.Child); its descendants (the gateway's gunicorn
    workers) are named ``<name> worker``."""
    parents = _children_by_parent()
    named = {}
    for name, child in children.items():
        if not child.alive():
            continue
        named[child.pid] = name
        todo = [child.pid]
        while todo:
            for pid in parents.get(todo.pop(), []):
                named[pid] = f"{name} worker"
                todo.append(pid)
    return named


def cpu_times(named):
    """utime + stime in seconds of each live process in ``named`` (PID -> name)."""
    times = {}
    for pid in named:
        try:
            times[pid] = _cpu_seconds(pid)
        except OSError:  # gone
            pass
    return times


def cpu_spent(before, after):
    """CPU seconds spent between two :func:`cpu_times` readings, by the processes
    alive at both."""
    return sum(after[pid] - before[pid] for pid in after if pid in before)


def process_kind(name):
    """``orders-2`` -> ``orders``, ``gateway worker`` -> ``gateway``."""
    base = name.split()[0]
    stem, _, number = base.rpartition("-")
    return stem if stem and number.isdigit() else base


def cpu_spent_by_name(named, before, after):
    """:func:`cpu_spent` split by process name, instances and workers summed under
    their kind (``orders-2`` and ``orders`` as ``orders``, ``gateway worker`` as
    ``gateway``)."""
    spent = {}
    for pid in after:
        if pid in before:
            kind = process_kind(named[pid])
            spent[kind] = spent.get(kind, 0.0) + after[pid] - before[pid]
    return spent


def sample(named, seconds):
    """CPU of each process in ``named`` (PID -> name) over ``seconds``, as % of one
    core, and its resident memory at the end; a process gone meanwhile is left out."""
    before = cpu_times(named)
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    after = cpu_times(named)
    usage = []
    for pid, cpu in before.items():
        try:
            rss = _rss_mb(pid)
        except OSError:
            continue
        if pid not in after:
            continue
        usage.append(
            {
                "name": named[pid],
                "pid": pid,
                "cpu_percent": round(100.0 * (after[pid] - cpu) / elapsed, 2),
                "rss_mb": round(rss, 1),
            }
        )
    return {"seconds": round(elapsed, 1), "processes": usage}
