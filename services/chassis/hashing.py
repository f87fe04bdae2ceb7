"""argon2id hashing of secrets (user passwords, client secrets), free of Nameko.

A subclass sets ``max_length`` from its contract. Every failure path spends
what a real verification costs, so timing does not tell an unknown account,
an over-long secret or a wrong one apart.
"""

import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


def _inline(fn, *args):
    return fn(*args)


class SecretHasher:
    """``offload(fn, *args)`` runs the CPU-heavy calls; a service passes one that
    keeps its event loop free (``SecretHashing`` in services.chassis.service),
    tests may leave the default (run inline)."""

    max_length = 1024

    def __init__(self, time_cost, memory_cost, parallelism, offload=None):
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        self.offload = offload or _inline
        # Hashed up front, so the first unknown account costs what any other does.
        self._dummy_hash = self.hash(uuid.uuid4().hex)

    @classmethod
    def from_config(cls, settings, offload=None):
        """``settings`` holds ``time_cost``, ``memory_cost`` and ``parallelism``."""
        return cls(settings["time_cost"], settings["memory_cost"], settings["parallelism"], offload)

    def _acceptable(self, secret):
        return isinstance(secret, str) and len(secret) <= self.max_length

    def hash(self, secret):
        return self.offload(self.hasher.hash, secret)

    def verify(self, secret_hash, secret):
        """True if ``secret`` matches ``secret_hash``; never raises for a mismatch."""
        if not secret_hash or not self._acceptable(secret):
            return self.verify_dummy(secret)
        try:
            return self.offload(self.hasher.verify, secret_hash, secret)
        except (VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, secret):
        """Spend what a real verification costs, for an unknown account; always False."""
        candidate = secret if self._acceptable(secret) else ""
        try:
            self.offload(self.hasher.verify, self._dummy_hash, candidate)
        except (VerificationError, InvalidHashError):
            pass
        return False

    def needs_rehash(self, secret_hash):
        return self.hasher.check_needs_rehash(secret_hash)
