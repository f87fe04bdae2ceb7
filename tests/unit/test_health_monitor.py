"""The health monitor's database probe: a saturated pool is busy, not down."""

from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import QueuePool

from services.chassis.health import _database_health

pytestmark = pytest.mark.unit


def database(max_overflow):
    # An in-memory SQLite engine stands for the pool only; health() is the probe.
    engine = create_engine("sqlite://", poolclass=QueuePool, pool_size=1, max_overflow=max_overflow)
    return SimpleNamespace(engine=engine, health=lambda: "ok")


def test_a_pool_with_a_free_connection_is_probed():
    db = database(max_overflow=1)
    with db.engine.connect():
        assert _database_health(db) == "ok"  # the overflow connection is still free


def test_a_saturated_pool_is_not_probed():
    db = database(max_overflow=1)
    with db.engine.connect(), db.engine.connect():
        assert _database_health(db) is None  # cannot tell: every connection is at work
    assert _database_health(db) == "ok"


def test_a_pool_without_an_overflow_cap_is_always_probed():
    db = database(max_overflow=-1)
    with db.engine.connect(), db.engine.connect():
        assert _database_health(db) == "ok"
