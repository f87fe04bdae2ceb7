"""argon2id hashing of secrets (user passwords, client secrets), free of Nameko.

A subclass sets ``max_length`` from its contract. Every failure path spends
what a real verification costs, so timing does not tell an unknown account,
an over-long secret or a wrong one apart.
"""

import threading
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


def _inline(fn, *args):
    return fn(*args)


class SecretHasher:
    """``offload(fn, *args)`` runs the CPU-heavy calls; a service passes one that
    keeps its event loop free (``SecretHashing`` in services.chassis.service),
    tests may leave the default (run inline).

    Each hash takes ``memory_cost`` KiB (64 MiB in production): at most
    ``max_concurrent`` run at once, whatever the number of workers, so a burst of
    logins queues instead of taking the process past its memory limit. Under
    eventlet the semaphore is green: waiting callers let the others run."""

    max_length = 1024

    def __init__(self, time_cost, memory_cost, parallelism, offload=None, max_concurrent=2):
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        self.offload = offload or _inline
        self.slots = threading.BoundedSemaphore(max_concurrent)
        # Hashed up front, so the first unknown account costs what any other does.
        self._dummy_hash = self.hash(uuid.uuid4().hex)

    @classmethod
    def from_config(cls, settings, offload=None):
        """``settings`` holds ``time_cost``, ``memory_cost``, ``parallelism`` and
        ``max_concurrent`` (2 when absent)."""
        return cls(
            settings["time_cost"],
            settings["memory_cost"],
            settings["parallelism"],
            offload,
            max_concurrent=settings.get("max_concurrent", 2),
        )

    def _run(self, fn, *args):
        """``fn(*args)`` offloaded, holding one of the ``max_concurrent`` slots."""
        with self.slots:
            return self.offload(fn, *args)

    def _acceptable(self, secret):
        return isinstance(secret, str) and len(secret) <= self.max_length

    def hash(self, secret):
        return self._run(self.hasher.hash, secret)

    def verify(self, secret_hash, secret):
        """True if ``secret`` matches ``secret_hash``; never raises for a mismatch."""
        if not secret_hash or not self._acceptable(secret):
            return self.verify_dummy(secret)
        try:
            return self._run(self.hasher.verify, secret_hash, secret)
        except (VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, secret):
        """Spend what a real verification costs, for an unknown account; always False."""
        candidate = secret if self._acceptable(secret) else ""
        try:
            self._run(self.hasher.verify, self._dummy_hash, candidate)
        except (VerificationError, InvalidHashError):
            pass
        return False

    def needs_rehash(self, secret_hash):
        return self.hasher.check_needs_rehash(secret_hash)
