"""The OpenAPI 3.1 document of the gateway, built from the routes themselves.

A view describes itself with :func:`operation`, which only attaches metadata
(``view._openapi``); it never wraps the view. :func:`build_document` walks the
Flask URL map and turns every route into an operation, reading:

- ``view._openapi``: what the view declared (summary, schemas, responses...);
- ``view._required_scopes`` (``gateway.auth.guard.requires``): absent for a
  public route, else the OAuth2 scopes a token must carry;
- the rate-limit group of the route (``gateway.limits.view_group``).

Request and response schemas are the contract constants themselves
(``services.*.schemas``, ``gateway.auth.contracts``): an object schema that is
one of those constants becomes ``#/components/schemas/<Name>`` (``PRODUCT_PAGE``
-> ``ProductPage``), so the document can never drift from what is validated.

The responses the gateway gives on its own are added to every operation they
can happen on, so that the document is true (schemathesis checks it):

====  ==================================================================
400   a JSON body, a form or query parameters are read and validated
401   every route under ``/v1/`` (a bad token is refused even where none is
      needed), with ``WWW-Authenticate``; client-authenticated OAuth routes
403   routes that need at least one scope (``insufficient_scope``)
404   routes with path parameters
413   routes that read a body (``MAX_CONTENT_LENGTH``)
414   GET routes with query parameters: gunicorn refuses a request line over
      ``limit_request_line`` (4094 bytes) before the app sees it (text/html)
415   routes that read a JSON body
429   every rate-limited route (all but the probes), with ``Retry-After``
502   routes that call services over RPC (``/v1/``, ``/oauth/``, ``rpc=True``)
503   the same, with ``Retry-After``
====  ==================================================================

Errors are ``Error`` (``{"error": {"code", "message", "details"}}``), or
``OAuthError`` (RFC 6749 ``{"error", "error_description"}``) under ``/oauth/``.

``init_openapi(app)`` serves the document at ``/openapi.json`` and Swagger UI
at ``/docs``, every asset from this process (no CDN): our page and its script
from ``gateway/static/docs/``, Swagger UI's own files from the installed
``flask-swagger-ui`` distribution (its ``dist/`` folder only; its blueprint is
not used, it renders an inline script).
"""

import copy
import importlib
import importlib.util
import inspect
import json
import re
import threading
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response, send_file

OPENAPI_VERSION = "3.1.0"
JSON_SCHEMA_DIALECT = "https://spec.openapis.org/oas/3.1/dialect/base"

# Modules whose upper-case object schemas become named components.
CONTRACT_MODULES = (
    "services.users.schemas",
    "services.catalog.schemas",
    "services.auth.schemas",
    "services.inventory.schemas",
    "services.orders.schemas",
    "services.billing.schemas",
    "services.notifications.schemas",
    "gateway.auth.contracts",
)

# Every key operation() accepts; anything else is a typo and fails at import.
OPERATION_KEYS = frozenset(
    {
        "description",
        "tags",
        "path_params",
        "query",
        "headers",
        "body",
        "form",
        "binary_body",
        "responses",
        "errors",
        "error_content_type",
        "oauth",
        "security",
        "rpc",
        "deprecated",
        "operation_id",
    }
)
RESPONSE_KEYS = frozenset({"schema", "headers", "content_type", "description"})
_HEADER_KEYS = frozenset({"schema", "required", "description"})
_ACRONYMS = {"OAUTH": "OAuth", "JWKS": "JWKS", "JWK": "JWK", "URI": "URI", "URL": "URL"}
# The operation() keys that describe a request body.
_BODY_KEYS = frozenset({"body", "form", "binary_body"})
_SKIPPED_METHODS = frozenset({"HEAD", "OPTIONS"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

TAGS = {
    "users": "Registration, your own profile, user administration",
    "products": "The catalog",
    "media": "Stored files: product image renditions, cached forever by key",
    "orders": "Place, follow and cancel your orders (the order saga)",
    "inventory": "Stock per SKU and warehouse",
    "payments": "Payments, refunds and disputes",
    "notifications": "Emails and text messages sent to you",
    "oauth": "OAuth 2.0 authorization server (RFC 6749, 7009, 7636, 7662, 8414)",
    "health": "Liveness and readiness probes",
    "ops": "Operators: dead letters (replay, discard)",
    "docs": "This document and its browser",
    "web": "The storefront (a single-page app) and the theme it shares with the authorize page",
}

# The standard error body (gateway.errors.error_response).
ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. not_found"},
                "message": {"type": "string", "description": "For humans"},
                "details": {
                    "type": ["object", "null"],
                    "description": "Field paths to problems for validation_error; else context",
                },
            },
            "required": ["code", "message", "details"],
            "additionalProperties": False,
        }
    },
    "required": ["error"],
    "additionalProperties": False,
}

