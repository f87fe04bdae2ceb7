"""Run CPU-bound work (password hashing, say) without stalling the event loop.

Under eventlet every greenthread shares one OS thread: a 50 ms hash would
freeze every other worker of the service for 50 ms. ``offload`` runs the
function in eventlet's native thread pool instead; the calling greenthread
waits, the others keep running. This is the only place services reach for
eventlet to do that, so domain code stays framework-free.
"""

from eventlet import tpool


def offload(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a native thread; returns its result or raises its error."""
    return tpool.execute(fn, *args, **kwargs)
