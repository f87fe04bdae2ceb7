"""Prometheus targets for ``agora run``: ``<state dir>/prometheus/targets/agora.json``.

A thread rewrites the file from the registry (services/chassis/discovery.py)
every ``discovery.heartbeat_interval`` seconds, in Prometheus's file-based
service discovery format, so Prometheus scrapes every live process's /metrics
endpoint (and stops scraping one that died within ``discovery.ttl``). With
Redis down the last list stays in place. The file is removed when ``agora run``
exits: nothing it named is running any more.
"""

import logging
import threading

from services.chassis.discovery import registry_from_config, write_file_sd

log = logging.getLogger("agora.targets")


def targets_path(state_dir):
    return state_dir / "prometheus" / "targets" / "agora.json"


class PrometheusTargets:
    def __init__(self, config, path):
        self.path = path
        self.interval = config["discovery"]["heartbeat_interval"]
        self.registry = registry_from_config(config)
        self._stopped = threading.Event()
        self._thread = None
        self._outage = False

    def write(self):
        """Rewrite the file from the registry now; False if Redis did not answer."""
        try:
            instances = self.registry.instances()
        except Exception as exc:
            if not self._outage:
                self._outage = True
                log.warning(
                    "cannot read the registry (%s): Prometheus keeps the last targets",
                    exc.__class__.__name__,
                )
            return False
        self._outage = False
        write_file_sd(instances, self.path)
        return True

    def _run(self):
        while True:
            try:
                self.write()
            except OSError as exc:
                log.warning("cannot write %s: %s", self.path, exc)
            if self._stopped.wait(self.interval):
                return

    def start(self):
        self._thread = threading.Thread(target=self._run, name="prometheus-targets", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)
        self.path.unlink(missing_ok=True)
        self.registry.redis.close()
