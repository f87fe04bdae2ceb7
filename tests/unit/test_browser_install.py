"""ensure_chromium(): what it runs and what it says when apt cannot help
(a stand-in for apt-get records the commands; no package is installed here)."""

from functools import partial

import pytest

from agora import apt as apt_module
from agora import browser
from agora.browser import LAUNCH_ARGS, ChromiumUnavailable, ensure_chromium
from tests.support.apt import FakeApt

pytestmark = pytest.mark.unit


# Its stderr when the package lists are missing or stale.
Apt = partial(FakeApt, output="E: Unable to locate package chromium")


@pytest.fixture
def missing(monkeypatch):
    """No chromium on the PATH, apt-get there, running as root."""
    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    monkeypatch.setattr(browser.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(apt_module.os, "geteuid", lambda: 0)


def test_a_found_chromium_is_used_as_it_is(monkeypatch):
    monkeypatch.setattr(browser, "find_chromium", lambda: "/usr/bin/chromium")
    apt = Apt()
    assert ensure_chromium(run=apt) == "/usr/bin/chromium"
    assert apt.commands == []


def test_debians_binary_comes_first(monkeypatch):
    monkeypatch.setattr(browser.shutil, "which", lambda name: name if "/" in name else None)
    assert browser.find_chromium() == "/usr/bin/chromium"
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    assert browser.find_chromium() is None


def test_a_missing_chromium_is_installed_without_recommends(missing, monkeypatch):
    apt = Apt(0)
    found = iter([None, "/usr/bin/chromium"])
    monkeypatch.setattr(browser, "find_chromium", lambda: next(found))
    assert ensure_chromium(run=apt) == "/usr/bin/chromium"
    [install] = apt.commands
    assert install[:2] == ["apt-get", "install"] and install[-1] == "chromium"
    assert "--no-install-recommends" in install and "DPkg::Lock::Timeout=300" in install


def test_a_failed_install_updates_the_lists_retries_once_and_says_why(missing):
    apt = Apt(100, 0, 100)
    with pytest.raises(ChromiumUnavailable, match="Unable to locate package chromium"):
        ensure_chromium(run=apt)
    install, update, again = apt.commands
    assert update[:2] == ["apt-get", "update"] and again == install


def test_without_root_it_says_how_to_install(missing, monkeypatch):
    monkeypatch.setattr(apt_module.os, "geteuid", lambda: 1000)
    apt = Apt()
    with pytest.raises(ChromiumUnavailable, match="apt-get install -y chromium"):
        ensure_chromium(run=apt)
    assert apt.commands == []


def test_without_apt_it_says_what_to_install(missing, monkeypatch):
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    with pytest.raises(ChromiumUnavailable, match="chromium package"):
        ensure_chromium(run=Apt())


def test_the_launch_flags_suit_a_container_without_a_display():
    assert {"--headless", "--no-sandbox", "--disable-gpu"} <= set(LAUNCH_ARGS)
    assert "--disable-background-networking" in LAUNCH_ARGS
