"""The gateway as the storefront's host (issue 12): one public address driving the
issuer and the first-party redirect URIs, CORS for configured origins, the
built app served at ``/`` with its caching rules, the shared theme, and the
authorize page in the app's look. The real gateway app over the run's
RabbitMQ and Redis (and the real users and auth services where a client is
looked up); the "build" is a folder of files the test writes, no npm needed."""

import base64
import copy
import hashlib
import os
import secrets
import uuid
from html.parser import HTMLParser

import pytest

from agora.seed import demo_clients, web_redirect_uris
from gateway.app import create_app
from services.auth.service import AuthService
from services.chassis.config import load_config, public_url
from services.chassis.testing import call_entrypoint as call
from services.users.service import UsersService

pytestmark = pytest.mark.integration

INDEX = b'<!doctype html><html lang="en"><title>Agora</title><div id="root"></div></html>'
BUNDLE = b"console.log('agora');\n"
STYLE = b"body{margin:0}\n"
THEME = b":root { --color-primary: #1d4ed8; }\n.site-header { background: #111827; }\n"
VITE_ORIGIN = "http://localhost:5173"


@pytest.fixture
def dist(tmp_path):
    """A build as Vite lays it out: index.html, hashed assets, a public file."""
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "assets" / "index-Bx3kF9aQ.js").write_bytes(BUNDLE)
    (root / "assets" / "index-D41d8cd9.css").write_bytes(STYLE)
    (root / "favicon.svg").write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"/>')
    (root / ".agora-build-hash").write_text("0" * 64)  # agora/web.py's stamp: not served
    theme = tmp_path / "theme.css"
    theme.write_bytes(THEME)
    return root


def gateway_config(config, redis_client, **gateway):
    """The run's config with the gateway's settings changed; a Redis prefix of its own."""
    cfg = copy.deepcopy(config)
    cfg["redis"]["key_prefix"] = f"{config['redis']['key_prefix']}web-{uuid.uuid4().hex[:8]}:"
    for key, value in gateway.items():
        cfg["gateway"][key] = value
    return cfg


@pytest.fixture
def make_gateway(config, redis_client):
    made = []

    def make(cfg=None, **gateway):
        cfg = cfg or gateway_config(config, redis_client, **gateway)
        made.append(cfg["redis"]["key_prefix"])
        return create_app(cfg).test_client()

    yield make
    for prefix in made:
        for key in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(key)


@pytest.fixture
def web(make_gateway, dist):
    return make_gateway(web={"root": str(dist), "theme": str(dist.parent / "theme.css")})


# -- one public address --------------------------------------------------------


def _load(**env):
    return load_config({**os.environ, **env})


def test_the_public_url_defaults_to_the_bound_address_and_drives_what_is_derived():
    moved = _load(AGORA_GATEWAY_PORT="8095")
    assert public_url(moved) == "http://127.0.0.1:8095"
    assert moved["auth"]["issuer"] == "http://127.0.0.1:8095"
    assert (
        moved["services"]["notifications"]["verify_email_url"]
        == "http://127.0.0.1:8095/v1/users/verify-email"
    )
    # The services that never see the gateway's settings get what derives from it.
    auth = load_config({**os.environ, "AGORA_GATEWAY_PORT": "8095"}, process="auth")
    assert "gateway" not in auth and auth["auth"]["issuer"] == "http://127.0.0.1:8095"
    named = _load(AGORA_PUBLIC_URL="https://shop.example.test/")
    assert public_url(named) == "https://shop.example.test"
    assert named["auth"]["issuer"] == "https://shop.example.test"
    # An explicit issuer wins for the issuer (and stands for the public URL if
    # none is given, as before there was one).
    both = _load(AGORA_PUBLIC_URL="https://shop.example.test", AGORA_AUTH_ISSUER="https://id.test")
    assert (
        public_url(both) == "https://shop.example.test"
        and both["auth"]["issuer"] == "https://id.test"
    )
    assert public_url(_load(AGORA_AUTH_ISSUER="https://id.test")) == "https://id.test"


