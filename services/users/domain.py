"""The rules of the users service, free of Nameko and of database sessions.

Validation and normalization of what callers send, the shape of a user as
the rest of the platform sees it, and password hashing (argon2id).
"""

from services.chassis.hashing import SecretHasher
from services.chassis.schemas import validate
from services.chassis.values import isoformat_utc, parse_uuid
from services.users.schemas import PROFILE_UPDATE, REGISTER_REQUEST, ROLES, SET_ROLES_REQUEST

ALLOWED_ROLES = frozenset(ROLES)
DEFAULT_ROLES = ("customer",)
ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code", "country")
MAX_PASSWORD_LENGTH = REGISTER_REQUEST["properties"]["password"]["maxLength"]


def normalize_email(email):
    """The one stored form of an address: stripped and lowercased."""
    return email.strip().lower()


def login_email(email):
    """The normalized form of an email given at login, or None if it is not a string."""
    return normalize_email(email) if isinstance(email, str) else None


def parse_user_id(user_id):
    """The UUID named by ``user_id``, or None if it is not a UUID string."""
    return parse_uuid(user_id)


def registration(payload):
    """Check a ``register`` payload; return ``{"email", "password", "name", "phone"}``
    normalized."""
    validate(REGISTER_REQUEST, payload, "invalid registration")
    return {
        "email": normalize_email(payload["email"]),
        "password": payload["password"],
        "name": payload.get("name"),
        "phone": payload.get("phone"),
    }


def profile_changes(changes):
    """Check an ``update_profile`` payload; return the changes with ``address`` complete."""
    validate(PROFILE_UPDATE, changes, "invalid profile update")
    result = dict(changes)
    if result.get("address") is not None:
        result["address"] = {field: changes["address"].get(field) for field in ADDRESS_FIELDS}
    return result


def validate_roles(roles):
    """Roles from the allowed set, duplicates dropped, sorted."""
    validate(SET_ROLES_REQUEST, {"roles": roles}, "invalid roles")
    return sorted(set(roles))


def serialize_user(user):
    """The user as every RPC returns it; the password hash never leaves the service."""
    address = user.address
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "phone": user.phone,
        "address": ({field: address.get(field) for field in ADDRESS_FIELDS} if address else None),
        "roles": list(user.roles or []),
        "email_verified": user.email_verified_at is not None,
        "phone_verified": user.phone is not None and user.phone_verified_at is not None,
        "created_at": isoformat_utc(user.created_at),
        "updated_at": isoformat_utc(user.updated_at),
    }


def serialize_roles(user):
    """``USER_ROLES``: the user's id and roles, nothing else of the profile."""
    return {"id": str(user.id), "roles": list(user.roles or [])}


class Passwords(SecretHasher):
    """argon2id for user passwords (``services.users.password_hash`` cost)."""

    max_length = MAX_PASSWORD_LENGTH
