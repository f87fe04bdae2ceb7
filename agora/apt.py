"""Debian packages the platform's tools need (Prometheus, Chromium), installed
when they are missing: ``apt_install(package, error)``.

Noninteractive, without recommended packages, waiting for another apt (a
parallel test run) that holds the lock, and once more after ``apt-get update``
when the first try fails: a fresh machine has no package lists yet, or they are
out of date (a security update replaced the version they name). Every way it
can fail raises the caller's ``error`` with one message saying what to do.
"""

import os
import shutil
import subprocess


def apt_install(package, error, missing, run=subprocess.run):
    """Install Debian's ``package``; raise ``error`` when there is no apt-get, no
    root, or apt fails. ``missing`` starts the message when apt-get is absent
    ("chromium is", "prometheus and promtool are")."""
    hint = f"install Debian's {package} package: apt-get install -y {package}"
    if not shutil.which("apt-get"):
        raise error(f"{missing} not on the PATH; {hint}")
    if os.geteuid() != 0:
        raise error(f"{package} is missing and installing it needs root; {hint}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=300",
        package,
    ]
    result = run(install, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, check=False)
        result = run(install, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
        raise error(f"apt-get could not install {package}:\n{tail}")
