"""The OAuth2 authorization server: authlib's protocol handling over the auth service.

authlib parses and validates the requests and shapes the RFC responses; every
piece of state (clients, codes, refresh-token families, signing keys) lives in
the auth service and is reached over RPC. Users are checked by the users
service. The atomic steps (redeeming a code, rotating a refresh token) happen
in the auth service in one transaction each, so two racing requests can never
both succeed.
"""

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import current_app, g

from gateway.auth.client_auth import authenticate_client
from gateway.auth.tokens import TokenError, unverified_header
from gateway.limits import note_login_failure
from services.auth.schemas import (
    CLIENT_ID,
    CODE_VERIFIER,
    PASSWORD_GRANT_SCOPES,
    SCOPES,
    redirect_uri_allowed,
)
from services.chassis.errors import InvalidCredentials, InvalidGrant, NotFound, ValidationError
from services.chassis.schemas import is_uuid, pattern_matches

CONFIDENTIAL_METHODS = ["client_secret_basic", "client_secret_post"]
ANY_CLIENT_METHODS = CONFIDENTIAL_METHODS + ["none"]


def _rpc():
    return current_app.extensions["agora.rpc"]


def _valid_client_id(client_id):
    return isinstance(client_id, str) and pattern_matches(CLIENT_ID["pattern"], client_id)


class Client(ClientMixin):
    def __init__(self, data):
        self.data = data
        self.client_id = data["client_id"]
        self.public = data["public"]
        self.scopes = data["scopes"]
        self.redirect_uris = data["redirect_uris"]
        self.grant_types = data["grant_types"]

    @property
    def is_confidential(self):
        return not self.public

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        # With several registered URIs the request must name one (RFC 6749 3.1.2.3).
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope):
        if not scope:
            return " ".join(self.scopes)
        allowed = [s for s in scope_to_list(scope) if s in self.scopes]
        return " ".join(dict.fromkeys(allowed)) or None

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri_allowed(self.redirect_uris, redirect_uri)

    def check_client_secret(self, client_secret):
        if self.public or not isinstance(client_secret, str) or not client_secret:
            return False
        return bool(_rpc().call("auth", "verify_client_secret", self.client_id, client_secret))

    def check_endpoint_auth_method(self, method, endpoint):
        if self.public:
            return method == "none"
        return method in CONFIDENTIAL_METHODS

    def check_response_type(self, response_type):
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type):
        return grant_type in self.grant_types


class User:
    """The resource owner of a grant; ``family_id`` continues a code's token family.

    Only the id goes to the auth service: it asks the users service for the
    roles itself, so nothing the gateway (or anyone on the broker) sends can
    widen a grant."""

    def __init__(self, data, family_id=None):
        self.id = data["id"]
        self.email = data.get("email")
        self.family_id = family_id

    def get_user_id(self):
        return self.id


def load_user(user_id, family_id=None):
    """The user, if they still exist, or None."""
    if not is_uuid(user_id):
        return None
    try:
        return User(_rpc().call("users", "get_user", user_id), family_id)
    except NotFound:
        return None


def check_user_credentials(email, password):
    """The user for these credentials, or None (same answer for every failure)."""
    if not isinstance(email, str) or not isinstance(password, str):
        return None
    if len(email) > 254 or len(password) > 1024 or "\x00" in email + password:
        return None
    try:
        return User(_rpc().call("users", "authenticate", email, password))
    except (InvalidCredentials, ValidationError):
        return None


class AgoraAuthorizationServer(AuthorizationServer):
    def __init__(self, app):
        super().__init__()
        self.init_app(
            app, query_client=self._cached_client_lookup, save_token=self._nothing_to_save
        )
        self.scopes_supported = list(SCOPES)
        self.register_token_generator("default", self._issue)
        if password_grant_enabled(app.config["AGORA"]):
            self.register_grant(PasswordGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(RefreshTokenGrant)
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)

    def authenticate_client(self, request, methods, endpoint="token"):
        """Client authentication with one RFC 6749 answer per failure (client_auth)."""
        return authenticate_client(self.query_client, request, methods, endpoint)

    @staticmethod
    def _cached_client_lookup(client_id):
        """One lookup per request however often authlib asks."""
        cache = g.setdefault("oauth_clients", {})
        if client_id not in cache:
            cache[client_id] = _query_client(client_id)
        return cache[client_id]

    @staticmethod
    def _nothing_to_save(token, request):
        """Nothing to do: the auth service stored the refresh token when it issued it."""

    @staticmethod
    def _issue(grant_type, client, user=None, scope=None, expires_in=None, **kwargs):
        include_refresh = bool(kwargs.get("include_refresh_token")) and user is not None
        request = {
            "client_id": client.client_id,
            "grant_type": grant_type,
            "scope": scope,
            "user": {"id": user.id} if user else None,
            "include_refresh_token": include_refresh,
        }
        if user is not None and user.family_id:
            request["family_id"] = user.family_id
        return _rpc().call("auth", "issue_token", request)


