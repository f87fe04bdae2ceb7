"""Client authentication at the token, revocation and introspection endpoints
(RFC 6749 2.3 and 5.2), with one answer per failure.

authlib's own ``ClientAuthentication`` tries each method in turn and, whatever
went wrong, answers "The client cannot authenticate with methods: [...]". Here
the request says which method it uses (an ``Authorization: Basic`` header, a
``client_secret`` form field, or ``client_id`` alone), and each failure gets its
RFC 6749 error and a description of its own:

- no client identification at all, an unknown client, a wrong secret, a
  confidential client without its secret, a public client sending a secret, a
  method the endpoint does not take: ``invalid_client``, 401 (with
  ``WWW-Authenticate: Basic``, which RFC 6749 5.2 requires when the client
  tried the ``Authorization`` header);
- a public client asking for a grant only confidential clients may use
  (``client_credentials``): ``unauthorized_client``, 400.

Client ids are public (they travel in browsers' URLs), so saying that one is
unknown reveals nothing a client secret protects.
"""

from authlib.oauth2.rfc6749.errors import InvalidClientError, UnauthorizedClientError
from authlib.oauth2.rfc6749.util import extract_basic_authorization

BASIC, POST, NONE = "client_secret_basic", "client_secret_post", "none"


def _invalid_client(description):
    return InvalidClientError(status_code=401, description=description)


def _presented(request):
    """``(method, client_id, secret)`` as the request presents the client."""
    header = request.headers.get("Authorization") or ""
    if header.split(None, 1)[:1] and header.split(None, 1)[0].lower() == "basic":
        client_id, secret = extract_basic_authorization(request.headers)
        if not client_id or not secret:
            raise _invalid_client(
                "the HTTP Basic credentials are malformed: send base64(client_id:client_secret)"
            )
        return BASIC, client_id, secret
    data = request.payload.data
    if data.get("client_secret"):
        return POST, data.get("client_id"), data.get("client_secret")
    return NONE, data.get("client_id"), None


def authenticate_client(query_client, request, methods, endpoint):
    """The authenticated client, or the OAuth2 error that says what is wrong.

    ``methods`` are the methods this grant or endpoint accepts; ``endpoint`` is
    ``token``, ``revocation`` or ``introspection``."""
    method, client_id, secret = _presented(request)
    if not client_id:
        raise _invalid_client(
            "no client authentication: a public client sends client_id, a confidential "
            "client its client_id and client_secret (HTTP Basic or form fields)"
        )
    client = query_client(client_id)
    if client is None:
        raise _invalid_client(f"unknown client {client_id[:100]!r}")

    if client.public:
        if method != NONE:
            raise _invalid_client(
                "the client is public and has no secret: send client_id alone, without "
                "client_secret or HTTP Basic credentials"
            )
        if NONE not in methods:
            if endpoint == "token":
                grant_type = request.payload.grant_type
                raise UnauthorizedClientError(
                    f"a public client may not use grant_type={grant_type}: "
                    "it is for confidential clients only"
                )
            raise _invalid_client(f"the {endpoint} endpoint is for confidential clients only")
    else:
        if method == NONE:
            raise _invalid_client(
                "the client is confidential: authenticate with its client_secret "
                "(HTTP Basic or the client_secret form field)"
            )
        if method not in methods or not client.check_endpoint_auth_method(method, endpoint):
            accepted = ", ".join(m for m in methods if m != NONE)
            raise _invalid_client(f"{method} is not accepted here; use {accepted}")
        if not client.check_client_secret(secret):
            raise _invalid_client("client authentication failed: the client secret is wrong")

    request.auth_method = method
    return client
