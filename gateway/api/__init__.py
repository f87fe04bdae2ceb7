"""One blueprint per resource; shared request helpers."""

import json

from flask import current_app, jsonify, request

from gateway.errors import ApiError
from services.chassis.schemas import pattern_matches, validate

# Arrays and objects nested deeper than this are refused before any RPC: no
# contract comes near it, and Python's parser would otherwise raise
# RecursionError (a 500) at about a thousand levels.
MAX_JSON_DEPTH = 32
# Plain ASCII digits only: int() would also take " 7", "1_0" or "٣".
_INTEGER = r"^-?[0-9]{1,18}$"
_TOO_DEEP = f"must not nest arrays and objects deeper than {MAX_JSON_DEPTH}"


def rpc():
    return current_app.extensions["agora.rpc"]


def _invalid_json(problem):
    return ApiError(400, "invalid_json", "the request body is not valid JSON", {"body": problem})


def _not_json_constant(name):
    raise ValueError(f"{name} is not JSON")


def _check_json_value(value):
    """Refuse nesting deeper than MAX_JSON_DEPTH and strings (or keys) holding a
    lone surrogate: JSON escapes such as "\\ud800" decode to text that no
    service can encode. Iterative, so no input can exhaust the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            strings = (item,)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise _invalid_json(_TOO_DEEP)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
            strings = item.keys() if isinstance(item, dict) else ()
        else:
            continue
        for text in strings:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise _invalid_json(
                    "must be Unicode text: a lone surrogate (\\ud800-\\udfff) is not"
                ) from None


def parse_json_body():
    """The request body as JSON text (RFC 8259: UTF-8), or ApiError 400.

    Every way a body can fail (not UTF-8, not JSON, NaN, nesting deep enough to
    exhaust the parser, lone surrogates) is the client's error: a 400, never a
    500 or an RPC that fails downstream, and nothing logged as an incident."""
    data = request.get_data(cache=True)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid_json("must be UTF-8") from None
    try:
        body = json.loads(text, parse_constant=_not_json_constant)
    except RecursionError:
        raise _invalid_json(_TOO_DEEP) from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, an integer too long
        raise _invalid_json(str(exc)[:200]) from None
    _check_json_value(body)
    return body


def json_body(schema):
    """The request's JSON object, validated against ``schema`` before any RPC."""
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "send a JSON body (Content-Type: application/json)"
        )
    return validate(schema, parse_json_body())


def query_args(schema):
    """The query string as a dict validated against ``schema`` (an object schema):
    each parameter at most once, integer parameters converted first (plain
    ASCII digits with an optional minus: not " 7", "1_0", "+7" or "٣")."""
    query = {}
    properties = schema.get("properties", {})
    for key in request.args:
        values = request.args.getlist(key)
        if len(values) > 1:
            raise ApiError(400, "validation_error", "invalid query", {key: "must be given once"})
        value = values[0]
        if _is_integer_schema(properties.get(key)):
            if not pattern_matches(_INTEGER, value):
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


def created(resource, location):
    """201 with the new resource as the body and its URL in ``Location``."""
    response = jsonify(resource)
    response.status_code = 201
    response.headers["Location"] = location
    return response