def _query_client(client_id):
    if not _valid_client_id(client_id):
        return None
    try:
        return Client(_rpc().call("auth", "get_client", client_id))
    except NotFound:
        return None


def password_grant_enabled(config):
    """``auth.password_grant``: off, the token endpoint answers unsupported_grant_type."""
    return bool(config["auth"]["password_grant"])


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    """Customer scopes only (``PASSWORD_GRANT_SCOPES``; the auth service caps
    them too). Asking for an admin scope here is ``invalid_scope``, before the
    password is even checked: admins log in with the code flow and PKCE."""

    TOKEN_ENDPOINT_AUTH_METHODS = ANY_CLIENT_METHODS

    def authenticate_user(self, username, password):
        scope = self.request.payload.scope
        beyond = [name for name in scope_to_list(scope) or () if name not in PASSWORD_GRANT_SCOPES]
        if any(name in SCOPES for name in beyond):
            raise InvalidScopeError(
                "the password grant carries customer scopes only; admin scopes need the "
                "authorization code flow with PKCE (agora login)"
            )
        user = check_user_credentials(username, password)
        if user is None:
            note_login_failure()
            # RFC 6749 5.2: invalid resource owner credentials are invalid_grant.
            raise InvalidGrantError("invalid username or password")
        return user


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_METHODS


class RefreshCredential:
    def __init__(self, token, info):
        self.token = token
        self.info = info

    def check_client(self, client):
        return self.info["client_id"] == client.client_id

    def get_scope(self):
        return self.info["scope"]

    def get_user_id(self):
        return self.info["user_id"]


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ANY_CLIENT_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        # Used tokens are let through to the rotation, which detects the
        # reuse and revokes the family; other dead tokens stop here.
        if not isinstance(refresh_token, str) or not 0 < len(refresh_token) <= 512:
            return None
        try:
            info = _rpc().call("auth", "get_refresh_token", refresh_token)
        except (NotFound, ValidationError):
            return None
        if info["status"] not in ("active", "used"):
            raise InvalidGrantError(f"the refresh token is {info['status']}")
        return RefreshCredential(refresh_token, info)

    def authenticate_user(self, refresh_token):
        user = load_user(refresh_token.get_user_id())
        if user is None:
            raise InvalidGrantError("the refresh token's user no longer exists")
        return user

    def issue_token(self, user, refresh_token):
        try:
            return _rpc().call(
                "auth",
                "rotate_refresh_token",
                {
                    "client_id": self.request.client.client_id,
                    "refresh_token": refresh_token.token,
                    "scope": self.request.payload.scope or None,
                },
            )
        except InvalidGrant as exc:
            raise InvalidGrantError(exc.message) from None

    def revoke_old_credential(self, refresh_token):
        """Nothing to do: the rotation marked it used in the same transaction."""


