"""A service process on SIGTERM: its worker in flight finishes and answers, and
it exits 0; a worker that outlives shutdown_timeout is killed, and it exits 1."""

import os
import signal
import subprocess
import sys

import pytest
import yaml
from nameko.standalone.rpc import ClusterRpcProxy

from services.chassis.config import ROOT, nameko_config
from services.chassis.logs import logging_config
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

# Its RPC queue must not outlive the module on the shared vhost.
OWN_VHOST = True

SERVICE = "tests.support.slow_service:SlowService"


@pytest.fixture
def start_probe(config, rabbit_vhost, tmp_path):
    """``start_probe(shutdown_timeout)``: the probe service as a process of its own,
    answering; returns the process."""
    processes = []

    def start(shutdown_timeout):
        settings = nameko_config(config, "graceful_probe")
        settings["AGORA"]["shutdown_timeout"] = shutdown_timeout
        settings["LOGGING"] = logging_config("graceful_probe", "INFO")
        path = tmp_path / "probe.yaml"
        path.write_text(yaml.safe_dump(settings))
        process = subprocess.Popen(
            [sys.executable, "-m", "services.chassis.runner", str(path), SERVICE],
            cwd=ROOT,
            env={**os.environ},
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        with ClusterRpcProxy(nameko_config(config, "tests"), timeout=5) as cluster:

            def answers():
                try:
                    return cluster.graceful_probe.health()
                except Exception:
                    assert process.poll() is None, process.stderr.read()
                    return None

            wait_until(answers, timeout=60, what="the probe service to answer")
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stderr.close()


def test_sigterm_lets_the_worker_in_flight_finish_then_exits_0(config, start_probe, tmp_path):
    process = start_probe(shutdown_timeout=30)
    marker = tmp_path / "started"
    with ClusterRpcProxy(nameko_config(config, "tests"), timeout=30) as cluster:
        reply = cluster.graceful_probe.work.call_async(str(marker), 1.0)
        wait_until(marker.exists, what="the worker to start")

        process.send_signal(signal.SIGTERM)

        assert reply.result() == "done"  # answered, not cut short
    assert process.wait(30) == 0
    assert "stopped cleanly" in process.stderr.read()


def test_a_worker_past_shutdown_timeout_is_killed_and_the_exit_code_says_so(
    config, start_probe, tmp_path
):
    process = start_probe(shutdown_timeout=0.5)
    marker = tmp_path / "started"
    with ClusterRpcProxy(nameko_config(config, "tests"), timeout=30) as cluster:
        cluster.graceful_probe.work.call_async(str(marker), 60)
        wait_until(marker.exists, what="the worker to start")

        process.send_signal(signal.SIGTERM)

        assert process.wait(30) == 1
    assert "not stopped within shutdown_timeout" in process.stderr.read()
