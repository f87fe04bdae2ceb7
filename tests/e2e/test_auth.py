"""OAuth2 end to end: a real OAuth2 client library (authlib's requests client)
against the running gateway and auth service."""

import base64
import json
import re
import secrets
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from cryptography.hazmat.primitives import hashes, hmac
from joserfc import jwt
from joserfc.jwk import RSAKey

from agora.login import LoginError, login
from services.auth.schemas import ADMIN_SCOPES, CUSTOMER_SCOPES, SCOPES
from tests.e2e.conftest import code_flow_login, password_grant
from tests.support.browser import FormBrowser, LoginForm

pytestmark = pytest.mark.e2e


def storefront_callback(platform):
    """The storefront's redirect URI, registered for the demo web client by
    `agora seed` from the platform's public URL (this platform's own port)."""
    return f"{platform.config['gateway']['public_url']}/auth/callback"


def b64(data):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segments(token):
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
    )


def me(base_url, access_token):
    return requests.get(
        f"{base_url}/v1/users/me", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    )


def oauth_error(response, status, error):
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    return response.json()


@pytest.fixture
def web(platform, demo):
    """A session of the public first-party client."""
    session = OAuth2Session(
        client_id=demo["web_client_id"],
        token_endpoint_auth_method="none",
        redirect_uri=storefront_callback(platform),
        code_challenge_method="S256",
    )
    yield session
    session.close()


@pytest.fixture
def integration(platform, demo):
    """A session of the confidential integrations client (HTTP Basic)."""
    session = OAuth2Session(
        client_id=demo["integration_client_id"],
        client_secret=demo["integration_secret"],
        token_endpoint_auth_method="client_secret_basic",
    )
    yield session
    session.close()


@pytest.fixture
def customer(api):
    """A fresh registered customer: (email, password, user)."""
    email = f"auth-{uuid.uuid4().hex[:10]}@example.com"
    password = "correct horse battery"
    response = api.register(email, password)
    assert response.status_code == 201
    return email, password, response.json()


# -- discovery ---------------------------------------------------------------