class AuthorizationCodeRecord:
    def __init__(self, data):
        self.data = data
        self.code_challenge = data["code_challenge"]
        self.code_challenge_method = data["code_challenge_method"]

    def get_redirect_uri(self):
        return self.data["redirect_uri"]

    def get_scope(self):
        return self.data["scope"]


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ANY_CLIENT_METHODS

    def create_authorization_response(self, redirect_uri, grant_user):
        """Ask the auth service for the code (it stores it, hashed, single-use)."""
        if not grant_user:
            raise AccessDeniedError(redirect_uri=redirect_uri)
        self.request.user = grant_user
        payload = self.request.payload
        issued = _rpc().call(
            "auth",
            "create_authorization_code",
            {
                "client_id": self.request.client.client_id,
                "user": {"id": grant_user.id},
                "redirect_uri": payload.redirect_uri,
                "scope": self.request.scope or None,
                "code_challenge": payload.data.get("code_challenge"),
                "code_challenge_method": payload.data.get("code_challenge_method"),
                "nonce": payload.data.get("nonce"),
            },
        )
        params = [("code", issued["code"])]
        if payload.state:
            params.append(("state", payload.state))
        return 302, "", [("Location", add_params_to_uri(redirect_uri, params))]

    def query_authorization_code(self, code, client):
        """Redeem the code in the auth service, which checks the PKCE verifier and
        the redirect_uri in the same step that consumes it: a wrong one leaves
        the code to the client that holds the right one. (authlib checks both
        again afterwards, against the redeemed code: they hold.)"""
        if not isinstance(code, str) or not 0 < len(code) <= 512:
            return None
        form = self.request.form
        verifier = form.get("code_verifier")
        if not verifier:
            raise InvalidRequestError("Missing 'code_verifier': PKCE is required")
        if not isinstance(verifier, str) or not pattern_matches(CODE_VERIFIER["pattern"], verifier):
            raise InvalidRequestError("Invalid 'code_verifier'")
        request = {
            "client_id": client.client_id,
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": self.request.payload.redirect_uri or None,
        }
        try:
            data = _rpc().call("auth", "redeem_authorization_code", request)
        except InvalidGrant as exc:
            raise InvalidGrantError(exc.message) from None
        except ValidationError:
            return None
        return AuthorizationCodeRecord(data)

    def authenticate_user(self, authorization_code):
        return load_user(authorization_code.data["user_id"], authorization_code.data["family_id"])

    def save_authorization_code(self, code, request):  # pragma: no cover - replaced above
        raise NotImplementedError

    def delete_authorization_code(self, authorization_code):
        """Nothing to do: redeeming marked it used."""


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only, required on every authorization request (RFC 7636;
    ``plain`` is refused)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class AccessTokenRecord:
    """A JWT access token presented for revocation or introspection."""

    type = "access_token"

    def __init__(self, claims):
        self.claims = claims

    def check_client(self, client):
        return self.claims["client_id"] == client.client_id

    def is_expired(self):
        return False  # verification already refused expired tokens

    def is_revoked(self):
        return False  # likewise


class RefreshTokenRecord:
    type = "refresh_token"

    def __init__(self, token, info):
        self.token = token
        self.info = info

    def check_client(self, client):
        return self.info["client_id"] == client.client_id

    def is_expired(self):
        return self.info["status"] == "expired"

    def is_revoked(self):
        return self.info["status"] in ("revoked", "used")


def find_token(token, hint):
    """The token as the authorization server knows it, or None if it is not live."""
    if not isinstance(token, str) or not token or len(token) > 8192:
        return None
    looks_like_jwt = token.count(".") == 2
    order = ("access_token", "refresh_token") if looks_like_jwt else ("refresh_token",)
    for kind in order:
        if kind == "access_token":
            try:
                unverified_header(token)
                claims = current_app.extensions["agora.tokens"].verify(token)
            except TokenError:
                continue
            return AccessTokenRecord(claims)
        if len(token) > 512:
            continue
        try:
            info = _rpc().call("auth", "get_refresh_token", token)
        except (NotFound, ValidationError):
            continue
        return RefreshTokenRecord(token, info)
    return None


class Revocation(RevocationEndpoint):
    """RFC 7009. Public clients identify themselves with ``client_id``.

    A refresh token revokes its whole family (and so every access token that
    came from it); an access token is refused until it would have expired."""

    CLIENT_AUTH_METHODS = ANY_CLIENT_METHODS

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def revoke_token(self, token, request):
        client_id = request.client.client_id
        if isinstance(token, AccessTokenRecord):
            claims = token.claims
            _rpc().call("auth", "revoke_access_token", claims["jti"], claims["exp"], client_id)
        else:
            _rpc().call("auth", "revoke_refresh_token", client_id, token.token)


class Introspection(IntrospectionEndpoint):
    """RFC 7662, for confidential clients (resource servers) only."""

    CLIENT_AUTH_METHODS = CONFIDENTIAL_METHODS

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        return client.is_confidential

    def introspect_token(self, token):
        if isinstance(token, AccessTokenRecord):
            claims = token.claims
            payload = {
                "active": True,
                "token_type": "Bearer",
                "scope": claims["scope"],
                "client_id": claims["client_id"],
                "sub": claims["sub"],
                "aud": claims["aud"],
                "iss": claims["iss"],
                "exp": claims["exp"],
                "iat": claims["iat"],
                "jti": claims["jti"],
            }
            if claims.get("nbf") is not None:
                payload["nbf"] = claims["nbf"]
            return payload
        info = token.info
        return {
            "active": True,
            "token_type": "refresh_token",
            "scope": info["scope"],
            "client_id": info["client_id"],
            "sub": info["user_id"],
            "exp": info["expires_at"],
            "iat": info["issued_at"],
            "iss": current_app.config["AGORA"]["auth"]["issuer"],
        }
