"""The faults the suite injects, each a pair: ``inject()`` then, after its
outage, ``recover()``. A fault records when it began and ended."""

import os
import signal
import time
from dataclasses import dataclass, field

from agora.platform import _descendants


@dataclass
class Fault:
    name: str
    outage: float  # seconds between inject() and recover()
    started_at: float | None = None
    ended_at: float | None = None
    recovered_at: float | None = None  # first order accepted after ended_at
    notes: list = field(default_factory=list)
    answers: dict = field(default_factory=dict)  # the gateway's, fault start to recovery

    def inject(self, world):
        raise NotImplementedError

    def recover(self, world):
        raise NotImplementedError

    def as_dict(self, origin):
        def rel(moment):
            return None if moment is None else round(moment - origin, 2)

        return {
            "fault": self.name,
            "outage_s": self.outage,
            "started_s": rel(self.started_at),
            "ended_s": rel(self.ended_at),
            "recovered_s": rel(self.recovered_at),
            "recovery_s": None
            if self.recovered_at is None
            else round(self.recovered_at - self.ended_at, 2),
            "answers": self.answers,
            "notes": self.notes,
        }


class KillService(Fault):
    """SIGKILL every instance of a service (or the whole gateway: master and
    workers); start them again after the outage, as a supervisor would."""

    def __init__(self, service, outage):
        super().__init__(f"kill -9 {service}", outage)
        self.service = service

    def inject(self, world):
        world.supervisor.hold(self.service)
        if self.service == "gateway":
            for child in world.platform._processes("gateway"):
                for pid in _descendants(child.pid) if child.alive() else ():
                    _kill(pid)
        world.platform.kill(self.service)

    def recover(self, world):
        world.platform.start(self.service)
        world.supervisor.release(self.service)


class KillGatewayWorkers(Fault):
    """SIGKILL the gateway's gunicorn workers: the master starts new ones."""

    def __init__(self):
        super().__init__("kill -9 gateway workers", 0.0)

    def inject(self, world):
        [gateway] = world.platform._processes("gateway")
        workers = _descendants(gateway.pid)
        self.notes.append(f"killed {len(workers)} worker(s)")
        for pid in workers:
            _kill(pid)

    def recover(self, world):
        pass  # gunicorn's master replaces them


class RestartServer(Fault):
    """Stop a backing server, leave it down for the outage, start it again."""

    def __init__(self, server, outage, verb="restart"):
        super().__init__(f"{verb} {server.name}", outage)
        self.server = server

    def inject(self, world):
        began = time.monotonic()
        self.server.stop()
        self.notes.append(f"stopped in {time.monotonic() - began:.1f}s")

    def recover(self, world):
        began = time.monotonic()
        self.server.start()
        self.notes.append(f"started in {time.monotonic() - began:.1f}s")


class CutCatalogDatabase(Fault):
    """The catalog's connections to PostgreSQL reset and refused (tcp_proxy)."""

    def __init__(self, outage):
        super().__init__("cut the catalog's database", outage)

    def inject(self, world):
        world.catalog_db_proxy.cut()

    def recover(self, world):
        world.catalog_db_proxy.restore()


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
