"""The users service's pure rules: no brokers, no database."""

import datetime
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from jsonschema import Draft202012Validator

from services.chassis.errors import ValidationError
from services.chassis.schemas import validate
from services.users import domain
from services.users.schemas import PROFILE_UPDATE, REGISTER_REQUEST, USER

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


def details_of(fn, *args):
    with pytest.raises(ValidationError) as caught:
        fn(*args)
    return caught.value.details


# --- email -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, stored",
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("  bob@example.com\t", "bob@example.com"),
        ("carol@example.com", "carol@example.com"),
    ],
)
def test_normalize_email(raw, stored):
    assert domain.normalize_email(raw) == stored


def test_login_email_tolerates_non_strings():
    assert domain.login_email(" X@Y.io ") == "x@y.io"
    assert domain.login_email(None) is None
    assert domain.login_email(42) is None


def test_registration_normalizes_email_and_keeps_password():
    data = domain.registration({"email": "Dana@Example.com", "password": "s3cret-pass"})
    assert data == {
        "email": "dana@example.com",
        "password": "s3cret-pass",
        "name": None,
        "phone": None,
    }


def test_registration_keeps_an_e164_phone():
    data = domain.registration({"email": "d@x.io", "password": "longenough", "phone": "+3519123"})
    assert data["phone"] == "+3519123"


PHONE_MESSAGE = "must be an E.164 phone number: + and 7 to 15 digits, such as +4915112345678"


@pytest.mark.parametrize(
    "phone",
    ["4915112345678", "+49 151 1234 5678", "+0151123456", "+123456", "+1234567890123456", "", 491],
)
def test_a_phone_that_is_not_e164_is_refused_by_name(phone):
    details = details_of(domain.profile_changes, {"phone": phone})
    if isinstance(phone, str):
        assert details == {"phone": PHONE_MESSAGE}
    else:
        assert details == {"phone": "must be of type string or null"}
    registration = {"email": "d@x.io", "password": "longenough", "phone": phone}
    assert set(details_of(domain.registration, registration)) == {"phone"}


def test_profile_update_sets_and_clears_the_phone():
    assert domain.profile_changes({"phone": "+4915112345678"}) == {"phone": "+4915112345678"}
    assert domain.profile_changes({"phone": None}) == {"phone": None}
    assert "phone" in details_of(
        domain.registration, {"email": "d@x.io", "password": "p" * 8, "phone": None}
    )


# --- schema validation names the fields --------------------------------------


def test_registration_errors_name_each_field():
    details = details_of(
        domain.registration,
        {"email": "not-an-email", "password": "short", "name": "", "admin": True},
    )
    assert details == {
        "email": "must be a valid email address",
        "password": "must be at least 8 characters",
        "name": "must be at least 1 characters",
        "admin": "is not an allowed field",
    }


def test_registration_requires_email_and_password():
    details = details_of(domain.registration, {})
    assert set(details) == {"email", "password"}
    assert details["email"] == "is required"


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"email": "a" * 250 + "@x.io", "password": "longenough"}, "email"),
        ({"email": "a@x.io", "password": "p" * 129}, "password"),
        ({"email": "a@x.io", "password": "longenough", "name": "n" * 201}, "name"),
        ({"email": 5, "password": "longenough"}, "email"),
    ],
)
def test_registration_limits(payload, field):
    assert field in details_of(domain.registration, payload)


def test_registration_rejects_a_non_object():
    assert details_of(domain.registration, ["a@x.io"]) == {"body": "must be of type object"}


def test_profile_update_needs_a_change():
    assert details_of(domain.profile_changes, {}) == {"body": "must not be empty"}


def test_profile_update_address_errors_name_nested_fields():
    details = details_of(
        domain.profile_changes,
        {"address": {"line1": "", "city": "Berlin", "postal_code": "1" * 21, "country": "de"}},
    )
    assert details == {
        "address.line1": "must be at least 1 characters",
        "address.postal_code": "must be at most 20 characters",
        "address.country": "must be an ISO 3166-1 alpha-2 code such as DE",
    }
    missing = details_of(domain.profile_changes, {"address": {"line1": "Main St 1"}})
    assert missing == {
        "address.city": "is required",
        "address.postal_code": "is required",
        "address.country": "is required",
    }


def test_profile_update_fills_address_and_allows_clearing():
    changes = domain.profile_changes(
        {
            "name": "Eve",
            "address": {
                "line1": "1 Road",
                "city": "Paris",
                "postal_code": "75001",
                "country": "FR",
            },
        }
    )
    assert changes["address"] == {
        "line1": "1 Road",
        "line2": None,
        "city": "Paris",
        "postal_code": "75001",
        "country": "FR",
    }
    assert domain.profile_changes({"address": None}) == {"address": None}
    assert "email" in details_of(domain.profile_changes, {"email": "x@y.io"})


