"""The storefront in a real browser: Debian's Chromium, driven by the Playwright
scripts in web/e2e (playwright-core, Node's own test runner), against a real
platform serving the built app.

One test per scenario file, so a failure names its scenario; each builds what
it needs (the app, Chromium, the platform with its demo data) through the
module's fixtures and passes alone. The scripts write screenshots to
.agora/screenshots/ and the accessibility results to .agora/e2e/axe.json (both
git-ignored) for review.
"""

import os
import re
import shutil
import signal
import subprocess
import sys

import eventlet
import pytest

from agora import web
from agora.browser import LAUNCH_ARGS, ChromiumUnavailable, ensure_chromium
from services.chassis.config import ROOT
from tests.e2e.conftest import running_platform

pytestmark = pytest.mark.e2e

E2E = web.WEB / "e2e"
SCENARIOS = sorted(path.name for path in E2E.glob("*.test.mjs"))
SCREENSHOTS = ROOT / ".agora" / "screenshots"
REPORTS = ROOT / ".agora" / "e2e"
# One scenario file's whole run, browser start to close (the slowest, the
# accessibility pass over every page, takes about a minute on a busy machine).
SCENARIO_TIMEOUT = 300
_NOT_OK = re.compile(r"^not ok \d+ - (.*?)(?: # .*)?$")


@pytest.fixture(autouse=True)
def event_tap():
    """Not this module's: the session's event tap (tests/e2e/conftest.py) would
    start the shared e2e platform, and these tests run on their own."""
    yield None


@pytest.fixture(scope="module", autouse=True)
def fresh_reports():
    """Screenshots and reports of this run only: an earlier run's (a failure's
    screenshot, say) would mislead whoever reviews them."""
    for folder in (SCREENSHOTS, REPORTS):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)


@pytest.fixture(scope="module")
def web_app():
    """The built app (web/dist), which the gateway serves at ``/``; npm ci
    from the lockfile brings playwright-core and axe-core too."""
    try:
        return web.build()
    except web.WebBuildError as exc:
        pytest.fail(f"the web app did not build: {exc}")


@pytest.fixture(scope="module")
def chromium():
    try:
        return ensure_chromium()
    except ChromiumUnavailable as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def web_platform(web_app, rabbit_vhost, redis_client, zipkin, smtp, sms):
    """A platform of this module's own (vhost, databases, Redis prefix, free
    gateway port, so its public URL, the issuer and the app's redirect URI
    follow that port) with the demo data seeded as ``agora seed`` does.

    ``rabbit_vhost`` and ``redis_client`` as for the session's platform: the
    run's broker users and Redis keys (this platform's among them) are removed
    when the run ends."""
    from nameko.standalone.rpc import ClusterRpcProxy

    from agora.seed import seed
    from services.chassis.config import nameko_config

    with running_platform(zipkin, smtp, sms, name="web") as running:
        with ClusterRpcProxy(nameko_config(running.config, "tests"), timeout=10) as rpc:
            seed(rpc, running.config)
        yield running


def scenario_env(platform, chromium):
    demo = platform.config["demo"]
    return {
        **os.environ,
        "AGORA_E2E_BASE_URL": platform.base_url,
        "AGORA_E2E_USER_EMAIL": demo["user_email"],
        "AGORA_E2E_USER_PASSWORD": demo["user_password"],
        "AGORA_E2E_ADMIN_EMAIL": demo["admin_email"],
        "AGORA_E2E_ADMIN_PASSWORD": demo["admin_password"],
        "AGORA_E2E_SCREENSHOTS": str(SCREENSHOTS),
        "AGORA_E2E_REPORTS": str(REPORTS),
        "AGORA_E2E_CHROMIUM": chromium,
        "AGORA_E2E_CHROMIUM_ARGS": " ".join(LAUNCH_ARGS),
        "NO_COLOR": "1",
    }


def run_scenario(path, env, timeout=SCENARIO_TIMEOUT):
    """``node --test`` on one scenario file, its output streamed line by line
    (the spec reporter), the TAP report kept for the failing tests' names.
    Returns (exit code, failing test names, how many passed, output)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on the PATH: install Node.js 20 or newer")
    REPORTS.mkdir(parents=True, exist_ok=True)
    tap = REPORTS / f"{path.name.removesuffix('.test.mjs')}.tap"
    tap.unlink(missing_ok=True)
    argv = [
        node,
        "--test",
        "--test-reporter=spec",
        "--test-reporter-destination=stdout",
        "--test-reporter=tap",
        f"--test-reporter-destination={tap}",
        str(path),
    ]
    # eventlet's green Popen: reading its output lets this process's other
    # green threads (the SMTP and SMS sinks the platform talks to) run.
    process = subprocess.Popen(
        argv,
        cwd=web.WEB,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = []
    try:
        with eventlet.Timeout(timeout):
            for line in process.stdout:
                output.append(line)
                sys.stdout.write(line)
                sys.stdout.flush()
            code = process.wait()
    except eventlet.Timeout:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"{path.name} ran longer than {timeout} s:\n{''.join(output[-40:])}")
    report = tap.read_text() if tap.exists() else ""
    failing = [
        match.group(1).replace('\\"', '"')
        for match in map(_NOT_OK.match, report.splitlines())
        if match
    ]
    passed = re.search(r"^# pass (\d+)$", report, re.MULTILINE)
    return code, failing, int(passed.group(1)) if passed else 0, "".join(output)


def test_the_public_address_follows_the_gateway_port(web_platform):
    """The scenarios reach the app at the platform's base URL on a free port:
    the issuer and the app's redirect URI must name that address, or the
    sign-in that every scenario starts with fails in a less legible way."""
    import requests

    base = web_platform.base_url
    metadata = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10)
    assert metadata.status_code == 200, metadata.text
    assert metadata.json()["issuer"] == base
    page = requests.get(f"{base}/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_in_a_real_browser(scenario, web_platform, chromium):
    code, failing, passed, output = run_scenario(
        E2E / scenario, scenario_env(web_platform, chromium)
    )
    if code != 0:
        names = "\n".join(f"  - {name}" for name in failing) or "  (none reported)"
        tail = "\n".join(output.splitlines()[-80:])
        pytest.fail(
            f"{scenario}: node --test exited {code}; failing tests:\n{names}\n"
            f"(screenshots in {SCREENSHOTS})\n{tail}",
            pytrace=False,
        )
    assert passed > 0, f"{scenario}: no test ran\n{output}"


def test_every_scenario_file_is_collected():
    """The scenarios this module runs are the files in web/e2e; none hides."""
    expected = {"checkout", "idempotency", "image", "staff", "errors", "accessibility"}
    assert {f"{name}.test.mjs" for name in expected} <= set(SCENARIOS)
