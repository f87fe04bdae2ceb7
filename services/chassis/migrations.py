"""Per-service databases and Alembic migrations.

Each service has its own migration environment in ``services/<name>/migrations``;
its ``env.py`` is one call to :func:`run_alembic_env`. ``upgrade`` runs under a
PostgreSQL advisory lock so two deploy steps never race on one database.
"""

from pathlib import Path

import psycopg2
from alembic import command
from alembic.config import Config as AlembicConfig
from psycopg2 import sql
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.chassis.config import database_url

SERVICES_DIR = Path(__file__).resolve().parents[1]
_LOCK_ID = 0x61676F7261  # "agora"


def maintenance_connection(config, timeout=None):
    """An autocommit connection to the server's ``postgres`` database."""
    url = make_url(database_url(config, "x")).set(database="postgres")
    conn = psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password or None,
        dbname="postgres",
        connect_timeout=timeout or config["postgres"]["connect_timeout"],
    )
    conn.autocommit = True
    return conn


def database_name(config, service):
    return f"{config['postgres']['database_prefix']}{service}"


def ensure_database(config, service):
    """Create the service's database if it does not exist; True if created."""
    name = database_name(config, service)
    conn = maintenance_connection(config)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            try:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg2.errors.DuplicateDatabase:
                return False
            return True
    finally:
        conn.close()


def drop_database(config, service):
    name = database_name(config, service)
    conn = maintenance_connection(config)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        conn.close()


def alembic_config(config, service):
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    cfg.attributes["url"] = database_url(config, service)
    return cfg


def upgrade(config, service, revision="head"):
    ensure_database(config, service)
    command.upgrade(alembic_config(config, service), revision)


def run_alembic_env(target_metadata):
    """The body of every service's ``migrations/env.py`` (online mode only)."""
    from alembic import context

    engine = create_engine(context.config.attributes["url"])
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
        try:
            context.configure(connection=connection, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
            connection.commit()
    engine.dispose()
