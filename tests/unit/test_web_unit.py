"""The storefront's own unit tests (Vitest, web/src/**/*.test.ts): PKCE, the
token refresh, retries with backoff, the cart, the error messages.

Installs web/node_modules from the lockfile when needed (agora.web), then runs
``npm test`` (``vitest run``); a failure shows the tail of Vitest's output.
"""

import os
import shutil
import subprocess

import pytest

from agora import web

pytestmark = pytest.mark.unit


def test_vitest_suite_passes():
    if shutil.which("npm") is None:
        pytest.fail("npm is not on the PATH: install Node.js 20 or newer (Debian: nodejs, npm)")
    web.ensure_packages()
    env = {**os.environ, "CI": "true", "NO_COLOR": "1", "FORCE_COLOR": "0"}
    result = subprocess.run(
        ["npm", "test", "--silent"],
        cwd=web.WEB,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    tail = "\n".join(output.splitlines()[-60:])
    assert result.returncode == 0, f"vitest failed (exit {result.returncode}):\n{tail}"
    # Vitest's summary line, e.g. "Tests  42 passed (42)": something ran.
    assert " passed" in output, f"vitest ran no test:\n{tail}"