_SECONDS = {"type": "string", "pattern": "^[0-9]+$"}
_STANDARD_HEADERS = {
    "TraceId": {
        "description": "Zipkin trace id of this request (continues an incoming B3 context)",
        "schema": {"type": "string", "pattern": "^[0-9a-f]{16}([0-9a-f]{16})?$"},
    },
    "RetryAfter": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": _SECONDS,
    },
    "RateLimitLimit": {
        "description": "Requests allowed in the window of the limit that applies",
        "schema": _SECONDS,
    },
    "RateLimitRemaining": {"description": "Requests left in that window", "schema": _SECONDS},
    "RateLimitReset": {
        "description": "When that window resets (Unix time, seconds)",
        "schema": _SECONDS,
    },
}
_TRACE_HEADER = {"X-B3-TraceId": {"$ref": "#/components/headers/TraceId"}}

_STATUS_TEXT = {
    400: "The request is invalid: validation_error (details name each offending field)"
    ", invalid_json, or an unknown or repeated query parameter",
    401: "No valid access token: missing, malformed, expired, revoked or not for this API",
    403: "The access token lacks a required scope (insufficient_scope)",
    404: "Not found",
    409: "Conflicts with the current state (e.g. the email is taken)",
    413: "The body is larger than the gateway accepts",
    414: "The URL is longer than the HTTP server accepts (answered by gunicorn, as HTML)",
    415: "The body is not JSON (send Content-Type: application/json)",
    429: "Too many requests: rate limited; retry after Retry-After seconds",
    502: "A service failed unexpectedly",
    503: "A service is unavailable (down, too slow or its circuit is open); retry later",
}
_OAUTH_STATUS_TEXT = {
    400: "invalid_request, invalid_grant, unauthorized_client, unsupported_grant_type, "
    "invalid_scope...",
    401: "invalid_client: client authentication failed",
}


def operation(summary, *, method=None, **meta):
    """Describe a view for the OpenAPI document; returns the view unchanged.

    ``summary`` (required) and, all optional:

    ``description`` (default: the view's docstring), ``tags`` (tuple),
    ``path_params`` ({name: schema}; default from the URL converter),
    ``query`` (an object schema whose properties are the query parameters),
    ``headers`` ({name: {"schema", "required", "description"}}: request headers),
    ``body`` (schema of an ``application/json`` body),
    ``form`` (schema of an ``application/x-www-form-urlencoded`` body),
    ``binary_body`` (a raw, non-JSON body: ``{"content_types": (...), "description"}``,
    e.g. an image upload; 413 is added, 415 is the view's to list in ``errors``),
    ``responses`` ({status: schema, or None for no body, or
    {"schema", "headers": {name: schema | {"schema", "required", "description"}},
    "content_type" (str or tuple), "description"}}),
    ``errors`` (statuses answered with the error body, e.g. ``(404, 409)``),
    ``error_content_type`` (of those explicit ``errors``, e.g. ``"text/html"``),
    ``oauth`` (errors are RFC 6749 ``OAuthError``; default: path under /oauth/),
    ``security`` (``"client"``: OAuth client authentication, HTTP Basic or in the
    form, optional for public clients; or a list of OpenAPI security requirements),
    ``rpc`` (the route calls services, so 502/503; default: path under /v1/ or
    /oauth/), ``deprecated``, ``operation_id``.

    A view serving several methods may stack one ``@operation(..., method="POST")``
    per method; the one without ``method`` is the default.
    """
    unknown = set(meta) - OPERATION_KEYS
    if unknown:
        raise TypeError(f"operation(): unknown keys {', '.join(sorted(unknown))}")
    if not isinstance(summary, str) or not summary:
        raise TypeError("operation(): a summary is required")
    described = {"summary": summary, **meta}

    def decorate(view):
        if method is None:
            view._openapi = described
        else:
            methods = dict(getattr(view, "_openapi_methods", {}))
            methods[method.upper()] = described
            view._openapi_methods = methods
        return view

    return decorate