def test_the_web_clients_redirect_uris_follow_the_public_url():
    cfg = _load(AGORA_GATEWAY_PORT="8095")
    cfg["gateway"]["cors"]["origins"] = [VITE_ORIGIN]
    (web, integration) = demo_clients(cfg)
    assert web["redirect_uris"] == [
        "http://127.0.0.1:8095/auth/callback",
        "http://127.0.0.1:8095/docs/oauth2-redirect.html",
        "http://127.0.0.1/callback",
        f"{VITE_ORIGIN}/auth/callback",
    ]
    assert integration["redirect_uris"] == []
    assert web_redirect_uris(_load())[:2] == [
        "http://127.0.0.1:8080/auth/callback",
        "http://127.0.0.1:8080/docs/oauth2-redirect.html",
    ]


class _Form(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hidden, self.fields, self.labels, self.buttons = {}, {}, {}, []
        self.alert = False
        self._label = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") == "hidden":
            self.hidden[attrs["name"]] = attrs.get("value", "")
        elif tag == "input":
            self.fields[attrs["name"]] = attrs
        if tag == "label":
            self._label = attrs.get("for")
        if tag == "button":
            self.buttons.append((attrs.get("name"), attrs.get("value")))
        if attrs.get("role") == "alert":
            self.alert = True

    def handle_data(self, data):
        if self._label and data.strip():
            self.labels[self._label] = data.strip()
            self._label = None


def _challenge():
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def auth_services(start_service):
    return start_service(UsersService), start_service(AuthService)


def test_docs_authorize_works_on_another_port(auth_services, config, redis_client, make_gateway):
    """The issue's report: with the gateway on 8095, /docs "Authorize" was refused
    ("Redirect URI http://.../docs/oauth2-redirect.html is not supported") and
    the discovery document still said 8080."""
    _users, auth = auth_services
    moved = load_config(
        {**os.environ, "AGORA_GATEWAY_PORT": "8095", "AGORA_REDIS_PREFIX": "unused:"}
    )
    moved["amqp"], moved["redis"] = config["amqp"], config["redis"]
    (web, _integration) = demo_clients(moved)
    client_id = f"agora-web-{uuid.uuid4().hex[:8]}"
    call(auth, "create_client", {**web, "client_id": client_id})
    gateway = make_gateway(gateway_config(moved, redis_client))

    document = gateway.get("/.well-known/oauth-authorization-server").get_json()
    assert document["issuer"] == "http://127.0.0.1:8095"
    assert document["authorization_endpoint"] == "http://127.0.0.1:8095/oauth/authorize"
    openapi = gateway.get("/openapi.json").get_json()
    assert openapi["servers"][0]["url"] == "http://127.0.0.1:8095"

    # Swagger UI sends its redirect page next to /docs, on the page's origin.
    docs = gateway.get("/docs").get_data(as_text=True)
    assert 'data-oauth-redirect="/docs/oauth2-redirect.html"' in docs
    redirect_uri = "http://127.0.0.1:8095/docs/oauth2-redirect.html"
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "profile catalog:write",
        "state": "docs",
        "code_challenge": _challenge(),
        "code_challenge_method": "S256",
    }
    page = gateway.get("/oauth/authorize", query_string=params)
    assert page.status_code == 200, page.get_data(as_text=True)
    form = _Form()
    form.feed(page.get_data(as_text=True))
    assert form.hidden["redirect_uri"] == redirect_uri
    # The old default (8080) is not this gateway's: refused with the error page.
    stale = gateway.get(
        "/oauth/authorize",
        query_string={**params, "redirect_uri": "http://127.0.0.1:8080/docs/oauth2-redirect.html"},
    )
    assert stale.status_code == 400
    assert 'role="alert"' in stale.get_data(as_text=True)


# -- the authorize page's look ---------------------------------------------------


