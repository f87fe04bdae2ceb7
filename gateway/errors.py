"""Every error leaves the gateway as ``{"error": {"code", "message", "details"}}``
(on /oauth/* as RFC 6749 ``{"error", "error_description"}``)."""

import logging

from flask import has_request_context, jsonify, request
from werkzeug.exceptions import HTTPException

from gateway.rpc import ServiceUnavailable, UpstreamError
from services.chassis.errors import AgoraError

log = logging.getLogger(__name__)

OAUTH_PREFIX = "/oauth/"


class ApiError(Exception):
    def __init__(self, status, code, message, details=None, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(status, code, message, details=None, headers=None):
    if has_request_context() and request.path.startswith(OAUTH_PREFIX):
        # The OAuth2 endpoints answer every error in the RFC 6749 5.2 form.
        response = jsonify({"error": code, "error_description": message})
    else:
        response = jsonify({"error": {"code": code, "message": message, "details": details}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app):
    @app.errorhandler(ApiError)
    def api_error(exc):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(AgoraError)
    def service_error(exc):
        # A named error from a service: its status and code are part of the contract.
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return error_response(exc.status, exc.code, exc.message, exc.details, headers)

    @app.errorhandler(ServiceUnavailable)
    def unavailable(exc):
        log.warning("downstream unavailable: %s", exc)
        return error_response(
            503,
            "service_unavailable",
            f"the {exc.service} service is unavailable, retry later",
            {"service": exc.service, "reason": exc.reason},
            {"Retry-After": str(exc.retry_after)},
        )

    @app.errorhandler(UpstreamError)
    def upstream(exc):
        return error_response(
            502, "upstream_error", f"the {exc.service} service failed", {"service": exc.service}
        )

    @app.errorhandler(HTTPException)
    def http_error(exc):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(exc.code or 500, code, exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred")
