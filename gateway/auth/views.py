"""OAuth2 endpoints (RFC 6749, 7009, 7636, 7662, 8414) and the published keys (RFC 7517)."""

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from flask import Blueprint, current_app, jsonify, render_template, request

from gateway.auth import contracts
from gateway.auth.server import check_user_credentials, password_grant_enabled
from gateway.errors import ApiError
from gateway.limits import group, note_login_failure
from gateway.openapi import operation
from services.auth.schemas import CODE_CHALLENGE_METHODS, GRANT_TYPES, SCOPES

bp = Blueprint("oauth", __name__)

# The login-and-consent page must never be framed, cached or leak its URL.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def server():
    return current_app.extensions["agora.oauth"]


def _refuse_unprintable(call, *args, **kwargs):
    """authlib echoes request values into error descriptions and raises
    ValueError when they hold characters RFC 6749 forbids there; answer that
    as the malformed request it is."""
    try:
        return call(*args, **kwargs)
    except ValueError:
        raise ApiError(
            400, "invalid_request", "the request holds characters OAuth 2.0 does not allow"
        ) from None


FORM_ENCODED = "application/x-www-form-urlencoded"


def _form_encoded_only():
    """RFC 6749 section 4 (and RFC 7009 2.1, RFC 7662 2.1): these endpoints take
    ``application/x-www-form-urlencoded``; a JSON body would otherwise read as a
    request without parameters (``unsupported_grant_type``)."""
    if request.mimetype != FORM_ENCODED:
        sent = request.mimetype or "no Content-Type"
        raise ApiError(
            400,
            "invalid_request",
            f"this endpoint takes {FORM_ENCODED} parameters (RFC 6749 section 4), not {sent}",
            headers={"Cache-Control": "no-store"},
        )


def _page(template, status=200, **context):
    body = render_template(template, scopes=SCOPES, **context)
    return body, status, {**PAGE_HEADERS, "Content-Type": "text/html; charset=utf-8"}


_HTML = {"content_type": "text/html", "schema": {"type": "string"}}


@bp.post("/oauth/token")
@operation(
    "Get tokens (RFC 6749): password, client_credentials, refresh_token, authorization_code",
    tags=("oauth",),
    form=contracts.TOKEN_FORM,
    responses={200: contracts.TOKEN_RESPONSE},
    errors=(400, 401),
    oauth=True,
    security="client",
)
def token():
    _form_encoded_only()
    return _refuse_unprintable(server().create_token_response)


@bp.get("/oauth/authorize")
@operation(
    "Login and consent page of the authorization code flow (PKCE S256 required)",
    tags=("oauth",),
    query=contracts.AUTHORIZE_QUERY,
    responses={
        200: {**_HTML, "description": "The login and consent form"},
        302: {"description": "Back to the client's redirect_uri with an error"},
    },
    errors=(400,),
    error_content_type="text/html",
    oauth=True,
)
@group("oauth")
def authorize_page():
    grant, refusal = _consent_grant()
    if refusal is not None:
        return refusal
    return _consent_page(grant)


@bp.post("/oauth/authorize")
@operation(
    "Submit the login and consent form: redirects with a code, or shows the form again",
    tags=("oauth",),
    form=contracts.AUTHORIZE_FORM,
    responses={
        200: {**_HTML, "description": "The form again (wrong email or password)"},
        302: {"description": "Back to the client's redirect_uri with a code or an error"},
    },
    errors=(400,),
    error_content_type="text/html",
    oauth=True,
)
@group("oauth")
def authorize_submit():
    grant, refusal = _consent_grant()
    if refusal is not None:
        return refusal
    user = None
    if request.form.get("decision") == "approve":
        user = check_user_credentials(request.form.get("email"), request.form.get("password"))
        if user is None:
            note_login_failure()
            return _consent_page(
                grant, error="Wrong email or password.", email=request.form.get("email", "")
            )
    # No user: the resource owner denied, and the client gets access_denied.
    return _refuse_unprintable(server().create_authorization_response, grant=grant, grant_user=user)


def _consent_grant():
    """``(grant, None)`` for a valid authorization request, else ``(None, refusal)``:
    the error page, or the redirect back to a verified redirect_uri."""
    try:
        return server().get_consent_grant(end_user=None), None
    except OAuth2Error as error:
        return None, _authorize_error(error)
    except ValueError:
        error = InvalidRequestError("the request holds characters not allowed")
        return None, _authorize_error(error)


def _consent_page(grant, error=None, email=""):
    names = contracts.AUTHORIZE_QUERY["properties"]
    params = {name: request.values.get(name) for name in names if request.values.get(name)}
    scope = grant.request.scope
    return _page(
        "authorize.html",
        client=grant.client,
        requested=scope.split() if scope else [],
        params=params,
        error=error,
        email=email,
    )


def _authorize_error(error):
    # RFC 6749 4.1.2.1: redirect only to a redirect_uri verified for the client.
    if getattr(error, "redirect_uri", None):
        return server().handle_error_response(None, error)
    return _page(
        "authorize_error.html",
        400,
        error=error.error,
        description=error.get_error_description() or error.error,
    )


@bp.post("/oauth/revoke")
@operation(
    "Revoke a refresh token (its whole family) or an access token (RFC 7009)",
    tags=("oauth",),
    form=contracts.REVOKE_FORM,
    responses={200: {"type": "object"}},
    errors=(400, 401),
    oauth=True,
    security="client",
)
@group("oauth")
def revoke():
    _form_encoded_only()
    return _refuse_unprintable(server().create_endpoint_response, "revocation")


@bp.post("/oauth/introspect")
@operation(
    "Describe a token (RFC 7662); confidential clients only",
    tags=("oauth",),
    form=contracts.INTROSPECT_FORM,
    responses={200: contracts.INTROSPECTION},
    errors=(400, 401),
    oauth=True,
    security="client",
)
@group("oauth")
def introspect():
    _form_encoded_only()
    return _refuse_unprintable(server().create_endpoint_response, "introspection")


@bp.get("/.well-known/oauth-authorization-server")
@operation(
    "Authorization server metadata (RFC 8414)",
    tags=("oauth",),
    responses={200: contracts.SERVER_METADATA},
)
@group("oauth")
def metadata():
    issuer = current_app.config["AGORA"]["auth"]["issuer"].rstrip("/")
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            grant
            for grant in GRANT_TYPES
            if grant != "password" or password_grant_enabled(current_app.config["AGORA"])
        ],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "code_challenge_methods_supported": list(CODE_CHALLENGE_METHODS),
        "service_documentation": f"{issuer}/docs",
    }
    response = jsonify(document)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.get("/.well-known/jwks.json")
@operation(
    "The public keys that sign access tokens (RFC 7517)",
    tags=("oauth",),
    responses={200: contracts.JWKS},
    rpc=True,
)
@group("oauth")
def jwks():
    keys = current_app.extensions["agora.keys"]
    response = jsonify(keys.jwks())
    # Short enough that a rotation reaches verifiers well before old keys drop out.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
