"""An event handler waiting for another service's outage does not spend its
attempts, for events.outage_retry_window seconds (services/chassis/deadletter.py)."""

import pytest

from services.chassis.deadletter import OUTAGE_RETRIES, OUTAGE_SINCE, RetryPublisher
from services.chassis.errors import NotFound, ServiceTimeout, ServiceUnavailable, Unavailable

pytestmark = pytest.mark.unit

SETTINGS = {"max_attempts": 3, "backoff_base": 0.2, "backoff_max": 1.0, "outage_retry_window": 30}


def router(**settings):
    # No broker is contacted until something is published.
    return RetryPublisher("amqp://unused", "billing", {**SETTINGS, **settings})


@pytest.mark.parametrize(
    "exc", [ServiceUnavailable("circuit open"), ServiceTimeout("slow"), Unavailable("db down")]
)
def test_an_outage_is_retried_without_spending_attempts_within_the_window(exc):
    headers = {}
    assert router()._outage_retry(headers, exc, now=1000) == 1
    assert headers == {OUTAGE_SINCE: 1000, OUTAGE_RETRIES: 1}
    assert router()._outage_retry(headers, exc, now=1029) == 2
    assert headers == {OUTAGE_SINCE: 1000, OUTAGE_RETRIES: 2}  # since the first failure


def test_past_the_window_an_outage_counts_as_any_failure():
    headers = {OUTAGE_SINCE: 1000, OUTAGE_RETRIES: 7}
    assert router()._outage_retry(headers, ServiceUnavailable("still down"), now=1030) is None


def test_other_failures_are_never_outages():
    for exc in (NotFound("gone"), ValueError("a bug")):
        headers = {}
        assert router()._outage_retry(headers, exc, now=1000) is None
        assert headers == {}


def test_a_zero_window_turns_it_off():
    assert router(outage_retry_window=0)._outage_retry({}, ServiceTimeout("x"), now=5) is None


def test_the_delay_grows_with_the_outage_retries_up_to_the_cap():
    names = [router()._delay_queue("q", n).name for n in (1, 2, 3, 4, 10)]
    assert names == ["q.backoff-200", "q.backoff-400", "q.backoff-800", "q.backoff-1000"] + [
        "q.backoff-1000"
    ]


def test_the_services_own_database_down_is_an_outage_too():
    headers = {}
    assert router()._outage_retry(headers, OSError("connection refused"), True, now=9) == 1
