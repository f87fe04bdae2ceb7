"""Contracts as JSON Schema (draft 2020-12): one definition validates RPC
arguments in the service, request bodies in the gateway, and (later) feeds the
OpenAPI and AsyncAPI documents.

Every contract pattern is matched by RE2, a linear-time engine: no pattern can
backtrack, whatever the input (a pattern RE2 cannot compile, such as a
lookahead, is refused when its schema is first used). Patterns are written in
the syntax RE2, Python's ``re`` and ECMAScript (OpenAPI clients) read alike:
``$`` is the end of the text in RE2 and ECMAScript (Python's ``re`` would also
let it match before a final newline: never match a contract pattern with it),
and no ``\\s`` (white space differs between the three engines: spell the set).
"""

import functools
import re

import jsonschema
import re2
from jsonschema import Draft202012Validator, FormatChecker

from services.chassis.errors import ValidationError

# White space as Python's str.isspace() and ECMAScript's \s see it, spelled out
# (beyond the C0 and C1 controls, which every set below excludes as a range).
# Literal characters, not \u escapes: RE2 has no \u.
_UNICODE_SPACES = "\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# Inside a character class: every white space and control character (C0, DEL,
# C1, which with the space and NBSP are \x00-\x20 and \x7f-\xa0) and the
# byte-order mark. The same set in Python, RE2 and ECMAScript; "[^...]" of it
# is what "\S" means nowhere consistently.
SPACE_OR_CONTROL = rf"\x00-\x20\x7f-\xa0{_UNICODE_SPACES}"
# No "@", no white space, no control characters and no byte-order mark.
_EMAIL_PART = rf"[^@{SPACE_OR_CONTROL}]+"
EMAIL_PATTERN = rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# SKUs are stored exactly as given: lower case is rejected (with a message that
# says so), not silently upper-cased, so a client never sees its SKU change.
# The catalog owns SKUs; inventory, its table check and its migration use this.
SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{1,63}$"
SKU_MESSAGE = "must be 2-64 characters of A-Z, 0-9 and '-' (upper case), not starting with '-'"
# What an Idempotency-Key header (orders, billing refunds) may hold. "$" is the
# end of the text here (RE2): "key\n" is refused.
IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"
IDEMPOTENCY_KEY_MESSAGE = "must be 1-255 printable ASCII characters"

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern raises; RE2 need not also print it


@functools.cache
def compile_pattern(pattern):
    """``pattern`` compiled by RE2 (matching takes time linear in the input).

    Raises ValueError for a pattern RE2 cannot run in linear time (lookaround,
    backreferences) or that it cannot parse (``\\Z``, ``\\u``)."""
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        raise ValueError(f"contract pattern {pattern!r} is not RE2 syntax: {exc}") from None


def pattern_matches(pattern, text):
    """JSON Schema's (ECMAScript's) test: ``pattern`` found in ``text``, in linear time.

    A string with a lone surrogate is not text and matches nothing."""
    try:
        return compile_pattern(pattern).search(text) is not None
    except UnicodeEncodeError:
        return False


def _pattern(validator, pattern, instance, schema):
    if not validator.is_type(instance, "string"):
        return
    limit = schema.get("maxLength")
    if isinstance(limit, int) and len(instance) > limit:
        return  # maxLength says what is wrong; the pattern never sees oversized input
    if not pattern_matches(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _no_pattern_properties(validator, patterns, instance, schema):
    # jsonschema matches these with Python's re: contracts may not use them.
    raise ValueError("patternProperties is not allowed in a contract (matched without RE2)")


# Draft 2020-12 with every "pattern" matched by RE2.
LinearValidator = jsonschema.validators.extend(
    Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _no_pattern_properties},
)


def schema_patterns(schema):
    """Every ``pattern`` in ``schema`` (nested anywhere), each once, in order found."""
    found, stack = [], [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str) and node["pattern"] not in found:
                found.append(node["pattern"])
            if "patternProperties" in node:
                raise ValueError("patternProperties is not allowed in a contract")
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list | tuple):
            stack.extend(reversed(node))
    return found


def linear_validator(schema, **options):
    """A validator of ``schema`` whose patterns all compile with RE2 (checked now)."""
    Draft202012Validator.check_schema(schema)
    for pattern in schema_patterns(schema):
        compile_pattern(pattern)
    return LinearValidator(schema, **options)


