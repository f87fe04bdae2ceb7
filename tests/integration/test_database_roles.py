"""Each service's own PostgreSQL role: owner of its database, refused by the others."""

import uuid

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy.engine import make_url

from services.chassis.config import database_name, database_url
from services.chassis.migrations import drop_database, ensure_database, maintenance_connection

pytestmark = pytest.mark.integration


def connect(config, role_of, database_of):
    """A connection as ``role_of``'s role (with its password) to ``database_of``'s database."""
    url = make_url(database_url(config, role_of))
    return psycopg2.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=database_name(config, database_of),
        connect_timeout=5,
    )


def test_a_service_role_uses_its_own_database(config, databases):
    conn = connect(config, "catalog", "catalog")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, count(*) FROM products")
            user, _ = cur.fetchone()
            assert user == database_name(config, "catalog")
            cur.execute("CREATE TEMPORARY TABLE scratch (n int)")
    finally:
        conn.close()


@pytest.mark.parametrize("role_of, database_of", [("catalog", "users"), ("orders", "billing")])
def test_a_service_role_cannot_connect_to_another_service_database(
    config, databases, role_of, database_of
):
    with pytest.raises(psycopg2.OperationalError) as excinfo:
        connect(config, role_of, database_of).close()
    assert "permission denied for database" in str(excinfo.value)


def test_a_service_role_has_no_other_power(config, databases):
    conn = maintenance_connection(config)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles "
                "WHERE rolname = %s",
                (database_name(config, "users"),),
            )
            assert cur.fetchone() == (False, False, False, True)
            cur.execute(
                "SELECT pg_get_userbyid(datdba), has_database_privilege('public', oid, 'CONNECT') "
                "FROM pg_database WHERE datname = %s",
                (database_name(config, "users"),),
            )
            assert cur.fetchone() == (database_name(config, "users"), False)
    finally:
        conn.close()


def test_ensuring_is_idempotent_and_adopts_a_database_made_before_roles(config):
    name = f"roles_{uuid.uuid4().hex[:8]}"
    database = database_name(config, name)
    admin = maintenance_connection(config)
    try:
        # The old layout: the admin role owns the database and its tables.
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        old = maintenance_connection(config, dbname=database)
        with old.cursor() as cur:
            cur.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
            cur.execute("INSERT INTO notes (body) VALUES ('kept')")
        old.close()

        assert ensure_database(config, name) is False
        assert ensure_database(config, name) is False

        conn = connect(config, name, name)
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO notes (body) VALUES ('new') RETURNING id")
                assert cur.fetchone() == (2,)
                cur.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'")
                assert cur.fetchone() == (database,)
            conn.commit()
        finally:
            conn.close()
    finally:
        admin.close()
        drop_database(config, name)
    check = maintenance_connection(config)
    try:
        with check.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (database,))
            assert cur.fetchone() == (0,)
    finally:
        check.close()
