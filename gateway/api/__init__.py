"""One blueprint per resource; shared request helpers."""

from flask import current_app, jsonify, request

from gateway.errors import ApiError
from services.chassis.schemas import validate


def rpc():
    return current_app.extensions["agora.rpc"]


def json_body(schema):
    """The request's JSON object, validated against ``schema`` before any RPC."""
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "send a JSON body (Content-Type: application/json)"
        )
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "invalid_json", "the request body is not valid JSON")
    return validate(schema, body)


def created(resource, location):
    """201 with the new resource as the body and its URL in ``Location``."""
    response = jsonify(resource)
    response.status_code = 201
    response.headers["Location"] = location
    return response
