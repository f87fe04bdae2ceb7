"""The payment provider billing charges and refunds through.

* ``PaymentProvider``: the interface. ``charge(amount, token, idempotency_key)``
  returns a ``Charge``; ``refund(charge_id, amount, idempotency_key)`` a
  ``ProviderRefund``. The same idempotency key never charges (or refunds) twice:
  the provider answers with what it did the first time. Errors are
  ``CardDeclined`` (permanent), ``ProcessingError`` and ``ProviderTimeout``
  (transient: worth another try); any other ``ProviderError`` is permanent.
* ``SimulatedProcessor``: the built-in provider (config ``provider: simulated``).
  It honours test tokens:

  ===================== ===============================================================
  ``tok_visa``          succeeds
  ``tok_chargeDeclined`` declines: ``CardDeclined``, decline code ``card_declined``
  ``tok_processingError`` always raises ``ProcessingError`` (every attempt fails)
  ``tok_timeout``       never answers in time: sleeps longer than ``provider_timeout``
  any other token       declines: ``CardDeclined``, decline code ``invalid_token`` (a
                        token the processor does not know is a permanent refusal, not
                        something a retry could fix)
  ===================== ===============================================================

  It keeps its own ledger, ``simulated_charges`` and ``simulated_refunds``, in
  billing's database but written in its own short transactions, as an outside
  processor would: a charge recorded there stays even if billing's transaction
  rolls back, and the same idempotency key finds it again instead of charging
  twice. Declines and errors leave no trace in the ledger.
* ``with_retries`` and ``call_with_timeout``: each provider call runs under
  ``eventlet.Timeout(provider_timeout)`` (expiry is a ``ProviderTimeout``), and
  transient failures are retried ``charge_attempts`` times with
  ``charge_backoff * 2^n`` seconds between attempts.
* ``PaymentProcessor``: the Nameko dependency a service uses as ``self.processor``.
"""

import abc
import logging
import uuid
from dataclasses import dataclass
from typing import NamedTuple

import eventlet
import sqlalchemy as sa
from nameko.extensions import DependencyProvider
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.billing import domain

log = logging.getLogger(__name__)

TOKEN_VISA = "tok_visa"
TOKEN_DECLINED = "tok_chargeDeclined"
TOKEN_PROCESSING_ERROR = "tok_processingError"
TOKEN_TIMEOUT = "tok_timeout"
TEST_TOKENS = (TOKEN_VISA, TOKEN_DECLINED, TOKEN_PROCESSING_ERROR, TOKEN_TIMEOUT)
# Decline codes of CardDeclined.
DECLINE_CARD = "card_declined"
DECLINE_INVALID_TOKEN = "invalid_token"


class Charge(NamedTuple):
    id: str
    status: str  # "succeeded"


class ProviderRefund(NamedTuple):
    id: str


# --- errors --------------------------------------------------------------------


class ProviderError(Exception):
    """The provider did not do what was asked. ``code`` is payment_failed's code."""

    code = domain.PROCESSING_ERROR
    transient = False


class CardDeclined(ProviderError):
    """Permanent: the card (or token) was refused; ``decline_code`` says why."""

    code = domain.CARD_DECLINED

    def __init__(self, message="the card was declined", decline_code=DECLINE_CARD):
        super().__init__(message)
        self.decline_code = decline_code

    def __str__(self):
        return f"{self.args[0]} ({self.decline_code})"


class ProcessingError(ProviderError):
    """Transient: the provider failed to process the request; another try may work."""

    code = domain.PROCESSING_ERROR
    transient = True


class ProviderTimeout(ProviderError):
    """Transient: no answer within the timeout (the outcome is unknown)."""

    code = domain.TIMEOUT
    transient = True


class PaymentProvider(abc.ABC):
    @abc.abstractmethod
    def charge(self, amount, token, idempotency_key):
        """Charge ``amount`` (``domain.Money``) to ``token``; a ``Charge`` or ProviderError."""

    @abc.abstractmethod
    def refund(self, charge_id, amount, idempotency_key):
        """Give ``amount`` of a charge back; a ``ProviderRefund`` or ProviderError."""

    def close(self):  # noqa: B027 (optional: most providers hold nothing)
        """Release what the provider holds (connections)."""


