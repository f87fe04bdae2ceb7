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

from services.chassis.config import database_name, database_url

SERVICES_DIR = Path(__file__).resolve().parents[1]
_LOCK_ID = 0x61676F7261  # "agora"


def maintenance_connection(config, timeout=None, dbname="postgres"):
    """An autocommit connection as the admin role (``postgres.admin``), by default
    to the server's ``postgres`` database."""
    url = make_url(config["postgres"]["url"].rstrip("/") + "/postgres")
    admin = config["postgres"]["admin"]
    conn = psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=admin["user"],
        password=admin["password"] or None,
        dbname=dbname,
        connect_timeout=timeout or config["postgres"]["connect_timeout"],
    )
    conn.autocommit = True
    return conn


def ensure_database(config, service):
    """Create, idempotently, the service's role and its database, owned by that
    role, which alone may connect to it; True if the database was created.

    The role (named like the database) logs in with
    ``services.<service>.database_password`` (none if unset: fine where the
    server trusts local connections), and has no other power. Objects an older
    layout left owned by another role are handed to it."""
    name = database_name(config, service)
    password = config.get("services", {}).get(service, {}).get("database_password") or None
    role = sql.Identifier(name)
    conn = maintenance_connection(config)
    try:
        with conn.cursor() as cur:
            # Serialise concurrent deploy steps on the cluster-global role and database.
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
            try:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(
                    sql.SQL(
                        verb + " ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                        "NOREPLICATION NOBYPASSRLS PASSWORD %s"
                    ).format(role),
                    (password,),
                )
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                created = cur.fetchone() is None
                if created:
                    cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
                else:
                    cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(role, role))
                cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(role))
                cur.execute(
                    sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(role, role)
                )
            finally:
                cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    finally:
        conn.close()
    if not created:
        _adopt_objects(config, name)
    return created


# Relations in the public schema not owned by the service's role (tables,
# views, sequences no table owns; a table's own sequences and indexes follow it).
_FOREIGN_OWNED = """
SELECT c.relname, c.relkind FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND pg_get_userbyid(c.relowner) <> %(role)s
  AND NOT (c.relkind = 'S' AND EXISTS (
      SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
ORDER BY c.relkind = 'S'
"""
_ALTER = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}


def _adopt_objects(config, name):
    """Hand the service's role what a database created before roles holds."""
    conn = maintenance_connection(config, dbname=name)
    try:
        with conn.cursor() as cur:
            cur.execute(_FOREIGN_OWNED, {"role": name})
            for relname, kind in cur.fetchall():
                cur.execute(
                    sql.SQL("ALTER " + _ALTER[kind] + " public.{} OWNER TO {}").format(
                        sql.Identifier(relname), sql.Identifier(name)
                    )
                )
            cur.execute(
                "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = 'public' AND t.typtype = 'e' "
                "AND pg_get_userbyid(t.typowner) <> %s",
                (name,),
            )
            for (typname,) in cur.fetchall():
                cur.execute(
                    sql.SQL("ALTER TYPE public.{} OWNER TO {}").format(
                        sql.Identifier(typname), sql.Identifier(name)
                    )
                )
    finally:
        conn.close()


def drop_database(config, service):
    """Drop the service's database and its role."""
    name = database_name(config, service)
    conn = maintenance_connection(config)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
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
