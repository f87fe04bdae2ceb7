"""wrk as the load generator: run one scenario, parse its result, format the table.

bench/wrk.lua makes every request (paths, tokens, bodies, idempotency keys, pacing)
and prints one ``BENCH_RESULT {json}`` line when done; this module turns that into
a :class:`Result`. Standalone harnesses (the peer comparison) use it the same way.
"""

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk.lua")
MARKER = "BENCH_RESULT "
SOCKET_ERRORS = ("connect", "read", "write", "timeout")


class WrkMissing(RuntimeError):
    pass


def _apt_install_wrk():
    """`apt-get install -y wrk` as root, after `apt-get update` when the package
    lists do not have it yet."""
    apt = shutil.which("apt-get")
    if not apt or os.geteuid() != 0:
        return
    if subprocess.run([apt, "install", "-y", "wrk"], check=False).returncode != 0:
        subprocess.run([apt, "update"], check=False)
        subprocess.run([apt, "install", "-y", "wrk"], check=False)


def ensure_wrk():
    """The wrk binary; installs the distribution's package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("bench: wrk is not installed; trying `apt-get install -y wrk`", flush=True)
    _apt_install_wrk()
    found = shutil.which("wrk")
    if not found:
        raise WrkMissing(
            "bench: wrk is needed and could not be installed here (not root, or no "
            "apt-get); install it (Debian/Ubuntu: `sudo apt-get install wrk`, macOS: "
            "`brew install wrk`) and run `make bench` again"
        )
    return found


@dataclass
class Result:
    scenario: str
    clients: int
    requests: int
    seconds: float
    errors: dict = field(default_factory=dict)  # connect/read/write/timeout/status counts
    statuses: dict = field(default_factory=dict)  # non-2xx answers by status code
    latency_ms: dict = field(default_factory=dict)  # p50, p90, p99, max, mean
    # CPU seconds the platform's own processes spent over the run (not the brokers'
    # nor wrk's): per request, a figure that the machine's other load moves far less
    # than req/s.
    platform_cpu_s: float | None = None
    # The same split by process kind (gateway, orders, ...): where the CPU went.
    cpu_by_process_s: dict = field(default_factory=dict)

    @property
    def ok(self):
        """Answers with a 2xx status."""
        return self.requests - sum(self.statuses.values())

    @property
    def rps(self):
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self):
        if self.platform_cpu_s is None or not self.ok:
            return None
        return 1000.0 * self.platform_cpu_s / self.ok

    @property
    def error_count(self):
        return sum(self.errors.get(kind, 0) for kind in SOCKET_ERRORS) + sum(self.statuses.values())

    def cpu_ms_per_request_by_process(self):
        """``{process kind: CPU ms per good answer}``."""
        if not self.ok:
            return {}
        return {name: 1000.0 * spent / self.ok for name, spent in self.cpu_by_process_s.items()}

    def error_text(self):
        """``0``, or the count and its kinds: ``12 (timeout 2, 503 10)``."""
        kinds = [(kind, self.errors.get(kind, 0)) for kind in SOCKET_ERRORS]
        kinds += sorted(self.statuses.items())
        shown = ", ".join(f"{kind} {count}" for kind, count in kinds if count)
        return f"{self.error_count} ({shown})" if shown else "0"

    def as_dict(self):
        cpu = self.cpu_ms_per_request
        return {
            **asdict(self),
            "rps": round(self.rps, 1),
            "error_count": self.error_count,
            "cpu_ms_per_request": None if cpu is None else round(cpu, 2),
            "cpu_ms_per_request_by_process": {
                name: round(ms, 2) for name, ms in self.cpu_ms_per_request_by_process().items()
            },
        }


def parse(scenario, clients, output):
    """The :class:`Result` in wrk's ``output`` (stdout with the BENCH_RESULT line)."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise ValueError(f"no {MARKER.strip()} line in wrk's output:\n{output[-2000:]}")
    latency = {key: value / 1000.0 for key, value in data["latency_us"].items()}
    errors = dict(data["errors"])
    # A status below 200 or above 299 is an error here; wrk's own "status" count is
    # only those above 399, so it is replaced by the script's full count.
    statuses = {str(code): count for code, count in data["statuses"].items()}
    errors["status"] = sum(statuses.values())
    return Result(
        scenario=scenario,
        clients=clients,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        statuses=statuses,
        latency_ms=latency if data["requests"] else {},
    )


def run(
    scenario,
    base_url,
    paths,
    clients,
    seconds,
    *,
    method="GET",
    body=None,
    tokens=(),
    idempotency=False,
    rate=None,
    threads=None,
    timeout=10,
):
    """``clients`` connections for ``seconds`` against ``base_url``, each request the next
    of ``paths`` (and of ``tokens``); ``rate`` paces the whole run at that many requests
    per second (on one wrk thread) instead of a closed loop."""
    if threads is None:
        threads = 1 if rate else max(1, min(clients, os.cpu_count() or 1))
    env = {
        **os.environ,
        "BENCH_PATHS": " ".join(paths),
        "BENCH_METHOD": method,
        "BENCH_TOKENS": " ".join(tokens),
        "BENCH_IDEMPOTENCY": "1" if idempotency else "0",
    }
    for name in ("BENCH_BODY", "BENCH_RATE"):
        env.pop(name, None)
    if body is not None:
        env["BENCH_BODY"] = json.dumps(body)
    if rate:
        env["BENCH_RATE"] = str(rate / threads)
    argv = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{clients}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout}s",
        "--latency",
        "-s",
        str(SCRIPT),
        base_url,
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse(scenario, clients, done.stdout)
