"""The web storefront (``web/``): its npm packages and its build.

``ensure_packages()`` runs ``npm ci`` (from the lockfile, nothing else) when
``web/node_modules`` is missing or was installed from another lockfile;
``build()`` runs ``npm run build`` (Vite, into ``web/dist``) when the sources
changed since the last build. Both record a hash of their inputs, not file
times, so a fresh clone (whose files all have the clone's time) builds once and
an unchanged tree never rebuilds. A file lock serialises them, so ``make run``
and a test run started together do not install or build over each other.

``agora run`` builds before it starts the gateway, which serves ``web/dist`` at
``/``; the tests that need the app call ``build()`` too.
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
from contextlib import contextmanager

from services.chassis.config import ROOT

WEB = ROOT / "web"
DIST = WEB / "dist"
NODE_MODULES = WEB / "node_modules"
PACKAGES_STAMP = NODE_MODULES / ".agora-lock-hash"
BUILD_STAMP = DIST / ".agora-build-hash"
LOCK = WEB / ".agora-build.lock"
# What a build reads: a change to any of these makes the built app stale.
BUILD_INPUTS = ("index.html", "package.json", "package-lock.json", "src", "public")
BUILD_INPUT_GLOBS = ("vite.config.*", "tsconfig*.json")


class WebBuildError(RuntimeError):
    """npm is missing, or ``npm ci`` or the build failed (its output's tail)."""


# What Vite 7 runs on (web/package.json "engines"); Debian 12's own nodejs is 18.
NODE_MINIMUM = (20, 19)
_INSTALL_NODE = (
    "install Node.js 20.19 or newer with its npm (Debian 12's nodejs is too old: "
    "https://nodejs.org or the NodeSource packages)"
)


def node_version(run=subprocess.run):
    """``(major, minor)`` of the ``node`` on the PATH, or None."""
    node = shutil.which("node")
    if node is None:
        return None
    result = run([node, "--version"], capture_output=True, text=True, check=False)
    numbers = result.stdout.strip().lstrip("v").split(".")
    try:
        return int(numbers[0]), int(numbers[1])
    except (IndexError, ValueError):
        return None


def _npm():
    npm = shutil.which("npm")
    if npm is None:
        raise WebBuildError(f"npm is not on the PATH: {_INSTALL_NODE}")
    version = node_version()
    if version is None or version < NODE_MINIMUM:
        found = "no node on the PATH" if version is None else f"node {version[0]}.{version[1]}"
        raise WebBuildError(
            f"the storefront's build needs Node.js 20.19+, found {found}: {_INSTALL_NODE}"
        )
    return npm


def npm():
    """The npm executable (for `agora web-dev`); WebBuildError saying how to get it."""
    return _npm()


@contextmanager
def _locked():
    WEB.mkdir(exist_ok=True)
    with open(LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _hash_files(paths):
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(WEB)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _build_inputs():
    files = []
    for name in BUILD_INPUTS:
        path = WEB / name
        if path.is_dir():
            files.extend(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files.append(path)
    for pattern in BUILD_INPUT_GLOBS:
        files.extend(p for p in WEB.glob(pattern) if p.is_file())
    return files


def _read(stamp):
    try:
        return stamp.read_text().strip()
    except FileNotFoundError:
        return None


def _run(argv, what):
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
    result = subprocess.run(argv, cwd=WEB, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise WebBuildError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result


def packages_current():
    """Whether ``web/node_modules`` was installed from today's lockfile."""
    return _read(PACKAGES_STAMP) == _hash_files([WEB / "package-lock.json"])


def ensure_packages():
    """``npm ci`` unless node_modules already matches the lockfile."""
    with _locked():
        if packages_current():
            return False
        _run([_npm(), "ci", "--no-audit", "--loglevel=error"], "npm ci")
        # No dependencies at all leaves no node_modules: the stamp still says so.
        NODE_MODULES.mkdir(exist_ok=True)
        PACKAGES_STAMP.write_text(_hash_files([WEB / "package-lock.json"]) + "\n")
        return True


def is_stale():
    """Whether ``web/dist`` is missing or was built from other sources."""
    return _read(BUILD_STAMP) != _hash_files(_build_inputs())


def build(force=False):
    """Build the app into ``web/dist`` when it is stale (or ``force``); the dist path."""
    ensure_packages()
    with _locked():
        if force or is_stale():
            inputs = _hash_files(_build_inputs())
            _run([_npm(), "run", "build", "--silent"], "npm run build")
            DIST.mkdir(exist_ok=True)
            BUILD_STAMP.write_text(inputs + "\n")
    return DIST
