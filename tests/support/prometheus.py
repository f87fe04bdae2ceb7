"""A real Prometheus server for a test: started from a command line, asked over its
HTTP API, stopped (by its own PID) at the end; and a direct scrape of /metrics."""

import subprocess

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.polling import wait_until


class PrometheusServer:
    def __init__(self, argv, base_url, log_path, env=None):
        self.argv, self.base_url, self.log_path, self.env = argv, base_url, log_path, env
        self.process = None

    def start(self, timeout=60.0):
        self._log = open(self.log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )

        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited {self.process.returncode}: {self.log()}")
            try:
                return requests.get(f"{self.base_url}/-/ready", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout, "prometheus ready", interval=0.2)
        return self

    def log(self):
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process is not None:
            self._log.close()

    def api(self, path, **params):
        response = requests.get(f"{self.base_url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr):
        """The instant vector ``expr`` gives now: [(labels, float value)]."""
        return [
            (sample["metric"], float(sample["value"][1]))
            for sample in self.api("query", query=expr)["result"]
        ]

    def active_targets(self):
        return self.api("targets", state="active")["activeTargets"]

    def rule_names(self):
        return {rule["name"] for group in self.api("rules")["groups"] for rule in group["rules"]}


def scrape(url):
    """Every sample of one /metrics endpoint: [(series name, labels)]."""
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]
