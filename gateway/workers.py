"""Which gunicorn worker this process is: ``worker_index()`` (0, 1, ... or None).

gunicorn numbers its workers by age, not by slot; a worker's index here is the
smallest one no live worker holds, chosen in the arbiter before the fork, so a
worker that dies is replaced under the same index. Each worker serves its own
``/metrics`` on ``metrics.port + index`` when that port is fixed (compose runs
one gateway per container), and registers as process ``gateway-w<index>``.

``gateway_argv`` (``agora/cli.py``) loads this module as gunicorn's config
(``--config python:gateway.workers``): gunicorn calls ``pre_fork`` in the
arbiter and ``post_fork`` in the new worker, before the app is built.
"""

_index = None


def worker_index():
    """This worker's index, or None outside a gunicorn worker (tests, a shell)."""
    return _index


def pre_fork(server, worker):
    taken = {getattr(w, "agora_index", None) for w in server.WORKERS.values()}
    index = 0
    while index in taken:
        index += 1
    worker.agora_index = index


def post_fork(server, worker):
    global _index
    _index = worker.agora_index


def post_worker_init(worker):
    """Register the worker in the registry as ``gateway-w<index>`` once its app is
    loaded (gateway/discovery.py); it heartbeats until the worker exits."""
    from gateway.discovery import announce

    worker.agora_announcer = announce(worker.wsgi, f"gateway-w{worker.agora_index}")


def worker_exit(server, worker):
    announcer = getattr(worker, "agora_announcer", None)
    if announcer is not None:
        announcer.stop()
