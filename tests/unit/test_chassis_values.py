"""The shared Money value: minor units of one currency, never a float."""

import dataclasses
import re

import pytest

from services.billing import domain as billing
from services.catalog import domain as catalog
from services.chassis import values
from services.chassis.values import CURRENCY_MESSAGE, CURRENCY_PATTERN, MAX_AMOUNT, Money
from services.orders import domain as orders

pytestmark = pytest.mark.unit


def test_round_trips_through_dict():
    money = Money.from_dict({"amount": 1299, "currency": "EUR"})
    assert money == Money(1299, "EUR")
    assert money.to_dict() == {"amount": 1299, "currency": "EUR"}


@pytest.mark.parametrize("amount", [5.0, 1e3, 0.0])
def test_whole_floats_become_ints(amount):
    money = Money.from_dict({"amount": amount, "currency": "EUR"})
    assert money.amount == int(amount)
    assert type(money.amount) is int
    assert type(money.to_dict()["amount"]) is int


def test_a_fractional_float_is_refused():
    with pytest.raises(ValueError, match="integer number of minor units"):
        Money.from_dict({"amount": 1.5, "currency": "EUR"})


def test_accepts_the_bounds():
    assert Money(0, "EUR").amount == 0
    assert Money(MAX_AMOUNT, "JPY").amount == 10**9


@pytest.mark.parametrize(
    "amount, currency, message",
    [
        (-1, "EUR", "between 0 and"),
        (MAX_AMOUNT + 1, "EUR", "between 0 and"),
        (1.0, "EUR", "integer"),  # only from_dict makes whole floats ints
        (True, "EUR", "integer"),
        ("10", "EUR", "integer"),
        (None, "EUR", "integer"),
        (1, "eur", CURRENCY_MESSAGE),
        (1, "EURO", CURRENCY_MESSAGE),
        (1, "E1R", CURRENCY_MESSAGE),
        (1, "", CURRENCY_MESSAGE),
        (1, None, CURRENCY_MESSAGE),
        (1, b"EUR", CURRENCY_MESSAGE),
    ],
)
def test_refuses_bad_amounts_and_currencies(amount, currency, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Money(amount, currency)


def test_missing_keys_are_key_errors():
    with pytest.raises(KeyError):
        Money.from_dict({"amount": 1})
    with pytest.raises(KeyError):
        Money.from_dict({"currency": "EUR"})


def test_is_frozen_and_hashable():
    money = Money(1, "EUR")
    with pytest.raises(dataclasses.FrozenInstanceError):
        money.amount = 2
    assert {money, Money(1, "EUR")} == {money}
    assert Money(1, "EUR") != Money(1, "USD")


def test_the_pattern_is_what_money_checks():
    assert re.match(CURRENCY_PATTERN, "EUR")
    assert not re.match(CURRENCY_PATTERN, "eur")


def test_services_share_the_one_money_and_its_bounds():
    assert catalog.Money is billing.Money is values.Money
    for domain in (catalog, billing):
        assert domain.MAX_AMOUNT == MAX_AMOUNT
        assert domain.CURRENCY_PATTERN == CURRENCY_PATTERN
        assert domain.CURRENCY_MESSAGE == CURRENCY_MESSAGE
    assert orders.MAX_AMOUNT == MAX_AMOUNT
    assert orders.CURRENCY_PATTERN == CURRENCY_PATTERN
