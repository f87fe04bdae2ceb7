"""services.<name>.instances: the processes `agora run` starts for each service,
their names, and what each is told about itself (config, logs)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from agora import cli
from agora.platform import resource_usage
from services.chassis.config import ConfigError, load_config

pytestmark = pytest.mark.unit


def config_with(tmp_path, services):
    overlay = tmp_path / "instances.yaml"
    overlay.write_text(yaml.safe_dump({"services": services}))
    return load_config({"AGORA_ENV": "development", "AGORA_CONFIG": str(overlay)})


def test_every_service_runs_one_process_by_default():
    config = load_config({"AGORA_ENV": "development"})
    specs = cli.service_specs(config)
    assert [spec.name for spec in specs] == list(cli.SERVICES)
    orders = next(spec for spec in specs if spec.name == "orders")
    assert orders.argv[-4:] == ["service", "orders", "--instance", "orders"]


def test_several_instances_are_numbered_processes(tmp_path):
    config = config_with(tmp_path, {"orders": {"instances": 3}, "billing": {"instances": 2}})
    names = [spec.name for spec in cli.service_specs(config)]
    assert names.count("users") == 1
    assert [n for n in names if n.startswith("orders")] == ["orders-1", "orders-2", "orders-3"]
    assert [n for n in names if n.startswith("billing")] == ["billing-1", "billing-2"]
    assert "orders" not in names
    assert cli.instance_names(config, "billing") == ["billing-1", "billing-2"]


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5])
def test_instances_must_be_a_positive_integer(tmp_path, bad):
    with pytest.raises(ConfigError) as error:
        config_with(tmp_path, {"inventory": {"instances": bad}})
    assert str(error.value).startswith("config error: services.inventory.instances: ")


def test_a_service_process_sees_its_own_instance_count_only(tmp_path):
    overlay = tmp_path / "instances.yaml"
    overlay.write_text(yaml.safe_dump({"services": {"orders": {"instances": 2}}}))
    env = {"AGORA_ENV": "development", "AGORA_CONFIG": str(overlay)}
    config = load_config(env, process="orders")
    assert set(config["services"]) == {"orders"}
    assert config["services"]["orders"]["instances"] == 2


def test_an_instance_is_named_in_its_rendered_config_and_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("AGORA_STATE_DIR", str(tmp_path))
    config = config_with(tmp_path, {"orders": {"instances": 2}})

    path = cli.render_nameko_config(config, "orders", "orders-2")

    assert path.name == "orders-2.yaml"
    rendered = yaml.safe_load(path.read_text())
    assert rendered["INSTANCE"] == "orders-2"
    formatter = rendered["LOGGING"]["formatters"]["json"]
    assert (formatter["service"], formatter["instance"]) == ("orders", "orders-2")


def test_an_unknown_instance_is_refused_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "agora", "service", "orders", "--instance", "orders-7"],
        capture_output=True,
        text=True,
        env={"AGORA_ENV": "development", "AGORA_STATE_DIR": str(tmp_path)},
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "agora: orders has no instance 'orders-7' (one of: orders)"
    )


def test_resource_usage_reads_cpu_and_memory_of_a_process_and_its_children():
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        child_pid = int(parent.stdout.readline())
        usage = {u["name"]: u for u in resource_usage({"sleeper": parent.pid}, interval=0.2)}
    finally:
        parent.kill()
        parent.wait(5)
        os.kill(child_pid, signal.SIGKILL)
    assert set(usage) == {"sleeper", f"sleeper/{child_pid}"}
    for entry in usage.values():
        assert entry["cpu_percent"] >= 0
        assert entry["rss_mb"] > 1
    assert usage["sleeper"]["pid"] == parent.pid


def test_resource_usage_leaves_out_a_process_that_is_gone():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(10)
    time.sleep(0.05)
    assert resource_usage({"gone": gone.pid}, interval=0.01) == []
