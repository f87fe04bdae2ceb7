"""What every Agora service shares: config, database, Redis, tracing, logging,
errors and health. Nameko-specific code stays in this package so the services
themselves show only their business entrypoints."""