def test_metadata_and_jwks_are_discoverable(platform, user_token):
    response = requests.get(f"{platform.base_url}/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    document = response.json()
    AuthorizationServerMetadata(document).validate()
    issuer = platform.config["auth"]["issuer"]
    assert document["issuer"] == issuer
    assert document["token_endpoint"] == f"{issuer}/oauth/token"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert set(document["grant_types_supported"]) == {
        "authorization_code",
        "password",
        "refresh_token",
        "client_credentials",
    }

    jwks = requests.get(f"{platform.base_url}/.well-known/jwks.json").json()
    header, claims = segments(user_token)
    assert header == {"alg": "RS256", "kid": header["kid"], "typ": "at+jwt"}
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and "d" not in jwk
    # The published key really verifies the token.
    decoded = jwt.decode(user_token, RSAKey.import_key(jwk), algorithms=["RS256"])
    assert decoded.claims["iss"] == issuer
    assert decoded.claims["aud"] == platform.config["auth"]["audience"]
    assert (
        decoded.claims["exp"] - decoded.claims["iat"] == platform.config["auth"]["access_token_ttl"]
    )
    assert {"sub", "jti", "scope", "client_id", "sid"} <= set(decoded.claims)


def test_the_issuer_and_the_docs_redirect_follow_the_gateways_port(platform, demo):
    """Issue 12: on any port (this platform's is a free one, not 8080) the
    discovery document names the gateway's public URL, and /docs's "Authorize"
    (Swagger UI's redirect page under that URL) is a redirect the demo web
    client may use: the login page is shown, not "redirect_uri not registered"."""
    public_url = platform.config["gateway"]["public_url"]
    assert public_url == platform.base_url and not public_url.endswith(":8080")
    document = requests.get(f"{platform.base_url}/.well-known/oauth-authorization-server").json()
    assert document["issuer"] == public_url
    assert document["authorization_endpoint"] == f"{public_url}/oauth/authorize"
    docs = requests.get(f"{platform.base_url}/docs", timeout=10).text
    assert 'data-oauth-redirect="/docs/oauth2-redirect.html"' in docs
    redirect_uri = f"{public_url}/docs/oauth2-redirect.html"
    assert requests.get(redirect_uri, timeout=10).status_code == 200
    params = {
        "response_type": "code",
        "client_id": demo["web_client_id"],
        "redirect_uri": redirect_uri,
        "scope": "profile",
        "state": "docs",
        "code_challenge": b64(secrets.token_bytes(32)),
        "code_challenge_method": "S256",
    }
    page = requests.get(f"{platform.base_url}/oauth/authorize", params=params, timeout=10)
    assert page.status_code == 200, page.text
    form = LoginForm()
    form.feed(page.text)
    assert form.hidden["redirect_uri"] == redirect_uri
    # Another port's /docs is no redirect of this platform's client.
    elsewhere = {**params, "redirect_uri": "http://127.0.0.1:8095/docs/oauth2-redirect.html"}
    refused = requests.get(f"{platform.base_url}/oauth/authorize", params=elsewhere, timeout=10)
    assert refused.status_code == 400
    assert "redirect" in refused.text


# -- password grant ----------------------------------------------------------


def test_password_grant_then_a_protected_call(platform, web, demo):
    token = web.fetch_token(
        f"{platform.base_url}/oauth/token",
        username=demo["user_email"],
        password=demo["user_password"],
    )
    assert token["token_type"] == "Bearer"
    assert token["refresh_token"]
    assert set(token["scope"].split()) == {"profile", "orders:read", "orders:write"}
    response = web.get(f"{platform.base_url}/v1/users/me")
    assert response.status_code == 200
    assert response.json()["email"] == demo["user_email"]


def test_password_grant_carries_customer_scopes_only(platform, demo):
    """Issue 9, item 6: an admin's password gets no admin scope (RFC 9700 2.4);
    asking for one is invalid_scope, pointing at the code flow."""
    admin = password_grant(
        platform.base_url, demo["web_client_id"], demo["admin_email"], demo["admin_password"]
    )
    assert admin["scope"].split() == list(CUSTOMER_SCOPES)
    for user, secret in (
        (demo["admin_email"], demo["admin_password"]),
        (demo["user_email"], demo["user_password"]),
    ):
        asked = requests.post(
            f"{platform.base_url}/oauth/token",
            data={
                "grant_type": "password",
                "client_id": demo["web_client_id"],
                "username": user,
                "password": secret,
                "scope": "profile catalog:write",
            },
            timeout=10,
        )
        body = oauth_error(asked, 400, "invalid_scope")
        assert "authorization code flow" in body["error_description"]
    # Neither can its refresh token be widened to one.
    wider = requests.post(
        f"{platform.base_url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": demo["web_client_id"],
            "refresh_token": admin["refresh_token"],
            "scope": "profile users:admin",
        },
        timeout=10,
    )
    oauth_error(wider, 400, "invalid_scope")