def metadata_of(view, method):
    """The operation() metadata of ``view`` for ``method``, or None."""
    return getattr(view, "_openapi_methods", {}).get(method) or getattr(view, "_openapi", None)


class UndocumentedRoute(LookupError):
    """A route whose view has no operation() metadata."""


# --- schemas -----------------------------------------------------------------


def _is_object_schema(value):
    if not isinstance(value, dict):
        return False
    kind = value.get("type")
    kinds = kind if isinstance(kind, list | tuple) else (kind,)
    return "object" in kinds


def _component_name(constant):
    return "".join(_ACRONYMS.get(part, part.capitalize()) for part in constant.split("_"))


def contract_schemas(modules=CONTRACT_MODULES):
    """``{id(schema): (name, schema)}`` for every object schema constant of ``modules``."""
    found = {}
    taken = {}
    for module_name in modules:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None) or [n for n in vars(module) if n.isupper()]
        for constant in names:
            value = getattr(module, constant, None)
            if not _is_object_schema(value) or id(value) in found:
                continue
            name = _component_name(constant)
            if name in taken and taken[name] is not value:
                prefix = module_name.split(".")[-2].capitalize()
                name = f"{prefix}{name}"
            taken[name] = value
            found[id(value)] = (name, value)
    return found


class _Schemas:
    """Turns contract dicts into document schemas, naming the known constants."""

    def __init__(self, named):
        self.named = named
        self.components = {}

    def ref(self, name, schema):
        if name not in self.components:
            self.components[name] = None  # placeholder: a schema may refer to itself
            self.components[name] = self.convert(schema, top=True)
        return {"$ref": f"#/components/schemas/{name}"}

    def convert(self, node, top=False):
        if isinstance(node, dict):
            known = None if top else self.named.get(id(node))
            if known is not None and known[1] is node:
                return self.ref(*known)
            return {key: self.convert(value) for key, value in node.items()}
        if isinstance(node, list | tuple):
            return [self.convert(item) for item in node]
        return copy.deepcopy(node)


# --- operations --------------------------------------------------------------