_validators = {}


def _type_names(types):
    """``"string"`` or ``["string", "null"]`` as ``string`` / ``string or null``."""
    return " or ".join(types) if isinstance(types, list | tuple) else str(types)


def is_uuid(value):
    return isinstance(value, str) and pattern_matches(UUID_PATTERN, value)


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
        validator = linear_validator(schema, format_checker=FormatChecker())
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


_NUL = "must not contain NUL characters"
_SURROGATE = "must be Unicode text (a lone surrogate, \\ud800-\\udfff, is not)"


def _text_problem(text):
    if "\x00" in text:
        return _NUL
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE
    return None


def _bad_text(value, path=""):
    """{path: problem} of strings that PostgreSQL text cannot store (NUL) or
    that are not text at all (a lone surrogate, which JSON can escape)."""
    if isinstance(value, str):
        problem = _text_problem(value)
        return {path or "body": problem} if problem else {}
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {}
    found = {}
    for key, item in items:
        found.update(_bad_text(item, f"{path}.{key}" if path else str(key)))
    return found


def validate(schema, payload, message="invalid request"):
    """Return ``payload`` if it matches ``schema``; otherwise raise ValidationError
    whose ``details`` map each offending field path to what is wrong. Strings
    may not contain NUL characters or lone surrogates."""
    errors = list(_validator(schema).iter_errors(payload))
    if not errors:
        bad = _bad_text(payload)
        if bad:
            raise ValidationError(message, bad)
        return payload
    details = {}
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        field, problem = _field(error)
        details.setdefault(field, problem)
    raise ValidationError(message, details)


# --- dead letters (services.chassis.deadletter; every event-handling service) -----

# The services that handle events, so have a ``<service>.dead-letters`` queue
# and answer the dead-letter RPCs (``services.chassis.service.DeadLetterAdmin``).
# tests/unit/test_broker_principals.py checks it against the services' wiring.
DEAD_LETTER_SERVICES = ("auth", "inventory", "orders", "billing", "notifications")
# A dead letter's id: its event's ``event_id`` (a UUID), or ``body-<32 hex>`` for
# a message that is no event envelope (``deadletter.letter_id``).
DEAD_LETTER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
DEAD_LETTER_ID = {"type": "string", "pattern": DEAD_LETTER_ID_PATTERN, "maxLength": 100}
DEAD_LETTER_LIST_MAX = 1000
DEAD_LETTER_LIST_ARGS = obj(
    {"limit": {"type": "integer", "minimum": 1, "maximum": DEAD_LETTER_LIST_MAX}}
)
DEAD_LETTER_REF = obj({"event_id": DEAD_LETTER_ID}, required=("event_id",))
_NULLABLE_TEXT = {"type": ["string", "null"]}
DEAD_LETTER = obj(
    {
        "service": {"enum": list(DEAD_LETTER_SERVICES)},
        "event_id": {**DEAD_LETTER_ID, "description": "Its event's id (body-<hash>: no event)"},
        "type": {**_NULLABLE_TEXT, "description": "<source>.<event type>"},
        "queue": {**_NULLABLE_TEXT, "description": "The handler queue it failed on"},
        "attempts": {"type": ["integer", "null"], "description": "Deliveries that failed"},
        "error": {**_NULLABLE_TEXT, "description": "The last failure: Class: message"},
        "failed_at": {**_NULLABLE_TEXT, "description": "When it last failed (UTC)"},
    },
    required=("service", "event_id", "type", "queue", "attempts", "error", "failed_at"),
)
DEAD_LETTER_DETAIL = {
    **DEAD_LETTER,
    "properties": {
        **DEAD_LETTER["properties"],
        "event": {"description": "The message body: the event envelope (or what came instead)"},
        "headers": {"type": "object", "description": "The message's AMQP headers"},
    },
    "required": [*DEAD_LETTER["required"], "event", "headers"],
}


__all__ = [
    "validate",
    "obj",
    "is_uuid",
    "compile_pattern",
    "pattern_matches",
    "linear_validator",
    "LinearValidator",
    "EMAIL_PATTERN",
    "UUID_PATTERN",
    "SKU_PATTERN",
    "IDEMPOTENCY_KEY_PATTERN",
    "jsonschema",
]