@pytest.mark.parametrize("schema", [USER, REGISTER_REQUEST, PROFILE_UPDATE])
def test_schemas_are_closed_valid_json_schema(schema):
    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False


def test_schemas_import_without_framework_side_effects():
    # The gateway imports them: no SQLAlchemy, eventlet or Nameko machinery.
    code = (
        "import sys, services.users.schemas; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'eventlet', 'kombu', 'argon2') or m.startswith('nameko.rpc')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


# --- roles --------------------------------------------------------------------


def test_validate_roles_deduplicates_and_sorts():
    assert domain.validate_roles(["customer", "admin", "customer"]) == ["admin", "customer"]
    assert domain.validate_roles([]) == []


@pytest.mark.parametrize(
    "roles, field",
    [
        (["customer", "root"], "roles.1"),
        ("admin", "roles"),
        ([1], "roles.0"),
        (None, "roles"),
    ],
)
def test_validate_roles_rejects_unknown(roles, field):
    assert field in details_of(domain.validate_roles, roles)


# --- user serialization -------------------------------------------------------


def make_user(**overrides):
    moment = datetime.datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=datetime.UTC)
    fields = {
        "id": uuid.uuid4(),
        "email": "frank@example.com",
        "password_hash": "$argon2id$secret",
        "name": "Frank",
        "phone": None,
        "address": None,
        "roles": ["customer"],
        "email_verified_at": None,
        "phone_verified_at": None,
        "created_at": moment,
        "updated_at": moment,
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


def test_serialize_user_hides_the_hash_and_matches_the_schema():
    user = make_user()
    data = domain.serialize_user(user)
    assert "password_hash" not in data
    assert "$argon2id$secret" not in repr(data)
    assert data == {
        "id": str(user.id),
        "email": "frank@example.com",
        "name": "Frank",
        "phone": None,
        "address": None,
        "roles": ["customer"],
        "email_verified": False,
        "phone_verified": False,
        "created_at": "2024-05-01T12:30:00.123456Z",
        "updated_at": "2024-05-01T12:30:00.123456Z",
    }
    validate(USER, data)


def test_serialize_user_completes_address_and_converts_to_utc():
    offset = datetime.timezone(datetime.timedelta(hours=2))
    user = make_user(
        address={"line1": "1 Road", "city": "Oslo", "postal_code": "0150", "country": "NO"},
        updated_at=datetime.datetime(2024, 5, 1, 14, 0, tzinfo=offset),
    )
    data = domain.serialize_user(user)
    assert data["address"]["line2"] is None
    assert data["updated_at"] == "2024-05-01T12:00:00.000000Z"
    validate(USER, data)


def test_serialize_user_says_which_contacts_are_verified():
    moment = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
    verified = domain.serialize_user(make_user(email_verified_at=moment, phone="+4915112345678"))
    assert verified["email_verified"] is True and verified["phone_verified"] is False
    both = make_user(phone="+4915112345678", email_verified_at=moment, phone_verified_at=moment)
    assert domain.serialize_user(both)["phone_verified"] is True
    # A stale stamp without a phone proves nothing.
    assert domain.serialize_user(make_user(phone_verified_at=moment))["phone_verified"] is False
    validate(USER, verified)


def test_parse_user_id():
    value = uuid.uuid4()
    assert domain.parse_user_id(str(value)) == value
    assert domain.parse_user_id("nope") is None
    assert domain.parse_user_id(None) is None
    assert domain.parse_user_id(7) is None


# --- passwords ----------------------------------------------------------------


def test_passwords_hash_verify_and_rehash():
    passwords = domain.Passwords.from_config(CHEAP)
    hashed = passwords.hash("correct horse")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify(hashed, "correct horse")
    assert not passwords.verify(hashed, "wrong horse")
    assert not passwords.verify("not a hash", "correct horse")
    assert not passwords.verify(hashed, None)
    assert not passwords.verify_dummy("correct horse")
    assert not passwords.needs_rehash(hashed)
    stronger = domain.Passwords(time_cost=2, memory_cost=16, parallelism=1)
    assert stronger.needs_rehash(hashed)


def test_passwords_run_through_the_offload_hook():
    calls = []

    def offload(fn, *args):
        calls.append(fn.__name__)
        return fn(*args)

    passwords = domain.Passwords.from_config(CHEAP, offload=offload)
    passwords.verify(passwords.hash("pw-123456"), "pw-123456")
    assert calls == ["hash", "hash", "verify"]  # dummy hash, hash, verify
