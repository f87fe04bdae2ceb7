"""Saga figures, read from the orders database: what happened to the orders placed
in a window (by their created_at, compared with the database's clock)."""

import time

from sqlalchemy import bindparam, text

# Statuses from which the saga still moves on its own (services/orders/domain.py).
OPEN = ("pending", "reserved", "paid", "payment_failed")

_WINDOW = "created_at >= :since AND created_at < :until"


def db_now(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT clock_timestamp()")).scalar()


def wait_for_open_sagas(engine, since, until, timeout):
    """Until no order placed in [since, until) is open, or ``timeout`` seconds;
    True when they all ended."""
    query = text(f"SELECT count(*) FROM orders WHERE {_WINDOW} AND status IN :open")
    query = query.bindparams(bindparam("open", expanding=True))
    params = {"since": since, "until": until, "open": list(OPEN)}
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            if not conn.execute(query, params).scalar():
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def figures(engine, since, until, seconds):
    """Orders placed in [since, until) over a load of ``seconds``: how many, their
    statuses, placed/s, confirmed/s (from the first placed to the last confirmed) and
    placed -> confirmed p50/p99 in ms."""
    window = {"since": since, "until": until}
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(
                text(f"SELECT status, count(*) FROM orders WHERE {_WINDOW} GROUP BY 1"),
                window,
            ).all()
        )
        first, last, p50, p99 = conn.execute(
            text(
                f"""
                WITH done AS (
                    SELECT o.created_at, min(h.at) AS confirmed_at
                    FROM orders o JOIN order_history h
                      ON h.order_id = o.id AND h.status = 'confirmed'
                    WHERE o.{_WINDOW.replace(" AND ", " AND o.")}
                    GROUP BY o.id, o.created_at)
                SELECT min(created_at), max(confirmed_at),
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY confirmed_at - created_at),
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY confirmed_at - created_at)
                FROM done
                """
            ),
            window,
        ).one()
    return summarise(statuses, seconds, first, last, p50, p99)


def summarise(statuses, seconds, first=None, last=None, p50=None, p99=None):
    placed = sum(statuses.values())
    confirmed = statuses.get("confirmed", 0)
    span = (last - first).total_seconds() if first and last else 0.0
    return {
        "placed": placed,
        "statuses": dict(sorted(statuses.items())),
        "placed_per_s": placed / seconds if seconds else None,
        "confirmed": confirmed,
        "confirmed_per_s": confirmed / span if span > 0 else None,
        "p50_ms": p50.total_seconds() * 1000 if p50 is not None else None,
        "p99_ms": p99.total_seconds() * 1000 if p99 is not None else None,
    }
