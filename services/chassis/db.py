"""Database per service: one SQLAlchemy session per worker, finished before the reply.

``Database`` is nameko-sqlalchemy's provider with a unit of work on top:
the session commits when the entrypoint succeeds and rolls back when it
raises, *before* the RPC reply is sent or the event is acked (see
``messaging.finish_unit_of_work``). Callbacks registered with
``db.on_commit(fn)`` run only after a successful commit (cache invalidation,
for instance, must not run for a change that never happened).
"""

import logging

import psycopg2.extensions
from nameko_sqlalchemy.database import Database as _Database
from nameko_sqlalchemy.database import DatabaseWrapper
from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from services.chassis.errors import Unavailable
from services.chassis.events import INBOX_TABLE
from services.chassis.messaging import MalformedEvent, as_exc_info, finish_unit_of_work
from services.chassis.metrics import DB_POOL
from services.chassis.values import parse_uuid

log = logging.getLogger(__name__)


class GreenPsycopgRequired(RuntimeError):
    pass


def assert_green_psycopg():
    """Every query would block the whole process without eventlet's wait callback."""
    if psycopg2.extensions.get_wait_callback() is None:
        raise GreenPsycopgRequired(
            "psycopg2 is not greened: call eventlet.monkey_patch() before importing "
            "the service (nameko run does; tests do it in the root conftest.py)"
        )


# Text, not the dialect's insert(): SQLAlchemy never caches the compiled form of
# a PostgreSQL INSERT ... ON CONFLICT (its insert construct is marked uncacheable),
# so the inbox row, written by every event handler, was compiled anew each time.
_CLAIM_EVENT = text(
    f"INSERT INTO {INBOX_TABLE} (event_id, consumer, event_type)"
    " VALUES (:event_id, :consumer, :event_type)"
    " ON CONFLICT DO NOTHING RETURNING event_id"
).bindparams(bindparam("event_id", type_=Uuid))


class UnitOfWork(DatabaseWrapper):
    """What a service method sees as ``self.db``: ``.session`` and ``.on_commit()``."""

    def __init__(self, Session, inbox=None):
        super().__init__(Session)
        self._after_commit = []
        self.completed = False
        self._inbox = inbox

    def claim_event(self, event, consumer):
        """Record ``event`` as handled by ``consumer`` in this unit of work.

        False if it was handled already (committed by an earlier delivery). A
        concurrent delivery of the same event waits here for the first one's
        transaction, then sees its outcome."""
        if self._inbox is None:
            raise RuntimeError("a service with a database and handlers needs event_tables(Base)")
        event_id = parse_uuid(event.get("event_id"))
        if event_id is None:
            raise MalformedEvent(f"event_id is not a UUID: {str(event.get('event_id'))[:100]}")
        values = {
            "event_id": event_id,
            "consumer": consumer,
            "event_type": str(event.get("type"))[:150],
        }
        return self.session.execute(_CLAIM_EVENT, values).first() is not None

    def on_commit(self, callback):
        self._after_commit.append(callback)

    def finish(self, exc_info):
        """Commit or roll back once; return the exc_info the caller should see."""
        if self.completed:
            return exc_info
        self.completed = True
        session = self._worker_session
        if session is None:
            return exc_info
        if exc_info is not None:
            try:
                session.rollback()
            except Exception:  # the connection may be the thing that failed
                log.warning("rollback failed", exc_info=True)
            return exc_info
        try:
            session.commit()
        except Exception:
            session.rollback()
            log.exception("commit failed")
            return as_exc_info(Unavailable("the change could not be saved, try again"))
        for callback in self._after_commit:
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed")
        return None


class Database(_Database):
    """``db = Database(Base)``: the service's own database from config ``DB_URIS``."""

    completion_order = 100

    def __init__(self, declarative_base, **kwargs):
        kwargs.setdefault("session_options", {"expire_on_commit": False})
        super().__init__(declarative_base, **kwargs)

    def setup(self):
        assert_green_psycopg()
        postgres = self.container.config["AGORA"]["postgres"]
        self.engine_options = {
            "pool_size": postgres["pool_size"],
            "max_overflow": postgres["pool_size"],
            "pool_pre_ping": True,
            "connect_args": {"connect_timeout": postgres["connect_timeout"]},
            **self.engine_options,
        }
        super().setup()
        # agora_db_pool_connections reads the pool when Prometheus scrapes.
        self._pool_engine = self.engine
        DB_POOL.add(self.container.service_name, self._pool_engine)

    def stop(self):
        DB_POOL.remove(self.container.service_name, self._pool_engine)
        super().stop()

    def kill(self):
        DB_POOL.remove(self.container.service_name, self._pool_engine)
        super().kill()

    def get_dependency(self, worker_ctx):
        unit = UnitOfWork(self.Session, getattr(self.declarative_base, "agora_inbox", None))
        self.dbs[worker_ctx] = unit
        return unit

    def complete(self, worker_ctx, exc_info):
        unit = self.dbs.get(worker_ctx)
        return unit.finish(exc_info) if unit is not None else exc_info

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        # Plain Nameko entrypoints (timers, say) finish here instead; the whole
        # unit of work, in order, so events still follow the commit.
        finish_unit_of_work(worker_ctx, exc_info)

    def health(self):
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return "ok"
        except (DBAPIError, OperationalError) as exc:
            return f"error: {exc.__class__.__name__}"


def is_unique_violation(exc, constraint=None):
    """True if ``exc`` is a unique-constraint violation (optionally of ``constraint``)."""
    if not isinstance(exc, IntegrityError):
        return False
    orig = getattr(exc, "orig", None)
    if getattr(orig, "pgcode", None) != "23505":
        return False
    if constraint is None:
        return True
    return getattr(getattr(orig, "diag", None), "constraint_name", None) == constraint
