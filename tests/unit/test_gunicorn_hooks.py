"""The gateway workers' names in the registry: gateway-w<lowest free index>."""

import itertools
from types import SimpleNamespace

import pytest

from gateway.gunicorn_hooks import pre_fork

pytestmark = pytest.mark.unit


PIDS = itertools.count(1000)


def forked(server):
    worker = SimpleNamespace()
    pre_fork(server, worker)
    server.WORKERS[next(PIDS)] = worker  # as the arbiter records a forked worker
    return worker.agora_index


def test_workers_take_the_lowest_free_index_so_a_replacement_keeps_the_name():
    server = SimpleNamespace(WORKERS={})
    assert [forked(server) for _ in range(3)] == [0, 1, 2]
    # The worker with index 1 dies; its replacement is gateway-w1 again.
    [pid] = [pid for pid, worker in server.WORKERS.items() if worker.agora_index == 1]
    del server.WORKERS[pid]
    assert forked(server) == 1
    assert sorted(w.agora_index for w in server.WORKERS.values()) == [0, 1, 2]
