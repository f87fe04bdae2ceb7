"""The platform processes started one by one, as `agora run` does: for end-to-end
tests and benchmarks, which also stop and restart single services."""

import os
import socket
import sys

from agora.cli import SERVICES, gateway_argv, wait_for_http, wait_for_services
from agora.supervisor import Child, ProcessSpec
from services.chassis.config import ROOT


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Platform:
    def __init__(self, config, env):
        self.config = config
        self.env = env
        self.children = {}
        self.base_url = f"http://127.0.0.1:{config['gateway']['port']}"

    def spec(self, name):
        if name == "gateway":
            return ProcessSpec("gateway", gateway_argv(self.config), self.env)
        return ProcessSpec(name, [sys.executable, "-m", "agora", "service", name], self.env)

    def start(self, name):
        self.children[name] = Child(self.spec(name), cwd=str(ROOT)).start()
        return self.children[name]

    def stop(self, name):
        self.children[name].stop()

    def start_all(self):
        services = [self.start(name) for name in SERVICES]
        wait_for_services(self.config, SERVICES, children=services, timeout=60)
        gateway = self.start("gateway")
        wait_for_http(self.base_url + "/healthz", child=gateway, timeout=60)

    def stop_all(self):
        for child in reversed(list(self.children.values())):
            child.stop()

    def wait_ready(self, timeout=60.0):
        """Until every service answers health() and the gateway's /readyz is 200
        (/readyz alone says only that the gateway reaches RabbitMQ and Redis)."""
        wait_for_services(self.config, SERVICES, timeout=timeout)
        wait_for_http(self.base_url + "/readyz", timeout=timeout)


def platform_env(extra):
    env = {key: value for key, value in os.environ.items() if key.startswith("AGORA_")}
    env.update(extra)
    return env
