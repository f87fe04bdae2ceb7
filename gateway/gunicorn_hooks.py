"""gunicorn server hooks for the gateway (``--config python:gateway.gunicorn_hooks``).

Each worker is a process of its own with its own /metrics endpoint, so each
registers in the registry as ``gateway-w<index>``. gunicorn numbers workers by
age (it grows with every restart); the index here is the lowest one free when
the worker is forked, so a replaced worker takes its predecessor's name and the
Prometheus series stay the same.
"""

import itertools
import os

WORKER_INDEX_ENV = "AGORA_GATEWAY_WORKER_INDEX"


def pre_fork(server, worker):
    taken = {getattr(sibling, "agora_index", None) for sibling in server.WORKERS.values()}
    worker.agora_index = next(i for i in itertools.count() if i not in taken)


def post_fork(server, worker):
    # In the worker: its index, for code that needs one per worker (a port, a name).
    os.environ[WORKER_INDEX_ENV] = str(worker.agora_index)


def post_worker_init(worker):
    from gateway.discovery import announce

    worker.agora_announcer = announce(worker.wsgi, f"gateway-w{worker.agora_index}")


def worker_exit(server, worker):
    announcer = getattr(worker, "agora_announcer", None)
    if announcer is not None:
        announcer.stop()
