"""tests/support/tcp_proxy.py against the real PostgreSQL: a client connected
through the proxy loses its connection on cut(), cannot reconnect until
restore(), then works again."""

import psycopg2
import pytest

from tests.support.polling import wait_until
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


def connect(port):
    return psycopg2.connect(
        host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=3
    )


def answers(port):
    try:
        conn = connect(port)
    except psycopg2.OperationalError:
        return False
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    finally:
        conn.close()


@pytest.fixture
def proxy(config):
    from sqlalchemy.engine import make_url

    upstream = make_url(config["postgres"]["url"]).port or 5432
    proxy = TcpProxy("127.0.0.1", upstream).start()
    yield proxy
    proxy.stop()


def test_a_cut_drops_live_connections_and_refuses_new_ones_until_restored(proxy):
    conn = connect(proxy.port)
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)

    proxy.cut()
    assert proxy.is_cut
    with pytest.raises(psycopg2.OperationalError), conn.cursor() as cursor:
        cursor.execute("SELECT 1")
    conn.close()
    assert not answers(proxy.port)

    proxy.restore()
    assert wait_until(lambda: answers(proxy.port), timeout=5, what="PostgreSQL through the proxy")


def test_connections_through_the_proxy_are_independent(proxy):
    first, second = connect(proxy.port), connect(proxy.port)
    try:
        for conn, value in ((first, 1), (second, 2), (first, 3)):
            with conn.cursor() as cursor:
                cursor.execute("SELECT %s", (value,))
                assert cursor.fetchone() == (value,)
    finally:
        first.close()
        second.close()