def openapi_path(rule):
    """``/v1/products/<product_id>`` -> ``/v1/products/{product_id}``."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)


def _converter_schema(rule, name):
    converter = rule._converters.get(name)
    kind = type(converter).__name__
    if kind == "IntegerConverter":
        return {"type": "integer"}
    if kind == "FloatConverter":
        return {"type": "number"}
    if kind == "UUIDConverter":
        return {"type": "string", "format": "uuid"}
    if kind == "AnyConverter":
        return {"type": "string", "enum": sorted(getattr(converter, "items", ()))}
    return {"type": "string"}


class _Builder:
    def __init__(self, app):
        from gateway.auth.guard import PROTECTED_PREFIX
        from gateway.errors import OAUTH_PREFIX
        from gateway.limits import EXEMPT, view_group

        self.app = app
        self.config = app.config["AGORA"]
        self.protected_prefix = PROTECTED_PREFIX
        self.oauth_prefix = OAUTH_PREFIX
        self.exempt = EXEMPT
        self.view_group = view_group
        named = contract_schemas()
        self.schemas = _Schemas(named)
        self.oauth_error = self._oauth_error_schema(named)
        self.used_tags = []

    @staticmethod
    def _oauth_error_schema(named):
        for name, schema in named.values():
            if name == "OAuthError":
                return schema
        return {
            "type": "object",
            "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
            "required": ["error"],
        }

    # The document.

    def build(self):
        paths = {}
        operation_ids = set()
        undocumented = []
        rules = sorted(self.app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))
        for rule in rules:
            if rule.endpoint == "static":
                continue
            view = self.app.view_functions[rule.endpoint]
            methods = sorted(set(rule.methods or ()) - _SKIPPED_METHODS)
            for method in methods:
                meta = metadata_of(view, method)
                if meta is None:
                    undocumented.append(f"{method} {rule.rule} ({rule.endpoint})")
                    continue
                path = openapi_path(rule)
                op = self.operation(rule, view, method, meta, len(methods) > 1)
                base = op["operationId"]
                unique, n = base, 2
                while unique in operation_ids:
                    unique, n = f"{base}_{n}", n + 1
                op["operationId"] = unique
                operation_ids.add(unique)
                paths.setdefault(path, {})[method.lower()] = op
        if undocumented:
            raise UndocumentedRoute(
                "routes without @operation(...) metadata: " + "; ".join(undocumented)
            )
        issuer = self.config["auth"]["issuer"].rstrip("/")
        return {
            "openapi": OPENAPI_VERSION,
            "jsonSchemaDialect": JSON_SCHEMA_DIALECT,
            "info": {
                "title": "Agora API",
                "version": _version(),
                "summary": (
                    "The Agora gateway: users, catalog, orders, inventory, payments, "
                    "notifications, operations, OAuth 2.0 and the storefront"
                ),
                "description": (
                    "The public API of Agora's services (users, auth, catalog, inventory, "
                    "orders and their saga, billing, notifications) behind one gateway, "
                    "which also serves the storefront at `/`. "
                    'Every error is `{"error": {"code", "message", "details"}}`, except '
                    'under `/oauth/` where it is RFC 6749\'s `{"error", "error_description"}`. '
                    "Every response carries `X-B3-TraceId`."
                ),
            },
            "servers": [{"url": issuer, "description": "This gateway (auth.issuer)"}],
            "tags": self.tags(),
            "paths": paths,
            "components": {
                "schemas": dict(sorted(self.schemas.components.items())),
                "headers": copy.deepcopy(_STANDARD_HEADERS),
                "securitySchemes": self.security_schemes(issuer),
            },
        }

    def tags(self):
        """The tags in use: the known ones first, in TAGS order, then the others."""
        known = [t for t in TAGS if t in self.used_tags]
        others = [t for t in self.used_tags if t not in TAGS]
        return [{"name": t, "description": TAGS[t]} for t in known] + [{"name": t} for t in others]

    def security_schemes(self, issuer):
        from services.auth.schemas import SCOPES

        token_url = f"{issuer}/oauth/token"
        scopes = dict(SCOPES)
        return {
            "oauth2": {
                "type": "oauth2",
                "description": "RS256 JWT access tokens from this gateway's authorization server",
                "flows": {
                    "authorizationCode": {
                        "authorizationUrl": f"{issuer}/oauth/authorize",
                        "tokenUrl": token_url,
                        "refreshUrl": token_url,
                        "scopes": scopes,
                    },
                    "password": {"tokenUrl": token_url, "refreshUrl": token_url, "scopes": scopes},
                    "clientCredentials": {"tokenUrl": token_url, "scopes": scopes},
                },
            },
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An access token obtained from /oauth/token",
            },
            "clientBasic": {
                "type": "http",
                "scheme": "basic",
                "description": "Confidential OAuth clients: client id and secret (RFC 6749 2.3.1)",
            },
        }

    # One operation.

    def operation(self, rule, view, method, meta, several_methods):
        path = rule.rule
        op = {
            "operationId": meta.get("operation_id") or _operation_id(rule, method, several_methods)
        }
        tags = list(meta.get("tags", ()))
        for tag in tags:
            if tag not in self.used_tags:
                self.used_tags.append(tag)
        if tags:
            op["tags"] = tags
        op["summary"] = meta["summary"]
        description = meta.get("description") or inspect.getdoc(view)
        if description:
            op["description"] = description
        if meta.get("deprecated"):
            op["deprecated"] = True

        parameters = (
            self.path_parameters(rule, meta)
            + self.query_parameters(meta)
            + self.header_parameters(meta)
        )
        if parameters:
            op["parameters"] = parameters
        body = self.request_body(meta)
        if body:
            op["requestBody"] = body

        scopes = getattr(view, "_required_scopes", None)
        security = self.security(path, meta, scopes)
        if security is not None:
            op["security"] = security

        group = self.view_group(view, path, method)
        op["x-rate-limit-group"] = group
        op["responses"] = self.responses(rule, meta, scopes, group)
        return op

    def path_parameters(self, rule, meta):
        declared = meta.get("path_params", {})
        unknown = set(declared) - set(rule.arguments)
        if unknown:
            raise ValueError(f"{rule.rule}: path_params not in the URL: {sorted(unknown)}")
        return [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": self.schemas.convert(declared.get(name) or _converter_schema(rule, name)),
            }
            for name in sorted(rule.arguments, key=rule.rule.index)
        ]

    def query_parameters(self, meta):
        query = meta.get("query")
        if not query:
            return []
        required = set(query.get("required", ()))
        parameters = []
        for name, schema in query.get("properties", {}).items():
            parameter = {"name": name, "in": "query", "required": name in required}
            if isinstance(schema, dict) and schema.get("description"):
                parameter["description"] = schema["description"]
            parameter["schema"] = self.schemas.convert(schema)
            parameters.append(parameter)
        return parameters

    def header_parameters(self, meta):
        parameters = []
        for name, spec in meta.get("headers", {}).items():
            unknown = set(spec) - _HEADER_KEYS
            if unknown:
                raise ValueError(f"header {name}: unknown keys {sorted(unknown)}")
            parameter = {"name": name, "in": "header", "required": spec.get("required", False)}
            if spec.get("description"):
                parameter["description"] = spec["description"]
            parameter["schema"] = self.schemas.convert(spec["schema"])
            parameters.append(parameter)
        return parameters

    def request_body(self, meta):
        content = {}
        if meta.get("body") is not None:
            content["application/json"] = {"schema": self.schemas.convert(meta["body"])}
        if meta.get("form") is not None:
            content["application/x-www-form-urlencoded"] = {
                "schema": self.schemas.convert(meta["form"])
            }
        binary = meta.get("binary_body")
        if binary is not None:
            unknown = set(binary) - {"content_types", "description"}
            if unknown or not binary.get("content_types"):
                raise ValueError(f"binary_body: content_types required, unknown {sorted(unknown)}")
            for content_type in binary["content_types"]:
                # OpenAPI 3.1: raw bytes are a string with contentMediaType (no "format").
                content[content_type] = {
                    "schema": {"type": "string", "contentMediaType": content_type}
                }
        if not content:
            return None
        body = {"required": True, "content": content}
        if binary is not None and binary.get("description"):
            body["description"] = binary["description"]
        return body

    def security(self, path, meta, scopes):
        declared = meta.get("security")
        if declared == "client":
            # Confidential clients authenticate (HTTP Basic, or client_secret in the
            # form); public clients only name themselves with the form's client_id.
            return [{"clientBasic": []}, {}]
        if declared is not None:
            return copy.deepcopy(list(declared))
        if scopes is not None:
            return [{"oauth2": list(scopes)}, {"bearerAuth": list(scopes)}]
        if path.startswith(self.protected_prefix):
            # Public, but a token may be sent (and a bad one is refused).
            return [{}, {"oauth2": []}, {"bearerAuth": []}]
        return None

    # Responses.

    def responses(self, rule, meta, scopes, group):
        path = rule.rule
        oauth = meta.get("oauth", path.startswith(self.oauth_prefix))
        protected = path.startswith(self.protected_prefix)
        rpc = meta.get("rpc", protected or path.startswith(self.oauth_prefix))
        reads_body = any(meta.get(key) is not None for key in _BODY_KEYS)

        out = {}
        for status, spec in meta.get("responses", {}).items():
            out[int(status)] = self.explicit_response(int(status), spec)
        if not out:
            raise ValueError(f"{path}: operation() needs responses={{status: schema}}")

        content_type = meta.get("error_content_type")
        for status in meta.get("errors", ()):
            if int(status) not in out:
                out[int(status)] = self.error_response(int(status), oauth, content_type)

        def automatic(status, when, headers=None):
            if not when:
                return
            if status not in out:
                out[status] = self.error_response(status, oauth)
            if headers:
                out[status].setdefault("headers", {}).update(headers)

        client_auth = meta.get("security") == "client"
        automatic(400, reads_body or meta.get("query"))
        automatic(
            401,
            protected or client_auth,
            {
                "WWW-Authenticate": {
                    "description": "The challenge (RFC 6750 3, or HTTP Basic for clients)",
                    "required": protected,
                    "schema": {"type": "string"},
                }
            },
        )
        automatic(
            403,
            bool(scopes),
            {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
        )
        automatic(404, bool(rule.arguments))
        automatic(413, reads_body)
        automatic(415, meta.get("body") is not None)
        if meta.get("query") and 414 not in out:
            # Not the app: gunicorn answers before routing, in HTML, without trace header.
            out[414] = {
                "description": _STATUS_TEXT[414],
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        automatic(
            429,
            group != self.exempt,
            {
                "Retry-After": {"$ref": "#/components/headers/RetryAfter"},
                "X-RateLimit-Limit": {"$ref": "#/components/headers/RateLimitLimit"},
                "X-RateLimit-Remaining": {"$ref": "#/components/headers/RateLimitRemaining"},
                "X-RateLimit-Reset": {"$ref": "#/components/headers/RateLimitReset"},
            },
        )
        automatic(502, rpc)
        automatic(503, rpc, {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}})

        for status, response in out.items():
            if status != 414:
                response.setdefault("headers", {}).update(_TRACE_HEADER)
        return {str(status): out[status] for status in sorted(out)}

    def explicit_response(self, status, spec):
        if spec is None:
            spec = {}
        elif not (isinstance(spec, dict) and spec and set(spec) <= RESPONSE_KEYS):
            spec = {"schema": spec}
        response = {"description": spec.get("description") or _phrase(status)}
        headers = {}
        if status in _REDIRECTS:
            headers["Location"] = {"required": True, "schema": {"type": "string"}}
        for name, header in (spec.get("headers") or {}).items():
            headers[name] = self.header(header)
        if headers:
            response["headers"] = headers
        schema = spec.get("schema")
        if schema is not None or spec.get("content_type"):
            content_types = spec.get("content_type") or "application/json"
            if isinstance(content_types, str):
                content_types = (content_types,)
            converted = self.schemas.convert(schema if schema is not None else {})
            response["content"] = {ct: {"schema": copy.deepcopy(converted)} for ct in content_types}
        return response

    def header(self, spec):
        if isinstance(spec, dict) and "schema" in spec and set(spec) <= _HEADER_KEYS:
            header = {"required": spec.get("required", True)}
            if spec.get("description"):
                header["description"] = spec["description"]
            header["schema"] = self.schemas.convert(spec["schema"])
            return header
        return {"required": True, "schema": self.schemas.convert(spec)}

    def error_response(self, status, oauth, content_type=None):
        texts = _OAUTH_STATUS_TEXT if oauth else {}
        description = texts.get(status) or _STATUS_TEXT.get(status) or _phrase(status)
        if content_type and content_type != "application/json":
            schema = {"type": "string"}
        elif oauth:
            schema = self.schemas.convert(self.oauth_error)
            if "$ref" not in schema:
                schema = self.schemas.ref("OAuthError", self.oauth_error)
        else:
            schema = self.schemas.ref("Error", ERROR)
        return {
            "description": description,
            "content": {content_type or "application/json": {"schema": schema}},
        }


def _operation_id(rule, method, several_methods):
    base = rule.endpoint
    return f"{base}_{method.lower()}" if several_methods else base


def _phrase(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return str(status)


def _version():
    try:
        from importlib.metadata import version

        return version("agora")
    except Exception:
        return "0"


def build_document(app):
    """The OpenAPI 3.1 document (a dict) of every route of ``app``.

    Raises :class:`UndocumentedRoute` if a route's view has no operation()."""
    return _Builder(app).build()


