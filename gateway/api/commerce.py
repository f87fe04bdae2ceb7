"""Request helpers shared by the commerce routes (orders, inventory, payments,
notifications): the caller's user id, UUID path ids, query strings, and the
``Idempotency-Key`` header."""

import re

from flask import request

from gateway.auth.principal import current_principal
from gateway.errors import ApiError
from services.chassis.schemas import UUID_PATTERN, obj, validate

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_INTEGER = re.compile(r"-?[0-9]{1,18}")
# fullmatch, not match: "$" also matches before a final newline ("<uuid>%0A").
_UUID = re.compile(UUID_PATTERN)


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
    if not _UUID.fullmatch(value):
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
    # fullmatch, not a JSON Schema check: there "$" also matches before a final newline.
    if not re.fullmatch(schema["pattern"], value):
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


def query_args(schema):
    """The query string as a dict validated against ``schema`` (an object schema):
    each parameter at most once, integer parameters converted first."""
    query = {}
    properties = schema.get("properties", {})
    for key in request.args:
        values = request.args.getlist(key)
        if len(values) > 1:
            raise ApiError(400, "validation_error", "invalid query", {key: "must be given once"})
        value = values[0]
        if _is_integer_schema(properties.get(key)):
            # Plain ASCII digits only: int() would also take " 7", "1_0" or "٣".
            if not _INTEGER.fullmatch(value):
                raise ApiError(
                    400, "validation_error", "invalid query", {key: "must be an integer"}
                )
            value = int(value)
        query[key] = value
    return validate(schema, query, "invalid query")


def _is_integer_schema(schema):
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    return kind == "integer" or (isinstance(kind, list) and "integer" in kind)
