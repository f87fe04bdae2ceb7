"""The health monitor's database probe: a saturated pool is busy, not down."""

from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import QueuePool

from services.chassis.health import HealthMonitor, _database_health

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


class Monitor(HealthMonitor):
    """The monitor's decisions without a container: checks are plain functions,
    and pausing or resuming is recorded."""

    def __init__(self, checks, required=("database", "redis"), threshold=2):
        self.service = "unit"
        self.timeout = 1.0
        self.checks = checks
        self.required = set(required)
        self.threshold = threshold
        self.up = dict.fromkeys(checks, True)
        self.failures = dict.fromkeys(checks, 0)
        self.consuming = True
        self.changes = []

    def _set_consuming(self, consuming):
        self.changes.append(consuming)


def test_a_dependency_is_down_after_the_threshold_of_failed_checks_in_a_row():
    state = {"database": "ok", "redis": "ok"}
    monitor = Monitor({name: (lambda name=name: state[name]) for name in state})
    assert monitor.check() and monitor.changes == []
    state["database"] = "error: OperationalError"
    assert monitor.check()  # one failure: maybe only slow
    state["database"] = "ok"
    assert monitor.check()  # the count starts again
    state["database"] = "error: OperationalError"
    assert monitor.check()
    assert not monitor.check()  # two in a row: stop consuming
    assert not monitor.check() and monitor.changes == [False]  # once
    state["database"] = "ok"
    assert monitor.check() and monitor.changes == [False, True]  # one good check resumes


def test_a_check_that_cannot_tell_keeps_the_last_state():
    answers = iter(["error", "error", None, None, "ok"])
    monitor = Monitor({"database": lambda: next(answers)})
    assert monitor.check() and not monitor.check()
    assert not monitor.check() and not monitor.check()  # busy pool: still down
    assert monitor.check() and monitor.changes == [False, True]


def test_a_dependency_not_required_never_stops_it():
    monitor = Monitor({"redis": lambda: "error"}, required=("database",), threshold=1)
    assert monitor.check() and monitor.check() and monitor.changes == []
    assert monitor.up == {"redis": False}
