"""ensure_prometheus(): what it runs and what it says when apt cannot help
(a stand-in for apt-get records the commands; no package is installed here)."""

from functools import partial

import pytest

from agora import apt as apt_module
from agora import prometheus
from agora.prometheus import Binaries, PrometheusUnavailable, ensure_prometheus
from tests.support.apt import FakeApt

pytestmark = pytest.mark.unit


# Its stderr when the package lists are missing or stale.
Apt = partial(FakeApt, output="E: Unable to locate package prometheus")


@pytest.fixture
def missing(monkeypatch):
    """No prometheus on the PATH, apt-get there, running as root."""
    monkeypatch.setattr(prometheus, "find_binaries", lambda: None)
    monkeypatch.setattr(prometheus.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(apt_module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(prometheus, "PACKAGE_SERVICE", prometheus.Path("/nonexistent/init.d"))


def test_found_binaries_are_used_as_they_are(monkeypatch):
    found = Binaries("/opt/bin/prometheus", "/opt/bin/promtool")
    monkeypatch.setattr(prometheus, "find_binaries", lambda: found)
    apt = Apt()
    assert ensure_prometheus(run=apt) == found
    assert apt.commands == []


def test_a_failed_install_updates_the_lists_retries_once_and_says_why(missing):
    apt = Apt(100, 0, 100)
    with pytest.raises(PrometheusUnavailable, match="Unable to locate package prometheus"):
        ensure_prometheus(run=apt)
    install, update, again = apt.commands
    assert install[:2] == ["apt-get", "install"] and "--no-install-recommends" in install
    assert install[-1] == "prometheus" and again == install
    assert update[:2] == ["apt-get", "update"]


def test_without_root_it_says_how_to_install(missing, monkeypatch):
    monkeypatch.setattr(apt_module.os, "geteuid", lambda: 1000)
    apt = Apt()
    with pytest.raises(PrometheusUnavailable, match="apt-get install -y prometheus"):
        ensure_prometheus(run=apt)
    assert apt.commands == []


def test_without_apt_it_says_what_to_install(missing, monkeypatch):
    monkeypatch.setattr(prometheus.shutil, "which", lambda name: None)
    with pytest.raises(PrometheusUnavailable, match="prometheus package"):
        ensure_prometheus(run=Apt())


def test_the_packages_own_server_is_stopped_if_its_install_started_it(tmp_path, monkeypatch):
    service = tmp_path / "prometheus"
    service.write_text("#!/bin/sh\n")
    monkeypatch.setattr(prometheus, "PACKAGE_SERVICE", service)
    running = Apt(0, 0)
    prometheus.stop_package_service(run=running)
    assert running.commands == [[str(service), "status"], [str(service), "stop"]]
    stopped = Apt(3)
    prometheus.stop_package_service(run=stopped)
    assert stopped.commands == [[str(service), "status"]]
