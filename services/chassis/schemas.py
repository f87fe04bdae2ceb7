"""Contracts as JSON Schema (draft 2020-12): one definition validates RPC
arguments in the service, request bodies in the gateway, and (later) feeds the
OpenAPI and AsyncAPI documents."""

import re

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker

from services.chassis.errors import ValidationError

# The same set in Python and in ECMAScript (OpenAPI clients): no "@", no white
# space, no control characters (C0, DEL, C1) and no byte-order mark.
_EMAIL_PART = r"[^@\s\x00-\x1f\x7f-\x9f\ufeff]+"
EMAIL_PATTERN = rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UUID = re.compile(UUID_PATTERN)

_validators = {}


def _type_names(types):
    """``"string"`` or ``["string", "null"]`` as ``string`` / ``string or null``."""
    return " or ".join(types) if isinstance(types, list | tuple) else str(types)


def is_uuid(value):
    return isinstance(value, str) and bool(_UUID.fullmatch(value))


def obj(properties, required=(), **extra):
    """A closed object schema: unknown fields are errors."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
        **extra,
    }


def _validator(schema):
    key = id(schema)
    validator = _validators.get(key)
    if validator is None:
        Draft202012Validator.check_schema(schema)
        validator = Draft202012Validator(schema, format_checker=FormatChecker())
        _validators[key] = validator
    return validator


def _field(error):
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        match = re.search(r"'([^']+)' is a required property", error.message)
        name = match.group(1) if match else "?"
        return (f"{path}.{name}" if path else name), "is required"
    if error.validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", error.message.split("(")[-1])
        name = extra[0] if extra else "?"
        return (f"{path}.{name}" if path else name), "is not an allowed field"
    if error.validator == "pattern" and error.schema.get("x-message"):
        return path or "body", error.schema["x-message"]
    messages = {
        "type": f"must be of type {_type_names(error.validator_value)}",
        "minLength": f"must be at least {error.validator_value} characters",
        "maxLength": f"must be at most {error.validator_value} characters",
        "minimum": f"must be >= {error.validator_value}",
        "maximum": f"must be <= {error.validator_value}",
        "enum": f"must be one of {error.validator_value}",
        "pattern": "has an invalid format",
        "minProperties": "must not be empty",
    }
    return path or "body", messages.get(error.validator, error.message)


def _nul_fields(value, path=""):
    """Paths of strings holding NUL, which PostgreSQL text cannot store."""
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    found = []
    for key, item in items:
        found += _nul_fields(item, f"{path}.{key}" if path else str(key))
    return found


def validate(schema, payload, message="invalid request"):
    """Return ``payload`` if it matches ``schema``; otherwise raise ValidationError
    whose ``details`` map each offending field path to what is wrong. Strings
    may not contain NUL characters."""
    errors = list(_validator(schema).iter_errors(payload))
    if not errors:
        nul = _nul_fields(payload)
        if nul:
            raise ValidationError(
                message, {field: "must not contain NUL characters" for field in nul}
            )
        return payload
    details = {}
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        field, problem = _field(error)
        details.setdefault(field, problem)
    raise ValidationError(message, details)


__all__ = ["validate", "obj", "is_uuid", "EMAIL_PATTERN", "UUID_PATTERN", "jsonschema"]
