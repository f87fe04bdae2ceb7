"""The platform processes started one by one, as `agora run` does: for end-to-end
tests and benchmarks, which also stop and restart single services."""

import os
import socket
import time

from agora.cli import (
    SERVICES,
    gateway_spec,
    instance_names,
    service_spec,
    wait_for_http,
    wait_for_services,
)
from agora.supervisor import Child
from services.chassis.config import ROOT


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Platform:
    """``children`` maps each process's name (``gateway``, ``orders``, or
    ``orders-1``, ``orders-2``... for a service of several instances) to its Child;
    ``start``, ``stop`` and ``kill`` take a service (all its instances) or ``gateway``."""

    def __init__(self, config, env):
        self.config = config
        self.env = env
        self.children = {}
        self.base_url = f"http://127.0.0.1:{config['gateway']['port']}"

    def specs(self, name):
        if name == "gateway":
            return [gateway_spec(self.config, self.env)]
        return [
            service_spec(name, instance, self.env, self.config)
            for instance in instance_names(self.config, name)
        ]

    def start(self, name):
        """Start every instance of ``name`` that is not running; returns them."""
        started = []
        for spec in self.specs(name):
            child = self.children.get(spec.name)
            if child is None or not child.alive():
                self.children[spec.name] = child = Child(spec, cwd=str(ROOT)).start()
                started.append(child)
        return started

    def processes(self, name):
        """The process names of ``name``: ``["gateway"]``, ``["orders-1", "orders-2"]``."""
        return [spec.name for spec in self.specs(name)]

    def _processes(self, name):
        return [self.children[process] for process in self.processes(name)]

    def stop(self, name):
        """SIGTERM every instance of ``name``; returns their exit codes by process name."""
        return {child.spec.name: child.stop() for child in self._processes(name)}

    def kill(self, name):
        """SIGKILL every instance of ``name``: no clean shutdown."""
        for child in self._processes(name):
            child.kill()

    def start_all(self):
        services = [child for name in SERVICES for child in self.start(name)]
        wait_for_services(self.config, SERVICES, children=services, timeout=60)
        [gateway] = self.start("gateway")
        wait_for_http(self.base_url + "/healthz", child=gateway, timeout=60)

    def stop_all(self):
        for child in reversed(list(self.children.values())):
            child.stop()

    def wait_ready(self, timeout=60.0):
        """Until every service answers health() and the gateway's /readyz is 200
        (/readyz alone says only that the gateway reaches RabbitMQ and Redis)."""
        wait_for_services(self.config, SERVICES, timeout=timeout)
        wait_for_http(self.base_url + "/readyz", timeout=timeout)

    def resource_usage(self, interval=60.0):
        """CPU and memory of every running process over ``interval`` (resource_usage)."""
        running = {name: child.pid for name, child in self.children.items() if child.alive()}
        return resource_usage(running, interval)


def platform_env(extra):
    env = {key: value for key, value in os.environ.items() if key.startswith("AGORA_")}
    env.update(extra)
    return env


# --- what the platform costs: CPU and resident memory, read from /proc ---------

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _cpu_seconds(pid):
    """utime + stime of ``pid`` (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        # The command name (field 2) may hold spaces: split after its ")".
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _rss_mb(pid):
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE / 2**20


def _descendants(pid):
    """Every live process below ``pid`` (the gateway's gunicorn workers)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents.setdefault(int(fh.read().rsplit(")", 1)[1].split()[1]), []).append(
                        int(entry)
                    )
            except OSError:  # gone meanwhile
                pass
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def resource_usage(processes, interval=60.0):
    """CPU and memory of running processes and their descendants over ``interval``
    seconds: ``processes`` maps a name to a PID; returns one dict per process
    (``name``, ``pid``, ``cpu_percent`` of one core, ``rss_mb`` at the end), a
    descendant named ``<name>/<pid>``. A process that exits meanwhile is left out."""
    named = {}
    for name, pid in processes.items():
        named[pid] = name
        for child in _descendants(pid):
            named[child] = f"{name}/{child}"
    before = {}
    for pid in named:
        try:
            before[pid] = _cpu_seconds(pid)
        except OSError:
            pass
    started = time.monotonic()
    time.sleep(interval)
    elapsed = time.monotonic() - started
    usage = []
    for pid, cpu in before.items():
        try:
            spent, rss = _cpu_seconds(pid) - cpu, _rss_mb(pid)
        except OSError:
            continue
        usage.append(
            {
                "name": named[pid],
                "pid": pid,
                "cpu_percent": 100.0 * spent / elapsed,
                "rss_mb": rss,
            }
        )
    return usage