def test_the_authorize_page_uses_the_apps_theme_and_is_accessible(
    auth_services, config, make_gateway, web
):
    _users, auth = auth_services
    client_id = f"page-{uuid.uuid4().hex[:8]}"
    redirect_uri = f"{public_url(config)}/auth/callback"
    call(
        auth,
        "create_client",
        {
            "client_id": client_id,
            "name": "Agora web",
            "public": True,
            "grant_types": ["authorization_code"],
            "scopes": ["profile"],
            "redirect_uris": [redirect_uri],
        },
    )
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "profile",
        "state": "s",
        "code_challenge": _challenge(),
        "code_challenge_method": "S256",
    }
    page = web.get("/oauth/authorize", query_string=params)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<html lang="en">' in html
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in html
    assert 'href="/oauth/theme.css"' in html
    assert '<header class="site-header">' in html and 'class="brand" href="/">Agora</a>' in html
    assert 'class="card' in html and "<h1" in html
    form = _Form()
    form.feed(html)
    assert form.labels == {"email": "Email", "password": "Password"}
    assert form.fields["email"]["id"] == "email" and form.fields["password"]["id"] == "password"
    assert ("decision", "approve") in form.buttons and ("decision", "deny") in form.buttons
    assert not form.alert
    # The stylesheet it links is served, under the page's own CSP (style-src 'self').
    assert "style-src 'self'" in page.headers["Content-Security-Policy"]
    assert web.get("/oauth/theme.css").status_code == 200

    wrong = web.post(
        "/oauth/authorize",
        data={
            **form.hidden,
            "email": "nobody@example.test",
            "password": "x" * 12,
            "decision": "approve",
        },
    )
    assert wrong.status_code == 200
    again = _Form()
    again.feed(wrong.get_data(as_text=True))
    assert again.alert
    assert again.fields["email"]["aria-describedby"] == "login-error"
    assert again.fields["email"]["aria-invalid"] == "true"
    assert again.fields["email"]["value"] == "nobody@example.test"


def test_the_authorize_error_page_has_the_same_look(make_gateway, web):
    page = web.get("/oauth/authorize", query_string={"response_type": "code"})
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert 'href="/oauth/theme.css"' in html and '<header class="site-header">' in html
    assert 'role="alert"' in html and '<html lang="en">' in html


# -- the theme -----------------------------------------------------------------


