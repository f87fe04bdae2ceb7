"""A headless Chromium for the storefront's browser tests: Debian's own package.

The end-to-end tests drive the app with playwright-core (npm), which ships no
browser and downloads none: it launches the system Chromium, the one Debian
keeps patched. ``ensure_chromium()`` finds it or installs Debian's ``chromium``
package (as ``agora.prometheus.ensure_prometheus`` does for Prometheus), and
``LAUNCH_ARGS`` are the flags it runs with in a container or on CI: no sandbox
(there are no user namespaces as root in a container), no GPU, and no
background traffic to Google that a test run has no use for.
"""

import os
import shutil
import subprocess

PACKAGE = "chromium"
# Debian's binary first; other distributions' names after it.
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
LAUNCH_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
)


class ChromiumUnavailable(RuntimeError):
    """Chromium is not installed and could not be installed."""


def find_chromium():
    """The path of a Chromium executable, or None."""
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def ensure_chromium(run=subprocess.run):
    """The Chromium executable's path, installing Debian's package when missing.

    Raises ChromiumUnavailable, saying what to do, when there is no apt-get, no
    root, or apt fails."""
    found = find_chromium()
    if found:
        return found
    hint = f"install Debian's {PACKAGE} package: apt-get install -y {PACKAGE}"
    if not shutil.which("apt-get"):
        raise ChromiumUnavailable(f"chromium is not on the PATH; {hint}")
    if os.geteuid() != 0:
        raise ChromiumUnavailable(f"chromium is missing and installing it needs root; {hint}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        # Another apt (a parallel test run) holds the lock: wait for it.
        "-o",
        "DPkg::Lock::Timeout=300",
        PACKAGE,
    ]
    result = run(install, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        # A fresh machine has no package lists yet, or they are out of date
        # (a security update replaced the version they name).
        run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, check=False)
        result = run(install, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
        raise ChromiumUnavailable(f"apt-get could not install {PACKAGE}:\n{tail}")
    found = find_chromium()
    if not found:
        raise ChromiumUnavailable(f"{PACKAGE} installed, yet no chromium is on the PATH")
    return found
