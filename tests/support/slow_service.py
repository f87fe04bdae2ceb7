"""A service for the graceful-stop tests: ``work`` marks that it started (a file),
then takes its time. Run as a process: ``python -m services.chassis.runner``."""

import pathlib

import eventlet

from services.chassis.messaging import rpc
from services.chassis.service import AgoraService


class SlowService(AgoraService):
    name = "graceful_probe"

    @rpc
    def work(self, marker, seconds):
        pathlib.Path(marker).touch()
        eventlet.sleep(seconds)
        return "done"
