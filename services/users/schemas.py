"""Contracts of the users service as JSON Schema (draft 2020-12).

Plain dicts, importable without Nameko or SQLAlchemy: the gateway validates
request bodies with the same definitions the service checks its RPC
arguments against.
"""

from services.chassis.schemas import EMAIL_PATTERN, UUID_PATTERN, obj

ROLES = ("customer", "admin")

_TIMESTAMP = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$",
    "x-message": "must be an ISO-8601 UTC timestamp ending in Z",
}

EMAIL = {
    "type": "string",
    "maxLength": 254,
    "pattern": EMAIL_PATTERN,
    "x-message": "must be a valid email address",
}
PASSWORD = {"type": "string", "minLength": 8, "maxLength": 128}
NAME = {"type": "string", "minLength": 1, "maxLength": 200}
# E.164: a plus, the country code and the number, digits only (at most 15).
# Where notifications send order text messages, when an SMS provider is on.
PHONE = {
    "type": "string",
    "pattern": r"^\+[1-9][0-9]{6,14}$",
    "x-message": "must be an E.164 phone number: + and 7 to 15 digits, such as +4915112345678",
}

_ADDRESS_PROPERTIES = {
    "line1": {"type": "string", "minLength": 1, "maxLength": 200},
    "line2": {"type": ["string", "null"], "maxLength": 200},
    "city": {"type": "string", "minLength": 1, "maxLength": 100},
    "postal_code": {"type": "string", "minLength": 1, "maxLength": 20},
    "country": {
        "type": "string",
        "pattern": "^[A-Z]{2}$",
        "x-message": "must be an ISO 3166-1 alpha-2 code such as DE",
    },
}
_ADDRESS_REQUIRED = ("line1", "city", "postal_code", "country")

# A postal address; ``null`` clears it. ``required``/``properties`` only apply
# to objects, so one schema (not anyOf) keeps the errors field by field.
ADDRESS = obj(_ADDRESS_PROPERTIES, _ADDRESS_REQUIRED, type=["object", "null"])

REGISTER_REQUEST = obj(
    {"email": EMAIL, "password": PASSWORD, "name": NAME, "phone": PHONE},
    required=("email", "password"),
)

# ``"phone": null`` removes the phone number (and with it, text messages).
PROFILE_UPDATE = obj(
    {"name": NAME, "address": ADDRESS, "phone": {**PHONE, "type": ["string", "null"]}},
    minProperties=1,
)

SET_ROLES_REQUEST = obj(
    {"roles": {"type": "array", "items": {"type": "string", "enum": list(ROLES)}}},
    required=("roles",),
)

USER = obj(
    {
        "id": {"type": "string", "pattern": UUID_PATTERN},
        "email": {"type": "string", "maxLength": 254},
        "name": {"type": ["string", "null"]},
        "phone": {"type": ["string", "null"]},
        "address": {
            **obj(
                {**_ADDRESS_PROPERTIES, "line2": {"type": ["string", "null"]}},
                required=tuple(_ADDRESS_PROPERTIES),
            ),
            "type": ["object", "null"],
        },
        "roles": {"type": "array", "items": {"type": "string", "enum": list(ROLES)}},
        # Proven by the link mailed at registration; until then nothing else is mailed.
        "email_verified": {"type": "boolean"},
        # Proven by the code texted when the phone was set; changing it un-verifies it.
        "phone_verified": {"type": "boolean"},
        "created_at": _TIMESTAMP,
        "updated_at": _TIMESTAMP,
    },
    required=(
        "id",
        "email",
        "name",
        "phone",
        "address",
        "roles",
        "email_verified",
        "phone_verified",
        "created_at",
        "updated_at",
    ),
)

# The token of an email verification link (``GET /v1/users/verify-email?token=``).
EMAIL_TOKEN = {
    "type": "string",
    "minLength": 16,
    "maxLength": 128,
    "pattern": "^[A-Za-z0-9_-]+$",
    "x-message": "must be the token of a verification link",
}
EMAIL_VERIFICATION_REQUEST = obj({"token": EMAIL_TOKEN}, required=("token",))
# What confirming a link answers: no profile data, only what the link proved.
EMAIL_VERIFIED = obj(
    {"email": {"type": "string", "maxLength": 254}, "email_verified": {"const": True}},
    required=("email", "email_verified"),
)

# The six-digit code texted to a new phone number.
PHONE_VERIFICATION_REQUEST = obj(
    {
        "code": {
            "type": "string",
            "pattern": "^[0-9]{6}$",
            "x-message": "must be the six-digit code sent by text message",
        }
    },
    required=("code",),
)

# issue_verification (internal, for notifications): the secret to send, once.
VERIFICATION_CHANNEL = {"type": "string", "enum": ["email", "phone"]}
ISSUED_VERIFICATION = obj(
    {
        "channel": VERIFICATION_CHANNEL,
        "recipient": {"type": "string"},
        "name": {"type": ["string", "null"]},
        "secret": {"type": "string"},
        "expires_at": _TIMESTAMP,
    },
    required=("channel", "recipient", "name", "secret", "expires_at"),
)

# ``get_roles(user_id)``: what the auth service asks before it grants scopes
# (identity facts come from their owner, never from the token's requester).
USER_ROLES = obj(
    {
        "id": {"type": "string", "pattern": UUID_PATTERN},
        "roles": {"type": "array", "items": {"type": "string", "enum": list(ROLES)}},
    },
    required=("id", "roles"),
)

__all__ = [
    "USER",
    "USER_ROLES",
    "REGISTER_REQUEST",
    "PROFILE_UPDATE",
    "SET_ROLES_REQUEST",
    "EMAIL_VERIFICATION_REQUEST",
    "EMAIL_VERIFIED",
    "PHONE_VERIFICATION_REQUEST",
    "ISSUED_VERIFICATION",
    "ADDRESS",
    "PHONE",
    "ROLES",
]

_ID = {"type": "string", "pattern": UUID_PATTERN}

# Events this service emits (its part of docs/asyncapi.yaml).
# RPC methods a caller may send again after a timeout or a transient failure
# (services/chassis/service_client.py retries only these): reads, which change
# nothing. Any other method may have run when its caller gave up waiting.
IDEMPOTENT_RPC = frozenset({"get_roles", "get_user", "health"})

EVENTS = {
    "user_registered": {
        "version": 1,
        "summary": "A customer account was created",
        "payload": obj({"user_id": _ID, "email": EMAIL}, ("user_id", "email")),
    },
    "profile_updated": {
        "version": 1,
        "summary": "A user changed their name, phone number or address, "
        "or verified their email address or phone number",
        "payload": obj({"user_id": _ID}, ("user_id",)),
    },
    # No secret travels in these: notifications asks users for it over RPC
    # (issue_verification), so it is never in an outbox, a dead letter or
    # in front of an outside consumer of the public events.
    "email_verification_requested": {
        "version": 1,
        "summary": "A user's email address needs proving: notifications mails them a link",
        "payload": obj({"user_id": _ID}, ("user_id",)),
    },
    "phone_verification_requested": {
        "version": 1,
        "summary": "A user's phone number needs proving: notifications texts them a code",
        "payload": obj({"user_id": _ID}, ("user_id",)),
    },
}
