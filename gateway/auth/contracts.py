"""Request and response shapes of the OAuth2 endpoints (for the OpenAPI document).

Form bodies are open (RFC 6749 3.1: unknown parameters are ignored), so these
schemas list what the endpoints read without forbidding the rest.
"""

from services.auth.schemas import GRANT_TYPES, JWKS, SCOPES, TOKEN_RESPONSE

_SHORT = {"type": "string", "maxLength": 2000}

OAUTH_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "error_description": {"type": "string"},
        "error_uri": {"type": "string"},
        "state": {"type": "string"},
    },
    "required": ["error"],
}

CLIENT_AUTH_FIELDS = {
    "client_id": {**_SHORT, "description": "Public clients (and client_secret_post) send it here"},
    "client_secret": {**_SHORT, "description": "client_secret_post; prefer HTTP Basic"},
}

TOKEN_FORM = {
    "type": "object",
    "properties": {
        "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
        "scope": {**_SHORT, "description": "Space-separated scopes"},
        "username": {**_SHORT, "description": "password grant: the user's email"},
        "password": {**_SHORT, "description": "password grant"},
        "refresh_token": {**_SHORT, "description": "refresh_token grant"},
        "code": {**_SHORT, "description": "authorization_code grant"},
        "redirect_uri": {**_SHORT, "description": "authorization_code grant"},
        "code_verifier": {**_SHORT, "description": "authorization_code grant (PKCE)"},
        **CLIENT_AUTH_FIELDS,
    },
    "required": ["grant_type"],
}

TOKEN_TYPE_HINT = {"type": "string", "enum": ["access_token", "refresh_token"]}

REVOKE_FORM = {
    "type": "object",
    "properties": {"token": _SHORT, "token_type_hint": TOKEN_TYPE_HINT, **CLIENT_AUTH_FIELDS},
    "required": ["token"],
}

INTROSPECT_FORM = {
    "type": "object",
    "properties": {"token": _SHORT, "token_type_hint": TOKEN_TYPE_HINT, **CLIENT_AUTH_FIELDS},
    "required": ["token"],
}

INTROSPECTION = {
    "type": "object",
    "properties": {
        "active": {"type": "boolean"},
        "token_type": {"type": "string"},
        "scope": {"type": "string"},
        "client_id": {"type": "string"},
        "sub": {"type": "string"},
        "aud": {"type": "string"},
        "iss": {"type": "string"},
        "exp": {"type": "integer"},
        "iat": {"type": "integer"},
        "nbf": {"type": "integer"},
        "jti": {"type": "string"},
    },
    "required": ["active"],
}

AUTHORIZE_QUERY = {
    "type": "object",
    "properties": {
        "response_type": {"type": "string", "enum": ["code"]},
        "client_id": _SHORT,
        "redirect_uri": _SHORT,
        "scope": _SHORT,
        "state": _SHORT,
        "code_challenge": _SHORT,
        "code_challenge_method": {"type": "string", "enum": ["S256"]},
    },
    "required": ["response_type", "client_id", "code_challenge", "code_challenge_method"],
}

AUTHORIZE_FORM = {
    "type": "object",
    "properties": {
        **AUTHORIZE_QUERY["properties"],
        "email": _SHORT,
        "password": _SHORT,
        "decision": {"type": "string", "enum": ["approve", "deny"]},
    },
    "required": AUTHORIZE_QUERY["required"] + ["decision"],
}

SERVER_METADATA = {
    "type": "object",
    "properties": {
        "issuer": {"type": "string"},
        "authorization_endpoint": {"type": "string"},
        "token_endpoint": {"type": "string"},
        "jwks_uri": {"type": "string"},
        "revocation_endpoint": {"type": "string"},
        "introspection_endpoint": {"type": "string"},
        "scopes_supported": {"type": "array", "items": {"type": "string", "enum": list(SCOPES)}},
        "response_types_supported": {"type": "array", "items": {"type": "string"}},
        "grant_types_supported": {"type": "array", "items": {"type": "string"}},
        "token_endpoint_auth_methods_supported": {"type": "array", "items": {"type": "string"}},
        "revocation_endpoint_auth_methods_supported": {
            "type": "array",
            "items": {"type": "string"},
        },
        "introspection_endpoint_auth_methods_supported": {
            "type": "array",
            "items": {"type": "string"},
        },
        "code_challenge_methods_supported": {"type": "array", "items": {"type": "string"}},
    },
    "required": [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
    ],
}

__all__ = [
    "AUTHORIZE_FORM",
    "AUTHORIZE_QUERY",
    "INTROSPECTION",
    "INTROSPECT_FORM",
    "JWKS",
    "OAUTH_ERROR",
    "REVOKE_FORM",
    "SERVER_METADATA",
    "TOKEN_FORM",
    "TOKEN_RESPONSE",
]