def test_admin_scopes_through_the_code_flow_of_agora_login(platform, demo):
    """The CLI helper end to end: PKCE, a loopback redirect on a free port, the
    code exchanged; the test plays the browser (log in, approve, follow)."""
    token = code_flow_login(
        platform.base_url,
        demo["web_client_id"],
        demo["admin_email"],
        demo["admin_password"],
        " ".join(SCOPES),
    )
    assert set(ADMIN_SCOPES) <= set(token["scope"].split())
    assert token["refresh_token"]
    listing = requests.get(
        f"{platform.base_url}/v1/users/{uuid.uuid4()}",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert listing.status_code == 404  # users:admin reaches any id; this one is unknown
    # A customer through the same flow gets only what the role allows.
    customer = code_flow_login(
        platform.base_url,
        demo["web_client_id"],
        demo["user_email"],
        demo["user_password"],
        " ".join(SCOPES),
    )
    assert customer["scope"].split() == list(CUSTOMER_SCOPES)


def test_agora_login_stops_when_the_user_denies(platform, demo):
    browser = FormBrowser(demo["admin_email"], demo["admin_password"], decision="deny")
    with pytest.raises(LoginError) as caught:
        login(
            platform.base_url,
            demo["web_client_id"],
            "profile",
            timeout=30,
            show=lambda url: None,
            browse=browser,
        )
    assert "access_denied" in str(caught.value)
    assert browser.redirects[0].startswith("http://127.0.0.1:")


def test_agora_login_command_prints_the_token(platform, demo):
    """``python -m agora login --no-browser``: the URL on stderr, the token on stdout."""
    import os
    import subprocess
    import sys

    command = [
        sys.executable,
        "-m",
        "agora",
        "login",
        "--no-browser",
        "--base-url",
        platform.base_url,
        "--client-id",
        demo["web_client_id"],
        "--scope",
        "profile users:admin",
        "--timeout",
        "30",
    ]
    env = {**os.environ, **platform.env}
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        try:
            url = None
            for line in child.stderr:
                if line.strip().startswith(f"{platform.base_url}/oauth/authorize?"):
                    url = line.strip()
                    break
            assert url, "agora login printed no authorization URL"
            FormBrowser(demo["admin_email"], demo["admin_password"])(url)
            out, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode == 0, err
    access_token = out.strip()
    assert segments(access_token)[1]["scope"] == "profile users:admin"


def test_password_grant_refusals(platform, demo):
    url = f"{platform.base_url}/oauth/token"
    base = {"grant_type": "password", "client_id": demo["web_client_id"]}
    wrong = requests.post(url, data={**base, "username": demo["user_email"], "password": "nope"})
    body = oauth_error(wrong, 400, "invalid_grant")
    assert "password" in body["error_description"]
    assert wrong.headers["Cache-Control"] == "no-store"
    unknown = requests.post(url, data={**base, "username": "ghost@example.com", "password": "x"})
    oauth_error(unknown, 400, "invalid_grant")
    oauth_error(requests.post(url, data={**base, "username": "x"}), 400, "invalid_request")
    bad_scope = {**base, "username": demo["user_email"], "password": demo["user_password"]}
    oauth_error(requests.post(url, data={**bad_scope, "scope": "root"}), 400, "invalid_scope")
    oauth_error(requests.post(url, data={"grant_type": "magic"}), 400, "unsupported_grant_type")
    ghost_client = {**bad_scope, "client_id": "no-such-client"}
    # Every client authentication failure is invalid_client with a 401 (RFC 6749 5.2).
    oauth_error(requests.post(url, data=ghost_client), 401, "invalid_client")
    # The public client may not use client_credentials.
    cc = {"grant_type": "client_credentials", "client_id": demo["web_client_id"]}
    oauth_error(requests.post(url, data=cc), 400, "unauthorized_client")


# -- client credentials ------------------------------------------------------


def test_client_credentials_for_an_integration(platform, integration, demo):
    token = integration.fetch_token(
        f"{platform.base_url}/oauth/token", grant_type="client_credentials"
    )
    assert "refresh_token" not in token
    assert set(token["scope"].split()) == {"catalog:write", "inventory:write"}
    _, claims = segments(token["access_token"])
    assert claims["sub"] == demo["integration_client_id"] == claims["client_id"]
    assert "sid" not in claims

    sku = f"INT-{uuid.uuid4().hex[:8].upper()}"
    created = integration.post(
        f"{platform.base_url}/v1/products",
        json={"sku": sku, "name": "Integration item", "price": {"amount": 100, "currency": "EUR"}},
    )
    assert created.status_code == 201, created.text
    # A client acting for itself has no profile scope, hence no /me.
    assert integration.get(f"{platform.base_url}/v1/users/me").status_code == 403


def test_client_credentials_with_a_wrong_secret(platform, demo):
    session = OAuth2Session(
        client_id=demo["integration_client_id"],
        client_secret="definitely-not-the-secret",
        token_endpoint_auth_method="client_secret_basic",
    )
    response = session.post(
        f"{platform.base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(demo["integration_client_id"], "definitely-not-the-secret"),
        withhold_token=True,
    )
    oauth_error(response, 401, "invalid_client")


# -- refresh rotation and reuse detection ------------------------------------


def test_refresh_rotation_and_reuse_detection(platform, web, customer):
    email, password, _ = customer
    url = f"{platform.base_url}/oauth/token"
    first = web.fetch_token(url, username=email, password=password)
    second = web.refresh_token(url, refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert me(platform.base_url, second["access_token"]).status_code == 200

    # The first refresh token again: reuse, so the whole family is revoked.
    reuse = requests.post(
        url,
        data={
            "grant_type": "refresh_token",
            "client_id": web.client_id,
            "refresh_token": first["refresh_token"],
        },
    )
    body = oauth_error(reuse, 400, "invalid_grant")
    assert "reuse" in body["error_description"]
    # The newest refresh token of the family is dead too ...
    after = requests.post(
        url,
        data={
            "grant_type": "refresh_token",
            "client_id": web.client_id,
            "refresh_token": second["refresh_token"],
        },
    )
    oauth_error(after, 400, "invalid_grant")
    # ... and so are the family's access tokens, before they expire.
    revoked = me(platform.base_url, second["access_token"])
    assert revoked.status_code == 401
    assert 'error="invalid_token"' in revoked.headers["WWW-Authenticate"]


def test_refresh_cannot_widen_the_scope(platform, web, customer):
    email, password, _ = customer
    url = f"{platform.base_url}/oauth/token"
    token = web.fetch_token(url, username=email, password=password, scope="profile")
    wider = requests.post(
        url,
        data={
            "grant_type": "refresh_token",
            "client_id": web.client_id,
            "refresh_token": token["refresh_token"],
            "scope": "profile orders:write",
        },
    )
    oauth_error(wider, 400, "invalid_scope")


# -- authorization code + PKCE -----------------------------------------------


def authorize(platform, session, email, password, decision="approve", scope="profile"):
    """Drive the login-and-consent page as a browser would; returns (verifier, Location)."""
    verifier = secrets.token_urlsafe(48)
    uri, state = session.create_authorization_url(
        f"{platform.base_url}/oauth/authorize", code_verifier=verifier, scope=scope
    )
    page = requests.get(uri, timeout=10)
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    form = LoginForm()
    form.feed(page.text)
    assert form.hidden["state"] == state
    response = requests.post(
        f"{platform.base_url}{form.action}",
        data={**form.hidden, "email": email, "password": password, "decision": decision},
        allow_redirects=False,
        timeout=10,
    )
    return verifier, state, response


def test_authorization_code_with_pkce(platform, web, customer):
    email, password, user = customer
    verifier, state, response = authorize(platform, web, email, password)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(storefront_callback(platform) + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]

    token = web.fetch_token(
        f"{platform.base_url}/oauth/token",
        authorization_response=location,
        code_verifier=verifier,
    )
    assert token["scope"] == "profile"
    assert token["refresh_token"]
    profile = me(platform.base_url, token["access_token"])
    assert profile.status_code == 200
    assert profile.json()["id"] == user["id"]


def test_reused_authorization_code_is_refused_and_revokes_its_tokens(platform, web, customer):
    email, password, _ = customer
    verifier, _, response = authorize(platform, web, email, password)
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "client_id": web.client_id,
        "code": code,
        "redirect_uri": storefront_callback(platform),
        "code_verifier": verifier,
    }
    url = f"{platform.base_url}/oauth/token"
    first = requests.post(url, data=form)
    assert first.status_code == 200, first.text
    oauth_error(requests.post(url, data=form), 400, "invalid_grant")
    # RFC 6749 4.1.2: the tokens issued from the reused code are revoked.
    assert me(platform.base_url, first.json()["access_token"]).status_code == 401
    refresh = {
        "grant_type": "refresh_token",
        "client_id": web.client_id,
        "refresh_token": first.json()["refresh_token"],
    }
    oauth_error(requests.post(url, data=refresh), 400, "invalid_grant")


def test_a_stolen_code_cannot_be_burnt_without_its_verifier(platform, web, customer):
    """Issue 9, item 9 (this test used to assert the opposite: a wrong verifier
    burnt the code). A wrong verifier or redirect_uri leaves the code to the
    client holding the right one, which redeems it exactly once."""
    email, password, _ = customer
    verifier, _, response = authorize(platform, web, email, password)
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    url = f"{platform.base_url}/oauth/token"
    form = {
        "grant_type": "authorization_code",
        "client_id": web.client_id,
        "code": code,
        "redirect_uri": storefront_callback(platform),
    }
    wrong = requests.post(url, data={**form, "code_verifier": secrets.token_urlsafe(48)})
    oauth_error(wrong, 400, "invalid_grant")
    oauth_error(requests.post(url, data=form), 400, "invalid_request")  # no verifier
    elsewhere = {**form, "redirect_uri": "http://127.0.0.1:9/callback", "code_verifier": verifier}
    oauth_error(requests.post(url, data=elsewhere), 400, "invalid_grant")

    right = requests.post(url, data={**form, "code_verifier": verifier})
    assert right.status_code == 200, right.text
    assert me(platform.base_url, right.json()["access_token"]).status_code == 200
    again = requests.post(url, data={**form, "code_verifier": verifier})
    oauth_error(again, 400, "invalid_grant")
    # The second redemption revoked what the first issued (RFC 6749 4.1.2).
    assert me(platform.base_url, right.json()["access_token"]).status_code == 401


def test_authorization_requests_that_are_refused(platform, web, customer):
    email, password, _ = customer
    url = f"{platform.base_url}/oauth/authorize"
    challenge = b64(secrets.token_bytes(32))
    base = {
        "response_type": "code",
        "client_id": web.client_id,
        "redirect_uri": storefront_callback(platform),
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }

    def error_redirect(params):
        response = requests.get(url, params=params, allow_redirects=False)
        assert response.status_code == 302, response.text
        return parse_qs(urlsplit(response.headers["Location"]).query)

    plain = error_redirect({**base, "code_challenge_method": "plain"})
    assert plain["error"] == ["invalid_request"] and plain["state"] == ["s1"]
    missing = error_redirect({k: v for k, v in base.items() if not k.startswith("code_")})
    assert missing["error"] == ["invalid_request"]
    assert error_redirect({**base, "scope": "root"})["error"] == ["invalid_scope"]

    # Unknown client or unregistered redirect_uri: an error page, never a redirect.
    for params in (
        {**base, "client_id": "nobody"},
        {**base, "redirect_uri": "https://evil.example/cb"},
    ):
        page = requests.get(url, params=params, allow_redirects=False)
        assert page.status_code == 400
        assert page.headers["Content-Type"].startswith("text/html")
        assert "evil.example" not in page.headers.get("Location", "")

    # Characters RFC 6749 forbids in error values: a plain 400, not a crash.
    odd = requests.get(url, params={**base, "response_type": "\u00a5"}, allow_redirects=False)
    assert odd.status_code == 400
    assert odd.headers["Content-Type"].startswith("text/html")

    # Deny: back to the client with access_denied.
    _, _, denied = authorize(platform, web, email, password, decision="deny")
    assert denied.status_code == 302
    assert parse_qs(urlsplit(denied.headers["Location"]).query)["error"] == ["access_denied"]
    # A wrong password shows the form again, without a code.
    _, _, wrong = authorize(platform, web, email, "wrong password")
    assert wrong.status_code == 200
    assert "Wrong email or password" in wrong.text
    assert "Location" not in wrong.headers


# -- revocation and introspection -------------------------------------------


def test_revoke_refresh_token_and_access_token(platform, web, customer):
    email, password, _ = customer
    url = f"{platform.base_url}/oauth/token"
    token = web.fetch_token(url, username=email, password=password)
    revoke_url = f"{platform.base_url}/oauth/revoke"
    response = web.revoke_token(
        revoke_url, token=token["refresh_token"], token_type_hint="refresh_token"
    )
    assert response.status_code == 200
    refresh = {
        "grant_type": "refresh_token",
        "client_id": web.client_id,
        "refresh_token": token["refresh_token"],
    }
    oauth_error(requests.post(url, data=refresh), 400, "invalid_grant")
    # Revoking the family also ends its access tokens.
    assert me(platform.base_url, token["access_token"]).status_code == 401

    other = web.fetch_token(url, username=email, password=password)
    assert me(platform.base_url, other["access_token"]).status_code == 200
    response = web.revoke_token(
        revoke_url, token=other["access_token"], token_type_hint="access_token"
    )
    assert response.status_code == 200
    assert me(platform.base_url, other["access_token"]).status_code == 401
    # RFC 7009 2.2: an unknown token is not an error.
    assert web.revoke_token(revoke_url, token="no-such-token").status_code == 200


def test_introspection_for_confidential_clients_only(platform, web, integration, customer):
    email, password, user = customer
    token = web.fetch_token(f"{platform.base_url}/oauth/token", username=email, password=password)
    url = f"{platform.base_url}/oauth/introspect"

    active = integration.introspect_token(url, token=token["access_token"])
    assert active.status_code == 200
    body = active.json()
    assert body["active"] is True
    assert body["sub"] == user["id"]
    assert body["client_id"] == web.client_id
    assert set(body["scope"].split()) == {"profile", "orders:read", "orders:write"}

    refresh = integration.introspect_token(url, token=token["refresh_token"]).json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    assert integration.introspect_token(url, token="garbage").json() == {"active": False}

    # A public client cannot introspect.
    public = requests.post(url, data={"token": token["access_token"], "client_id": web.client_id})
    oauth_error(public, 401, "invalid_client")

    web.revoke_token(f"{platform.base_url}/oauth/revoke", token=token["refresh_token"])
    assert integration.introspect_token(url, token=token["access_token"]).json() == {
        "active": False
    }
    assert integration.introspect_token(url, token=token["refresh_token"]).json() == {
        "active": False
    }


# -- forged tokens at a protected route ---------------------------------------


def test_forged_tokens_are_refused(platform, user_token):
    header, claims = segments(user_token)
    jwks = requests.get(f"{platform.base_url}/.well-known/jwks.json").json()
    public = RSAKey.import_key([k for k in jwks["keys"] if k["kid"] == header["kid"]][0])

    none = f"{b64({**header, 'alg': 'none'})}.{b64(claims)}."
    signing_input = f"{b64({**header, 'alg': 'HS256'})}.{b64(claims)}"
    mac = hmac.HMAC(public.as_pem(private=False), hashes.SHA256())
    mac.update(signing_input.encode())
    hs256 = f"{signing_input}.{b64(mac.finalize())}"
    original_header, _, signature = user_token.split(".")
    tampered = f"{original_header}.{b64({**claims, 'scope': 'profile users:admin'})}.{signature}"
    attacker = RSAKey.generate_key(2048)
    unknown_kid = jwt.encode({**header, "kid": "attacker-key"}, claims, attacker)
    known_kid_foreign_key = jwt.encode(header, claims, attacker)

    for name, token in {
        "alg none": none,
        "HS256 with the public key": hs256,
        "tampered payload": tampered,
        "unknown kid": unknown_kid,
        "foreign key under a known kid": known_kid_foreign_key,
        "garbage": "abc.def.ghi",
    }.items():
        response = me(platform.base_url, token)
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "invalid_token", name
        assert re.match(
            r'Bearer realm="agora", error="invalid_token"', response.headers["WWW-Authenticate"]
        ), name
    assert me(platform.base_url, user_token).status_code == 200


def test_missing_token_and_wrong_scheme(platform):
    response = requests.get(f"{platform.base_url}/v1/users/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer realm="agora", error="invalid_token"'
    )
    assert response.json()["error"]["code"] == "invalid_token"
    basic = requests.get(f"{platform.base_url}/v1/users/me", auth=("a", "b"))
    assert basic.status_code == 401


# -- scopes and object-level access --------------------------------------------


def test_a_user_reaches_only_their_own_record(platform, api, web, customer, admin_token):
    email, password, user = customer
    other = api.register(f"other-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery")
    other_id = other.json()["id"]
    token = web.fetch_token(f"{platform.base_url}/oauth/token", username=email, password=password)
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    base = platform.base_url

    assert requests.get(f"{base}/v1/users/{user['id']}", headers=auth).status_code == 200
    theirs = requests.get(f"{base}/v1/users/{other_id}", headers=auth)
    assert theirs.status_code == 404  # not 403: ids cannot be probed
    assert theirs.json()["error"]["code"] == "not_found"
    assert requests.get(f"{base}/v1/users/{uuid.uuid4()}", headers=auth).status_code == 404

    admin = {"Authorization": f"Bearer {admin_token}"}
    assert requests.get(f"{base}/v1/users/{other_id}", headers=admin).json()["id"] == other_id

    changed = requests.patch(f"{base}/v1/users/me", headers=auth, json={"name": "Renamed"})
    assert changed.status_code == 200 and changed.json()["name"] == "Renamed"
    roles = requests.put(
        f"{base}/v1/users/{user['id']}/roles", headers=auth, json={"roles": ["admin"]}
    )
    assert roles.status_code == 403
    assert roles.json()["error"]["code"] == "insufficient_scope"


def test_reading_your_own_record_by_id_needs_profile(platform, api, demo, customer, admin_token):
    """Issue 9, item 8: /v1/users/{own id} once took any token, so an orders:read
    token read what /v1/users/me keeps behind profile."""
    email, password, user = customer
    base = platform.base_url
    narrow = password_grant(base, demo["web_client_id"], email, password, scope="orders:read")
    assert narrow["scope"] == "orders:read"
    headers = {"Authorization": f"Bearer {narrow['access_token']}"}
    own = requests.get(f"{base}/v1/users/{user['id']}", headers=headers, timeout=10)
    assert own.status_code == 403, own.text
    assert own.json()["error"]["code"] == "insufficient_scope"
    assert 'scope="profile"' in own.headers["WWW-Authenticate"]
    assert requests.get(f"{base}/v1/users/me", headers=headers, timeout=10).status_code == 403

    profile = password_grant(base, demo["web_client_id"], email, password, scope="profile")
    headers = {"Authorization": f"Bearer {profile['access_token']}"}
    assert requests.get(f"{base}/v1/users/{user['id']}", headers=headers).json()["id"] == user["id"]
    # Anyone else's record: users:admin, and without it a 404 (ids cannot be probed).
    other = api.register(f"other-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery")
    other_id = other.json()["id"]
    assert requests.get(f"{base}/v1/users/{other_id}", headers=headers).status_code == 404
    admin = {"Authorization": f"Bearer {admin_token}"}
    assert requests.get(f"{base}/v1/users/{other_id}", headers=admin).json()["id"] == other_id


def test_product_writes_need_catalog_write(platform, user_token, admin_token):
    base = platform.base_url
    body = {
        "sku": f"SCP-{uuid.uuid4().hex[:8].upper()}",
        "name": "Scoped",
        "price": {"amount": 1, "currency": "EUR"},
    }
    denied = requests.post(
        f"{base}/v1/products", json=body, headers={"Authorization": f"Bearer {user_token}"}
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "insufficient_scope"
    challenge = denied.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="catalog:write"' in challenge
    assert requests.post(f"{base}/v1/products", json=body).status_code == 401

    admin = {"Authorization": f"Bearer {admin_token}"}
    created = requests.post(f"{base}/v1/products", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"/v1/products/{created.json()['id']}"
    product_id = created.json()["id"]
    denied = requests.patch(
        f"{base}/v1/products/{product_id}",
        json={"name": "Hacked"},
        headers={"Authorization": f"Bearer {user_token}"},
    )
    assert denied.status_code == 403
    changed = requests.patch(
        f"{base}/v1/products/{product_id}", json={"name": "Renamed"}, headers=admin
    )
    assert changed.status_code == 200 and changed.json()["name"] == "Renamed"
    assert requests.get(f"{base}/v1/products/{product_id}").json()["name"] == "Renamed"


# -- key rotation ------------------------------------------------------------------


def test_key_rotation_keeps_old_tokens_valid(platform, rpc, demo):
    before = password_grant(
        platform.base_url, demo["web_client_id"], demo["user_email"], demo["user_password"]
    )
    old_kid = segments(before["access_token"])[0]["kid"]
    rotated = rpc.auth.rotate_signing_key()
    assert rotated["kid"] != old_kid
    after = password_grant(
        platform.base_url, demo["web_client_id"], demo["user_email"], demo["user_password"]
    )
    assert segments(after["access_token"])[0]["kid"] == rotated["kid"]
    # The gateway had never seen the new kid: it refetches the keys once.
    assert me(platform.base_url, after["access_token"]).status_code == 200
    assert me(platform.base_url, before["access_token"]).status_code == 200
    kids = {
        k["kid"] for k in requests.get(f"{platform.base_url}/.well-known/jwks.json").json()["keys"]
    }
    assert {old_kid, rotated["kid"]} <= kids
