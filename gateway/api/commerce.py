"""Request helpers shared by the commerce routes (orders, inventory, payments,
notifications): the caller's user id, UUID path ids and the ``Idempotency-Key``
header. Query strings: ``gateway.api.query_args``."""

from flask import request

from gateway.auth.principal import current_principal
from gateway.errors import ApiError
from services.chassis.schemas import UUID_PATTERN, obj, pattern_matches

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def user_id_or_403():
    """The caller's user id; 403 for a client acting for itself (client_credentials).

    Orders, payments and notifications belong to users: a token without a user
    has none, and saying so beats an empty list or a puzzling 404."""
    principal = current_principal()
    if principal is None or principal.user_id is None:
        raise ApiError(
            403,
            "user_required",
            "this resource belongs to a user: use a token issued to a user, "
            "not one a client obtained for itself (client_credentials)",
        )
    return principal.user_id


def uuid_or_404(value, what):
    """``value`` if it is a canonical (lower-case) UUID; otherwise ``what`` is not found."""
    if not pattern_matches(UUID_PATTERN, value):
        raise ApiError(404, "not_found", f"{what} not found")
    return value


def idempotency_key(schema, required):
    """The ``Idempotency-Key`` header checked against ``schema`` (the service's own
    contract for the key); None when absent and not ``required``."""
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None or value == "":
        if not required:
            return None
        raise ApiError(
            400,
            "validation_error",
            f"the {IDEMPOTENCY_HEADER} header is required: send a unique key per request "
            "(e.g. a UUID) and the same key when you retry",
            {IDEMPOTENCY_HEADER: "is required"},
        )
    if not pattern_matches(schema["pattern"], value):
        raise ApiError(
            400,
            "validation_error",
            f"invalid {IDEMPOTENCY_HEADER} header",
            {IDEMPOTENCY_HEADER: schema.get("x-message", "has an invalid format")},
        )
    return value


def without_user_id(list_query):
    """A service's list arguments (``user_id`` and the query parameters) as the
    query string schema: the same properties, but the user id comes from the token."""
    properties = {k: v for k, v in list_query["properties"].items() if k != "user_id"}
    required = [name for name in list_query.get("required", ()) if name != "user_id"]
    return obj(properties, required=required)