def test_the_theme_is_served_as_css_with_an_etag(web):
    response = web.get("/oauth/theme.css")
    assert response.status_code == 200
    assert response.data == THEME
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    etag = response.headers["ETag"]
    again = web.get("/oauth/theme.css", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""


def test_the_default_theme_is_the_apps_own_file(config):
    from gateway.web import theme_path

    assert theme_path(config).as_posix().endswith("web/src/theme.css")


# -- the storefront at / ---------------------------------------------------------


def test_the_app_is_served_at_the_root_and_on_its_routes(web):
    for path in ("/", "/products/42", "/orders/0b7e", "/staff/dead-letters", "/auth/callback"):
        response = web.get(path)
        assert response.status_code == 200, path
        assert response.data == INDEX, path
        assert response.headers["Content-Type"] == "text/html; charset=utf-8", path
        assert "Content-Disposition" not in response.headers
        assert response.headers["Cache-Control"] == "no-cache", path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    # Revalidation is cheap: the page has an ETag.
    etag = web.get("/").headers["ETag"]
    assert web.get("/cart", headers={"If-None-Match": etag}).status_code == 304
    # A file at the top of the build is itself.
    icon = web.get("/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert icon.headers["Cache-Control"] == "no-cache"
    # A hidden file of the build (the build's stamp) is not published: the page.
    assert web.get("/.agora-build-hash").data == INDEX


def test_hashed_assets_are_immutable_for_a_year_with_their_types(web):
    script = web.get("/assets/index-Bx3kF9aQ.js")
    assert script.status_code == 200 and script.data == BUNDLE
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert script.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert script.headers["X-Content-Type-Options"] == "nosniff"
    style = web.get("/assets/index-D41d8cd9.css")
    assert style.status_code == 200 and style.mimetype == "text/css"
    assert style.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_a_missing_asset_is_a_json_404_never_the_page(web):
    for path in ("/assets/index-OLDHASH.js", "/assets/../index.html", "/assets/%2e%2e/index.html"):
        response = web.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found", path


def test_the_api_keeps_its_json_404s(web):
    for path in ("/v1/nothing-here", "/oauth/nothing", "/.well-known/nothing", "/docs/nothing.js"):
        response = web.get(path)
        assert response.status_code == 404, path
        assert response.is_json, path
    # Only GET (and HEAD) fall back to the app; other methods stay errors.
    assert web.post("/products/42").status_code in (404, 405)
    assert web.post("/products/42").is_json
    assert web.head("/orders").status_code == 200


def test_without_a_build_the_root_answers_web_not_built(make_gateway, tmp_path):
    gateway = make_gateway(
        web={"root": str(tmp_path / "missing"), "theme": str(tmp_path / "t.css")}
    )
    for path in ("/", "/orders/1"):
        response = gateway.get(path)
        assert response.status_code == 503, path
        body = response.get_json()
        assert body["error"]["code"] == "web_not_built"
        assert "make run" in body["error"]["message"]
    assert gateway.get("/favicon.ico").status_code == 404
    # The API itself is unaffected.
    assert gateway.get("/healthz").status_code == 200


def test_the_default_root_is_no_longer_a_json_404(make_gateway):
    """Built or not, / is the storefront's: its page or the 503 telling to build it."""
    response = make_gateway().get("/")
    assert response.status_code in (200, 503)
    if response.status_code == 503:
        assert response.get_json()["error"]["code"] == "web_not_built"
    else:
        assert response.mimetype == "text/html"


# -- CORS --------------------------------------------------------------------------


@pytest.fixture
def cors(make_gateway):
    return make_gateway(cors={"origins": [VITE_ORIGIN]})


def test_a_preflight_from_an_allowed_origin_is_answered_without_a_token(cors):
    headers = {
        "Origin": VITE_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }
    # A protected route: a preflight never carries the token, and is not refused for it.
    response = cors.options("/v1/orders", headers=headers)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == VITE_ORIGIN
    allowed = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert allowed == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    names = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "if-none-match"} <= names
    assert "X-RateLimit-Limit" not in response.headers  # not counted against the caller
    assert "Origin" in response.headers["Vary"]
    # The actual request is answered with the origin and the headers it may read.
    actual = cors.get("/v1/orders", headers={"Origin": VITE_ORIGIN})
    assert actual.status_code == 401
    assert actual.headers["Access-Control-Allow-Origin"] == VITE_ORIGIN
    exposed = {h.strip() for h in actual.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"ETag", "Location", "Retry-After", "X-RateLimit-Remaining"} <= exposed
    token = cors.options("/oauth/token", headers={**headers, "Access-Control-Request-Headers": ""})
    assert token.status_code == 204
    assert token.headers["Access-Control-Allow-Origin"] == VITE_ORIGIN


def test_a_preflight_from_another_origin_is_refused(cors, make_gateway):
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"}
    response = cors.options("/v1/products/x", headers=headers)
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.get_json()["error"]["code"] == "origin_not_allowed"
    actual = cors.get("/v1/products", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in actual.headers
    # With no origins configured (test, production), nobody is allowed.
    closed = make_gateway(cors={"origins": []})
    refused = closed.options(
        "/v1/orders", headers={"Origin": VITE_ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers


def test_the_development_overlay_allows_the_vite_dev_server():
    development = load_config({**os.environ, "AGORA_ENV": "development"})
    assert set(development["gateway"]["cors"]["origins"]) == {
        "http://localhost:5173",
        "http://127.0.0.1:5173",
    }
    assert load_config({**os.environ, "AGORA_ENV": "test"})["gateway"]["cors"]["origins"] == []