# --- serving -----------------------------------------------------------------

STATIC_DIR = Path(__file__).parent / "static" / "docs"
# Our files (the page's script) and Swagger UI's, by the name served under /docs/.
OWN_ASSETS = ("init.js",)
SWAGGER_UI_ASSETS = (
    "swagger-ui.css",
    "swagger-ui-bundle.js",
    "oauth2-redirect.html",
    "oauth2-redirect.js",
    "favicon-32x32.png",
    "favicon-16x16.png",
)
ASSETS = OWN_ASSETS + SWAGGER_UI_ASSETS
_MIMETYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".png": "image/png",
}
VENDOR_MAX_AGE = 86400


def swagger_ui_dir():
    """The ``dist`` folder of the installed flask-swagger-ui (Swagger UI 5)."""
    spec = importlib.util.find_spec("flask_swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("flask-swagger-ui is not installed (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))) / "dist"


def content_security_policy(issuer):
    origin = urlsplit(issuer)
    connect = "'self'"
    if origin.scheme and origin.netloc:
        connect += f" {origin.scheme}://{origin.netloc}"
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            # Swagger UI 5 needs no inline style or script (checked in Chromium: the
            # page, an expanded operation and the Authorize dialog, no violation).
            "style-src 'self'",
            "img-src 'self' data:",
            # "Try it out" and the token request may go to the advertised server.
            f"connect-src {connect}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


