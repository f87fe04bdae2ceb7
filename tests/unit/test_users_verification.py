"""Contact verification rules (services.users.verification), without any broker."""

import datetime
import re

import pytest

from services.users import verification as v

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
USER = "4b1c0d5e-0000-4000-8000-000000000001"


def pending(target="+4915112345678", code="123456", attempts=1, ttl=600, channel=v.PHONE):
    return v.Pending(target, v.secret_hash(channel, code, USER), v.expiry(NOW, ttl), attempts)


def test_secrets_are_random_and_well_formed():
    codes = {v.new_phone_code() for _ in range(200)}
    assert all(re.fullmatch(r"[0-9]{6}", c) for c in codes) and len(codes) > 150
    tokens = {v.new_email_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{40,}", t) for t in tokens)


def test_only_the_hash_is_kept_and_a_code_is_bound_to_its_user():
    digest = v.secret_hash(v.PHONE, "123456", USER)
    assert "123456" not in digest and len(digest) == 64
    assert digest != v.secret_hash(v.PHONE, "123456", "another-user")
    # An email token is looked up by its hash alone: the same for any caller.
    assert v.secret_hash(v.EMAIL, "tok") == v.secret_hash(v.EMAIL, "tok", "ignored")
    assert v.secret_hash(v.EMAIL, "tok") != v.secret_hash(v.PHONE, "tok")


def test_the_right_code_in_time_verifies():
    given = v.secret_hash(v.PHONE, "123456", USER)
    assert v.verdict(pending(), given, "+4915112345678", NOW, 5) == v.OK


def test_a_wrong_code_is_wrong():
    given = v.secret_hash(v.PHONE, "654321", USER)
    assert v.verdict(pending(), given, "+4915112345678", NOW, 5) == v.WRONG


def test_a_code_expires():
    given = v.secret_hash(v.PHONE, "123456", USER)
    at_expiry = NOW + datetime.timedelta(seconds=600)
    assert v.verdict(pending(), given, "+4915112345678", at_expiry, 5) == v.EXPIRED
    just_before = at_expiry - datetime.timedelta(microseconds=1)
    assert v.verdict(pending(), given, "+4915112345678", just_before, 5) == v.OK


def test_tries_are_limited_even_for_the_right_code():
    given = v.secret_hash(v.PHONE, "123456", USER)
    assert v.verdict(pending(attempts=5), given, "+4915112345678", NOW, 5) == v.OK
    assert v.verdict(pending(attempts=6), given, "+4915112345678", NOW, 5) == v.EXHAUSTED


def test_a_code_for_an_old_number_proves_nothing():
    given = v.secret_hash(v.PHONE, "123456", USER)
    assert v.verdict(pending(), given, "+4915199999999", NOW, 5) == v.STALE
    assert v.verdict(None, given, "+4915112345678", NOW, 5) == v.NONE_PENDING


def test_every_refusal_has_a_message():
    for outcome in (v.NONE_PENDING, v.STALE, v.EXPIRED, v.EXHAUSTED, v.WRONG):
        assert v.REFUSALS[outcome]
