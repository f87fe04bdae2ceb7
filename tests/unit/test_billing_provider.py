"""The payment provider without a ledger: test tokens, timeouts and retries.

What the simulated processor records (tok_visa, refunds, idempotency) needs its
ledger in PostgreSQL and is covered in tests/integration/test_billing_service.py.
"""

import time

import eventlet
import pytest

from services.billing import provider
from services.billing.domain import Money
from services.billing.provider import (
    CardDeclined,
    Charge,
    ProcessingError,
    Processor,
    ProviderError,
    ProviderTimeout,
    SimulatedProcessor,
    call_with_timeout,
    with_retries,
)

pytestmark = pytest.mark.unit

EUR = Money(1000, "EUR")


def processor(hang=5.0, sleep=eventlet.sleep):
    # No engine: the tokens below never reach the ledger.
    return SimulatedProcessor(None, hang=hang, sleep=sleep)


class Script(provider.PaymentProvider):
    """A provider that answers from a list: an exception to raise or a value to return."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def _next(self, *args):
        self.calls.append(args)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def charge(self, amount, token, idempotency_key):
        return self._next(amount, token, idempotency_key)

    def refund(self, charge_id, amount, idempotency_key):
        return self._next(charge_id, amount, idempotency_key)


# --- errors ----------------------------------------------------------------------


def test_error_kinds():
    assert not CardDeclined().transient and CardDeclined().code == "card_declined"
    assert ProcessingError().transient and ProcessingError().code == "processing_error"
    assert ProviderTimeout().transient and ProviderTimeout().code == "timeout"
    assert not ProviderError().transient
    assert str(CardDeclined("no", "invalid_token")) == "no (invalid_token)"


def test_the_interface_is_abstract():
    with pytest.raises(TypeError):
        provider.PaymentProvider()


# --- test tokens ---------------------------------------------------------------------


def test_declined_token():
    with pytest.raises(CardDeclined) as info:
        processor().charge(EUR, "tok_chargeDeclined", "k")
    assert info.value.decline_code == "card_declined"


@pytest.mark.parametrize("token", ["tok_unknown", "", "TOK_VISA", "tok_visa "])
def test_unknown_tokens_decline_as_invalid_token(token):
    with pytest.raises(CardDeclined) as info:
        processor().charge(EUR, token, "k")
    assert info.value.decline_code == "invalid_token"


def test_processing_error_token_always_fails_transiently():
    sim = processor()
    for _ in range(3):
        with pytest.raises(ProcessingError):
            sim.charge(EUR, "tok_processingError", "k")


def test_timeout_token_hangs_then_times_out():
    slept = []
    with pytest.raises(ProviderTimeout):
        processor(hang=7.5, sleep=slept.append).charge(EUR, "tok_timeout", "k")
    assert slept == [7.5]


def test_the_callers_timeout_ends_a_hanging_charge():
    hang = 60.0
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        call_with_timeout(0.05, processor(hang=hang).charge, EUR, "tok_timeout", "k")
    assert time.monotonic() - started < hang / 2  # ended by the timeout, not the hang


def test_call_with_timeout_returns_what_the_call_returns():
    assert call_with_timeout(1.0, lambda a, b=0: a + b, 1, b=2) == 3


# --- retries ---------------------------------------------------------------------------


def test_success_first_time_is_one_attempt():
    script = Script(Charge("ch_1", "succeeded"))
    slept = []
    outcome = with_retries(lambda: script.charge(EUR, "t", "k"), 3, 0.5, 1.0, slept.append)
    assert outcome.ok and outcome.result.id == "ch_1" and outcome.attempts == 1
    assert slept == []


def test_transient_failures_are_retried_with_doubling_backoff():
    script = Script(ProcessingError("busy"), ProviderTimeout("slow"), Charge("ch_2", "succeeded"))
    slept = []
    outcome = with_retries(lambda: script.charge(EUR, "t", "k"), 3, 0.5, 1.0, slept.append)
    assert outcome.ok and outcome.attempts == 3
    assert slept == [0.5, 1.0]
    # Every attempt carries the same idempotency key.
    assert {call[2] for call in script.calls} == {"k"}


def test_transient_failures_give_up_after_the_attempts():
    script = Script(*[ProcessingError(f"busy {n}") for n in range(4)])
    slept = []
    outcome = with_retries(lambda: script.charge(EUR, "t", "k"), 4, 0.1, 1.0, slept.append)
    assert not outcome.ok and outcome.attempts == 4
    assert str(outcome.error) == "busy 3"
    assert slept == [0.1, 0.2, 0.4]


def test_permanent_failures_are_not_retried():
    for error in (CardDeclined(), ProviderError("bad key")):
        script = Script(error, Charge("never", "succeeded"))
        slept = []
        outcome = with_retries(lambda s=script: s.charge(EUR, "t", "k"), 3, 0.1, 1.0, slept.append)
        assert outcome.error is error and outcome.attempts == 1 and slept == []


def test_other_exceptions_propagate():
    script = Script(RuntimeError("ledger down"))
    with pytest.raises(RuntimeError):
        with_retries(lambda: script.charge(EUR, "t", "k"), 3, 0.1, 1.0, lambda s: None)


def test_timeouts_are_retried_then_reported():
    slept = []
    sim = processor(hang=5.0)
    outcome = with_retries(lambda: sim.charge(EUR, "tok_timeout", "k"), 2, 0.0, 0.05, slept.append)
    assert not outcome.ok and isinstance(outcome.error, ProviderTimeout)
    assert outcome.attempts == 2 and slept == [0.0]


def test_processor_applies_the_configured_settings():
    settings = {"provider_timeout": 1.0, "charge_attempts": 3, "charge_backoff": 0.25}
    slept = []
    proc = Processor(processor(), settings, sleep=slept.append)
    outcome = proc.charge(EUR, "tok_processingError", "pay-1")
    assert not outcome.ok and outcome.attempts == 3 and slept == [0.25, 0.5]
    declined = proc.charge(EUR, "tok_chargeDeclined", "pay-2")
    assert declined.attempts == 1 and declined.error.code == "card_declined"


def test_processor_refund_can_take_a_single_attempt():
    settings = {"provider_timeout": 1.0, "charge_attempts": 3, "charge_backoff": 0.25}
    script = Script(ProcessingError("busy"), ProcessingError("busy"))
    slept = []
    outcome = Processor(script, settings, sleep=slept.append).refund("ch", EUR, "r", attempts=1)
    assert not outcome.ok and outcome.attempts == 1 and slept == []