_DOCUMENT_RESPONSE = {
    "schema": {
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "properties": {"openapi": {"const": OPENAPI_VERSION}},
    },
    "description": "This OpenAPI 3.1 document",
}
_HTML = {"content_type": "text/html", "schema": {"type": "string"}}


def init_openapi(app):
    """Serve ``GET /openapi.json``, ``GET /docs`` and ``GET /docs/<asset>``.

    The document is built on first use and kept; call after every blueprint is
    registered (create_app does)."""
    vendor = swagger_ui_dir()
    issuer = app.config["AGORA"]["auth"]["issuer"]
    csp = content_security_policy(issuer)
    lock = threading.Lock()
    cache = {}

    bp = Blueprint("openapi", __name__)

    def document_bytes():
        if "body" not in cache:
            with lock:
                if "body" not in cache:
                    document = build_document(app)
                    cache["document"] = document
                    cache["body"] = json.dumps(document, indent=1).encode()
        return cache["body"]

    @bp.get("/openapi.json")
    @operation(
        "This OpenAPI 3.1 document",
        tags=("docs",),
        responses={200: _DOCUMENT_RESPONSE},
        rpc=False,
    )
    def openapi_json():
        response = Response(document_bytes(), mimetype="application/json")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    def secured(response):
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    @bp.get("/docs")
    @operation(
        "API browser (Swagger UI), served entirely by the gateway",
        tags=("docs",),
        responses={200: {**_HTML, "description": "The Swagger UI page"}},
        rpc=False,
    )
    def docs():
        response = send_file(STATIC_DIR / "index.html", mimetype="text/html", max_age=0)
        return secured(response)

    @bp.get("/docs/<asset>")
    @operation(
        "A file of the API browser: Swagger UI's script, style, icons and OAuth2 redirect page",
        tags=("docs",),
        path_params={"asset": {"type": "string", "enum": list(ASSETS)}},
        responses={
            200: {
                "content_type": tuple(sorted(set(_MIMETYPES.values()))),
                "description": "The file",
            }
        },
        rpc=False,
    )
    def docs_asset(asset):
        from gateway.errors import ApiError

        if asset not in ASSETS:
            raise ApiError(404, "not_found", "no such file")
        folder = STATIC_DIR if asset in OWN_ASSETS else vendor
        mimetype = _MIMETYPES[Path(asset).suffix]
        max_age = 0 if asset in OWN_ASSETS else VENDOR_MAX_AGE
        return secured(send_file(folder / asset, mimetype=mimetype, max_age=max_age))

    def document():
        document_bytes()
        return cache["document"]

    app.register_blueprint(bp)
    # The built document (a dict), for tests and tools: app.extensions["agora.openapi"]().
    app.extensions["agora.openapi"] = document
    return bp
