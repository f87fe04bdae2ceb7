"""A headless Chromium for the storefront's browser tests: Debian's own package.

The end-to-end tests drive the app with playwright-core (npm), which ships no
browser and downloads none: it launches the system Chromium, the one Debian
keeps patched. ``ensure_chromium()`` finds it or installs Debian's ``chromium``
package (as ``agora.prometheus.ensure_prometheus`` does for Prometheus), and
``LAUNCH_ARGS`` are the flags it runs with in a container or on CI: no sandbox
(there are no user namespaces as root in a container), no GPU, and no
background traffic to Google that a test run has no use for.
"""

import shutil
import subprocess

from agora.apt import apt_install

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
    apt_install(PACKAGE, ChromiumUnavailable, "chromium is", run)
    found = find_chromium()
    if not found:
        raise ChromiumUnavailable(f"{PACKAGE} installed, yet no chromium is on the PATH")
    return found
