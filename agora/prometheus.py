"""A local Prometheus server: its binaries, its folder, its command line.

``ensure_prometheus()`` finds ``prometheus`` and ``promtool`` on the PATH or
installs Debian's ``prometheus`` package (which brings both) when they are
missing. ``prepare(folder)`` copies config/prometheus (the config and its rules)
into ``folder``, beside the ``targets/`` that ``agora run`` keeps up to date,
and ``server_argv`` is the command that serves it. ``agora prometheus`` and the
tests use these; compose runs the same config in its own container.
"""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agora.apt import apt_install
from services.chassis.config import ROOT

CONFIG = ROOT / "config" / "prometheus"
PACKAGE = "prometheus"
# The Debian package's own service (an init script here: there is no systemd).
PACKAGE_SERVICE = Path("/etc/init.d/prometheus")


class PrometheusUnavailable(RuntimeError):
    """Prometheus is not installed and could not be installed."""


@dataclass(frozen=True)
class Binaries:
    prometheus: str
    promtool: str


def find_binaries():
    """``Binaries`` from the PATH, or None when either one is missing."""
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus and promtool:
        return Binaries(prometheus, promtool)
    return None


def ensure_prometheus(run=subprocess.run):
    """``Binaries``, installing Debian's package first when they are missing.

    Raises PrometheusUnavailable, saying what to do, when there is no apt-get,
    no root, or apt fails. The package's own service is left stopped: the
    platform's Prometheus is the one ``agora prometheus`` starts."""
    found = find_binaries()
    if found:
        return found
    apt_install(PACKAGE, PrometheusUnavailable, "prometheus and promtool are", run)
    stop_package_service(run)
    found = find_binaries()
    if not found:
        raise PrometheusUnavailable(f"{PACKAGE} installed, yet its binaries are not on PATH")
    return found


def stop_package_service(run=subprocess.run):
    """Stop the package's own server if its installation started one (policy-rc.d
    usually forbids it where there is no init system)."""
    if not PACKAGE_SERVICE.exists():
        return
    status = run([str(PACKAGE_SERVICE), "status"], capture_output=True, check=False)
    if status.returncode == 0:
        run([str(PACKAGE_SERVICE), "stop"], capture_output=True, check=False)


def prepare(folder):
    """Copy the config and its rules into ``folder`` (rules afresh, so a rule file
    removed from the repository goes too) and create ``targets/`` and ``data/``;
    returns the config file's path. The targets there are left alone."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "targets").mkdir(exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    shutil.rmtree(folder / "rules", ignore_errors=True)
    shutil.copytree(CONFIG / "rules", folder / "rules")
    shutil.copy2(CONFIG / "prometheus.yml", folder / "prometheus.yml")
    return folder / "prometheus.yml"


def server_argv(binaries, folder, host, port, retention):
    """The command line of a server reading ``folder`` (see ``prepare``)."""
    folder = Path(folder)
    return [
        binaries.prometheus,
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address={host}:{port}",
    ]
