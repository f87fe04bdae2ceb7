"""Helpers for testing services in a real Nameko container."""

from nameko.testing.services import entrypoint_hook


def call_entrypoint(container, method, *args, **kwargs):
    """Run one entrypoint of a started container in a worker and return its result.

    Concurrent calls to the *same* method through hooks can be mixed up by
    Nameko's waiter; use a ``ClusterRpcProxy`` with ``call_async`` for those.
    """
    with entrypoint_hook(container, method) as hook:
        return hook(*args, **kwargs)