# --- the simulated processor -------------------------------------------------------

LEDGER = sa.MetaData()

simulated_charges = sa.Table(
    "simulated_charges",
    LEDGER,
    sa.Column("charge_id", sa.String(100), primary_key=True),
    sa.Column("idempotency_key", sa.String(300), nullable=False, unique=True),
    sa.Column("amount", sa.BigInteger(), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("token", sa.String(255), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

simulated_refunds = sa.Table(
    "simulated_refunds",
    LEDGER,
    sa.Column("refund_id", sa.String(100), primary_key=True),
    sa.Column("idempotency_key", sa.String(300), nullable=False, unique=True),
    sa.Column("charge_id", sa.String(100), nullable=False),
    sa.Column("amount", sa.BigInteger(), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index("ix_simulated_refunds_charge_id", "charge_id"),
)


class SimulatedProcessor(PaymentProvider):
    """The test-token processor with its ledger in ``engine``'s database.

    ``hang`` is how long ``tok_timeout`` takes (longer than the caller waits);
    if nobody interrupts it, it then fails with ProviderTimeout itself."""

    def __init__(self, engine, hang, sleep=eventlet.sleep):
        self.engine = engine
        self.hang = hang
        self.sleep = sleep

    def charge(self, amount, token, idempotency_key):
        if token == TOKEN_DECLINED:
            raise CardDeclined("the card was declined", DECLINE_CARD)
        if token == TOKEN_PROCESSING_ERROR:
            raise ProcessingError("the processor could not process the charge")
        if token == TOKEN_TIMEOUT:
            self.sleep(self.hang)
            raise ProviderTimeout(f"no answer from the processor within {self.hang}s")
        if token != TOKEN_VISA:
            raise CardDeclined("the payment token is not recognised", DECLINE_INVALID_TOKEN)
        values = {
            "charge_id": f"ch_sim_{uuid.uuid4().hex}",
            "idempotency_key": idempotency_key,
            "amount": amount.amount,
            "currency": amount.currency,
            "token": token,
        }
        with self.engine.begin() as conn:
            inserted = conn.execute(
                pg_insert(simulated_charges)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(simulated_charges.c.charge_id)
            ).first()
            if inserted is not None:
                return Charge(inserted.charge_id, "succeeded")
            # The key was charged before: the same charge, never a second one.
            earlier = conn.execute(
                sa.select(simulated_charges).where(
                    simulated_charges.c.idempotency_key == idempotency_key
                )
            ).one()
        if (earlier.amount, earlier.currency, earlier.token) != (
            amount.amount,
            amount.currency,
            token,
        ):
            raise ProviderError("idempotency key reused with different charge parameters")
        return Charge(earlier.charge_id, "succeeded")

    def refund(self, charge_id, amount, idempotency_key):
        with self.engine.begin() as conn:
            charge = conn.execute(
                sa.select(simulated_charges)
                .where(simulated_charges.c.charge_id == charge_id)
                .with_for_update()
            ).first()
            if charge is None:
                raise ProviderError(f"no such charge: {charge_id}")
            earlier = conn.execute(
                sa.select(simulated_refunds).where(
                    simulated_refunds.c.idempotency_key == idempotency_key
                )
            ).first()
            if earlier is not None:
                if (earlier.charge_id, earlier.amount, earlier.currency) != (
                    charge_id,
                    amount.amount,
                    amount.currency,
                ):
                    raise ProviderError("idempotency key reused with different refund parameters")
                return ProviderRefund(earlier.refund_id)
            if amount.currency != charge.currency:
                raise ProviderError("the refund's currency is not the charge's")
            refunded = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(simulated_refunds.c.amount), 0)).where(
                    simulated_refunds.c.charge_id == charge_id
                )
            ).scalar_one()
            if refunded + amount.amount > charge.amount:
                raise ProviderError("the refund is more than remains of the charge")
            refund_id = f"re_sim_{uuid.uuid4().hex}"
            conn.execute(
                simulated_refunds.insert().values(
                    refund_id=refund_id,
                    idempotency_key=idempotency_key,
                    charge_id=charge_id,
                    amount=amount.amount,
                    currency=amount.currency,
                )
            )
        return ProviderRefund(refund_id)

    def close(self):
        if self.engine is not None:
            self.engine.dispose()


# --- timeouts and retries ------------------------------------------------------------


def call_with_timeout(timeout, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or ProviderTimeout if it has not returned in ``timeout`` s."""
    with eventlet.Timeout(timeout, ProviderTimeout(f"no answer within {timeout}s")):
        return fn(*args, **kwargs)


@dataclass
class Attempted:
    """How a provider call ended: its ``result`` or the last ``error``, after ``attempts``."""

    result: object
    error: ProviderError | None
    attempts: int

    @property
    def ok(self):
        return self.error is None


def with_retries(call, attempts, backoff, timeout, sleep=eventlet.sleep):
    """Run ``call()`` under ``timeout`` up to ``attempts`` times while it fails transiently,
    waiting ``backoff * 2^n`` seconds after failure n; never raises a ProviderError.

    Anything that is not a ProviderError (a bug, the ledger's database down)
    propagates at once: the caller's transaction rolls back, and a retry later
    finds the provider's idempotency record."""
    delays = domain.backoff_schedule(backoff, attempts)
    for n in range(attempts):
        try:
            return Attempted(call_with_timeout(timeout, call), None, n + 1)
        except ProviderError as exc:
            if not exc.transient or n + 1 >= attempts:
                return Attempted(None, exc, n + 1)
            log.info("provider call failed (attempt %d of %d): %s", n + 1, attempts, exc)
            sleep(delays[n])
    raise ValueError("attempts must be at least 1")


# --- the Nameko dependency ---------------------------------------------------------


def build_simulated(container, settings):
    config = container.config
    url = config["DB_URIS"][f"{container.service_name}:Base"]
    postgres = config["AGORA"]["postgres"]
    engine = sa.create_engine(
        url,
        # Short transactions, but as many at once as the service has workers.
        pool_size=postgres["pool_size"],
        max_overflow=postgres["pool_size"],
        pool_pre_ping=True,
        connect_args={"connect_timeout": postgres["connect_timeout"]},
    )
    # Longer than the caller waits: the caller's timeout is what ends the call.
    return SimulatedProcessor(engine, hang=settings["provider_timeout"] * 2 + 1)


PROVIDERS = {"simulated": build_simulated}


class Processor:
    """What the service sees as ``self.processor``: the provider with the configured
    timeout, attempts and backoff applied."""

    def __init__(self, provider, settings, sleep=eventlet.sleep):
        self.provider = provider
        self.timeout = settings["provider_timeout"]
        self.attempts = settings["charge_attempts"]
        self.backoff = settings["charge_backoff"]
        self.sleep = sleep

    def charge(self, amount, token, idempotency_key):
        """An ``Attempted`` whose result is a ``Charge``, or the error that ended the tries."""
        return with_retries(
            lambda: self.provider.charge(amount, token, idempotency_key),
            self.attempts,
            self.backoff,
            self.timeout,
            self.sleep,
        )

    def refund(self, charge_id, amount, idempotency_key, attempts=None):
        """An ``Attempted`` whose result is a ``ProviderRefund`` (``attempts``: default as
        charges; an RPC caller waiting for the answer may want 1)."""
        return with_retries(
            lambda: self.provider.refund(charge_id, amount, idempotency_key),
            attempts or self.attempts,
            self.backoff,
            self.timeout,
            self.sleep,
        )


class PaymentProcessor(DependencyProvider):
    """``processor = PaymentProcessor()``: the provider named by ``services.<name>.provider``."""

    def setup(self):
        settings = self.container.config["AGORA"]["services"][self.container.service_name]
        self.settings = settings
        self.provider = PROVIDERS[settings["provider"]](self.container, settings)

    def stop(self):
        self.provider.close()

    kill = stop

    def get_dependency(self, worker_ctx):
        return Processor(self.provider, self.settings)
