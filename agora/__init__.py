"""Platform tooling: the ``agora`` command (preflight, migrate, seed, run, shell)."""
