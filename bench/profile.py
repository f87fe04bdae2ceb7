"""BENCH_PROFILE=<folder>: where each scenario's CPU goes, process by process.

During every run with more than one client, py-spy (``pip install py-spy``; it reads
the processes' memory, so it needs ptrace rights: root, or
``kernel.yama.ptrace_scope=0``) samples each platform process at 100 Hz. The raw
stacks go to ``<folder>/<scenario>/<process>-<pid>.txt`` (flame-graph input), and
``summary.txt`` beside them lists, per process, the functions found in the most
samples (inclusive) and the ones running (exclusive), as shares of its samples.
The sampler costs CPU of its own: compare figures of profiled runs only with
each other.
"""

import os
import re
import shutil
import subprocess
from collections import Counter

FOLDER = os.environ.get("BENCH_PROFILE")
RATE = 100
TOP = 25
_IDLE = re.compile(r"\((?:select|poll|epoll|wait|sleep|_recv_into|recv|accept|read)\b|hubs/")


def start(named, scenario, clients, seconds):
    """Start one sampler per process in ``named`` (PID -> name); [] when off."""
    if not FOLDER or clients <= 1:
        return []
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(os.sys.executable), "py-spy")
    if not os.path.exists(spy):
        raise SystemExit("BENCH_PROFILE needs py-spy: .venv/bin/pip install py-spy")
    folder = os.path.join(FOLDER, re.sub(r"[^A-Za-z0-9]+", "_", scenario).strip("_"))
    os.makedirs(folder, exist_ok=True)
    spies = []
    for pid, name in named.items():
        path = os.path.join(folder, f"{name.replace(' ', '_')}-{pid}.txt")
        argv = [
            spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(RATE),
            "--duration",
            str(int(seconds)),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            path,
        ]
        spies.append(
            (
                name,
                path,
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            )
        )
    return [(folder, spies)]


def finish(started):
    for folder, spies in started:
        lines = []
        for name, path, process in spies:
            process.wait()
            if os.path.exists(path):
                lines.append(summarize(name, path))
        with open(os.path.join(folder, "summary.txt"), "w") as fh:
            fh.write("\n".join(lines))


def summarize(name, path):
    """Top inclusive and exclusive functions of one raw py-spy file, busy samples only."""
    inclusive, exclusive, busy = Counter(), Counter(), 0
    with open(path) as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = stack.split(";")
            if _IDLE.search(frames[-1]):
                continue  # waiting (py-spy counts a greened wait as running)
            n = int(count)
            busy += n
            exclusive[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
    out = [f"== {name} ({busy} busy samples at {RATE} Hz)"]
    for title, counter in (("inclusive", inclusive), ("exclusive", exclusive)):
        out.append(f"  {title}:")
        for frame, n in counter.most_common(TOP):
            out.append(f"    {100.0 * n / max(busy, 1):5.1f}%  {frame}")
    return "\n".join(out) + "\n"
