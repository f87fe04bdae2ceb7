"""The OpenAPI document and the API browser, checked without any broker.

The document is built from the real app; it must be valid OpenAPI 3.1, cover
every route, and carry the contract constants themselves (one source of truth).
"""

import copy
import json
from html.parser import HTMLParser

import pytest
from openapi_spec_validator import validate as validate_openapi

from agora.seed import demo_clients
from gateway.api.products import PRODUCT_LIST_QUERY
from gateway.app import create_app
from gateway.openapi import (
    RESPONSE_KEYS,
    SWAGGER_UI_ASSETS,
    UndocumentedRoute,
    build_document,
    metadata_of,
    openapi_path,
    operation,
    swagger_ui_dir,
)
from services.auth.schemas import SCOPES, TOKEN_RESPONSE
from services.catalog.schemas import LIST_QUERY, PRODUCT, PRODUCT_CREATE, PRODUCT_PAGE
from services.users.schemas import REGISTER_REQUEST, USER

pytestmark = pytest.mark.unit

SKIPPED_METHODS = {"HEAD", "OPTIONS"}


def _config(config):
    config = copy.deepcopy(config)
    # Nothing listens here: a test that reached out would fail, not hang.
    config["amqp"]["uri"] = "amqp://guest:guest@127.0.0.1:9/none"
    config["gateway"]["rate_limits"]["enabled"] = False
    config["tracing"]["sample_rate"] = 0.0
    return config


@pytest.fixture(scope="module")
def app(config):
    return create_app(_config(config))


@pytest.fixture(scope="module")
def document(app):
    return build_document(app)


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def routes(app):
    """(rule, method, view) of every route but Flask's own static files."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(set(rule.methods) - SKIPPED_METHODS):
            yield rule, method, app.view_functions[rule.endpoint]


def resolve(document, node):
    """``node`` with every local $ref replaced by its target, recursively."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**resolve(document, target), **resolve(document, rest)}
        return {key: resolve(document, value) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(document, item) for item in node]
    return node


def as_json(value):
    return json.loads(json.dumps(value))


def op(document, method, path):
    return document["paths"][path][method.lower()]


# --- the document ------------------------------------------------------------


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    # OpenAPI 3.1's own dialect: JSON Schema 2020-12 plus the OAS vocabulary (the
    # explicit 2020-12 URI works too, but makes Swagger UI show a warning).
    assert document["jsonSchemaDialect"] == "https://spec.openapis.org/oas/3.1/dialect/base"
    validate_openapi(document)  # the official 3.1 schema (openapi-spec-validator)


def test_document_is_json(document):
    assert as_json(document) == document


def test_every_route_is_documented(app, document):
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    expected = {(method, openapi_path(rule)) for rule, method, _ in routes(app)}
    assert expected == documented
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/docs/{asset}"):
        assert "get" in document["paths"][path]


def test_operation_ids_are_unique_endpoints(app, document):
    ids = [o["operationId"] for ops in document["paths"].values() for o in ops.values()]
    assert len(ids) == len(set(ids))
    assert op(document, "GET", "/v1/products/{product_id}")["operationId"] == (
        "products.get_product"
    )


def test_request_bodies_are_the_contract_constants(app, document):
    checked = 0
    for rule, method, view in routes(app):
        meta = metadata_of(view, method)
        body = op(document, method, openapi_path(rule)).get("requestBody")
        for key, content_type in (
            ("body", "application/json"),
            ("form", "application/x-www-form-urlencoded"),
        ):
            if meta.get(key) is None:
                continue
            schema = body["content"][content_type]["schema"]
            assert resolve(document, schema) == as_json(meta[key]), (method, rule.rule)
            checked += 1
        if body is None:
            assert meta.get("body") is None and meta.get("form") is None
    assert checked >= 5
    register = op(document, "POST", "/v1/users")["requestBody"]["content"]["application/json"]
    assert register["schema"] == {"$ref": "#/components/schemas/RegisterRequest"}
    assert document["components"]["schemas"]["RegisterRequest"] == as_json(REGISTER_REQUEST)
    create = op(document, "POST", "/v1/products")["requestBody"]["content"]["application/json"]
    assert resolve(document, create["schema"]) == as_json(PRODUCT_CREATE)


def test_query_parameters_are_the_contract_properties(document):
    parameters = op(document, "GET", "/v1/products")["parameters"]
    parameters = [p for p in parameters if p["in"] != "header"]  # If-None-Match
    # list_products' arguments, include_inactive spelled as a query string does.
    assert set(PRODUCT_LIST_QUERY["properties"]) == set(LIST_QUERY["properties"])
    assert {p["name"] for p in parameters} == set(PRODUCT_LIST_QUERY["properties"])
    for parameter in parameters:
        name = parameter["name"]
        assert parameter["in"] == "query"
        assert parameter["required"] is (name in PRODUCT_LIST_QUERY["required"])
        assert parameter["schema"] == as_json(PRODUCT_LIST_QUERY["properties"][name])


def test_responses_are_the_contract_constants(app, document):
    for rule, method, view in routes(app):
        meta = metadata_of(view, method)
        responses = op(document, method, openapi_path(rule))["responses"]
        for status, spec in meta["responses"].items():
            is_spec = isinstance(spec, dict) and spec and set(spec) <= RESPONSE_KEYS
            schema = spec.get("schema") if is_spec else spec
            if schema is None:
                continue
            content = responses[str(status)]["content"]
            for media in content.values():
                assert resolve(document, media["schema"]) == as_json(schema), (method, rule.rule)


def test_components_are_named_after_the_contracts(document):
    schemas = document["components"]["schemas"]
    for name, constant in (
        ("Product", PRODUCT),
        ("User", USER),
        ("ProductPage", PRODUCT_PAGE),
        ("TokenResponse", TOKEN_RESPONSE),
    ):
        assert resolve(document, schemas[name]) == as_json(constant), name
    # Nested constants are references, not copies.
    assert schemas["ProductPage"]["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/Product"
    }
    assert schemas["Error"]["required"] == ["error"]
    assert set(schemas["Error"]["properties"]["error"]["required"]) == {
        "code",
        "message",
        "details",
    }
    assert schemas["OAuthError"]["required"] == ["error"]


def test_paths_use_openapi_templates(document):
    assert "/v1/products/{product_id}" in document["paths"]
    assert not any("<" in path for path in document["paths"])
    parameter = op(document, "GET", "/v1/products/{product_id}")["parameters"][0]
    assert parameter == {
        "name": "product_id",
        "in": "path",
        "required": True,
        "schema": parameter["schema"],
    }
    assert parameter["schema"]["type"] == "string"


# --- security ----------------------------------------------------------------


def test_security_schemes(app, document):
    issuer = app.config["AGORA"]["auth"]["issuer"].rstrip("/")
    assert document["servers"] == [{"url": issuer, "description": "This gateway (auth.issuer)"}]
    schemes = document["components"]["securitySchemes"]
    flows = schemes["oauth2"]["flows"]
    assert set(flows) == {"authorizationCode", "password", "clientCredentials"}
    assert flows["authorizationCode"]["authorizationUrl"] == f"{issuer}/oauth/authorize"
    for flow in flows.values():
        assert flow["tokenUrl"] == f"{issuer}/oauth/token"
        assert flow["scopes"] == SCOPES
    assert flows["authorizationCode"]["refreshUrl"] == f"{issuer}/oauth/token"
    assert schemes["clientBasic"] == {
        "type": "http",
        "scheme": "basic",
        "description": schemes["clientBasic"]["description"],
    }
    assert schemes["bearerAuth"]["scheme"] == "bearer"


def test_security_follows_the_required_scopes(app, document):
    secured = anonymous = 0
    for rule, method, view in routes(app):
        operation_ = op(document, method, openapi_path(rule))
        responses = operation_["responses"]
        scopes = getattr(view, "_required_scopes", None)
        if scopes is not None:
            secured += 1
            assert operation_["security"] == [
                {"oauth2": list(scopes)},
                {"bearerAuth": list(scopes)},
            ]
            assert "401" in responses
            # A route whose scope depends on the request (yours: profile,
            # anyone's: users:admin) declares its 403 itself.
            scope_checked = bool(scopes) or 403 in metadata_of(view, method).get("errors", ())
            assert ("403" in responses) is scope_checked, rule.rule
            assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
        elif rule.rule.startswith("/v1/"):
            anonymous += 1
            # A token is optional, and a bad one is refused; a 403 only where the
            # route declares one (a parameter for staff: include_inactive).
            assert operation_["security"][0] == {}
            declared = 403 in metadata_of(view, method).get("errors", ())
            assert "401" in responses and ("403" in responses) is declared, rule.rule
        elif metadata_of(view, method).get("security") == "client":
            assert operation_["security"] == [{"clientBasic": []}, {}]
            assert "401" in responses
        else:
            assert "security" not in operation_, rule.rule
    assert secured >= 4 and anonymous >= 3


def test_automatic_error_responses(document):
    def statuses(method, path):
        return set(op(document, method, path)["responses"])

    assert statuses("POST", "/v1/users") >= {"400", "401", "413", "415", "429", "502", "503"}
    assert statuses("GET", "/v1/products") >= {"400", "401", "414", "429", "502", "503"}
    assert "404" in statuses("GET", "/v1/products/{product_id}")
    assert "415" not in statuses("GET", "/v1/products")
    # Probes are not rate limited and call no service through the breakers.
    assert statuses("GET", "/healthz") == {"200"}
    assert statuses("GET", "/readyz") == {"200", "503"}
    # The deep health report is an admin read: token, scope, rate limit; no breakers.
    assert statuses("GET", "/v1/ops/health") == {"200", "401", "403", "429"}
    health = op(document, "GET", "/v1/ops/health")
    assert {"oauth2": ["ops:read"]} in health["security"]
    assert statuses("GET", "/v1/ops/services") == {"200", "401", "403", "429"}
    assert {"oauth2": ["ops:read"]} in op(document, "GET", "/v1/ops/services")["security"]
    # The OAuth endpoints answer errors in the RFC 6749 form.
    token = op(document, "POST", "/oauth/token")["responses"]
    for status in ("400", "401", "429", "503"):
        schema = token[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/OAuthError"}, status
    limited = op(document, "GET", "/v1/products")["responses"]["429"]["headers"]
    assert {"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Reset"} <= set(limited)
    unavailable = op(document, "GET", "/v1/products")["responses"]["503"]["headers"]
    assert unavailable["Retry-After"] == {"$ref": "#/components/headers/RetryAfter"}


def test_builder_refuses_an_undocumented_route(config):
    app = create_app(_config(config))
    app.add_url_rule("/v1/secret", "secret", lambda: "")
    with pytest.raises(UndocumentedRoute, match="/v1/secret"):
        build_document(app)


def test_operation_refuses_unknown_keys():
    with pytest.raises(TypeError, match="bodyy"):
        operation("Summary", bodyy={})


def test_operation_only_annotates_the_view():
    def view():
        return "ok"

    described = operation("Summary", tags=("x",))(view)
    assert described is view
    assert view._openapi == {"summary": "Summary", "tags": ("x",)}


# --- serving -----------------------------------------------------------------


def test_openapi_json_is_served(client, document):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == document


class _References(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []
        self.inline_scripts = 0
        self.handlers = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        self.handlers += [name for name in attrs if name.startswith("on")]
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts += 1


CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def test_docs_page_uses_only_local_assets_that_are_served(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = _References()
    page.feed(response.get_data(as_text=True))
    assert page.inline_scripts == 0 and page.handlers == []
    assert len(page.urls) >= 4
    for url in page.urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert asset.mimetype == CONTENT_TYPES[suffix], url
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    assert "/docs/swagger-ui-bundle.js" in page.urls and "/docs/init.js" in page.urls


def test_docs_send_a_strict_content_security_policy(client):
    for path in ("/docs", "/docs/init.js", "/docs/oauth2-redirect.html"):
        policy = client.get(path).headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'"  # no inline script, no eval
        assert directives["style-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "*" not in policy and "http:" not in directives["script-src"]


def test_oauth2_redirect_page_and_its_script_are_served(client):
    page = client.get("/docs/oauth2-redirect.html")
    assert page.status_code == 200 and page.mimetype == "text/html"
    scripts = _References()
    scripts.feed(page.get_data(as_text=True))
    assert scripts.inline_scripts == 0
    for url in scripts.urls:
        script = client.get(f"/docs/{url}")
        assert script.status_code == 200 and script.mimetype == "text/javascript"


def test_swagger_ui_is_configured_for_pkce_with_the_public_client(client, app, config):
    page = client.get("/docs").get_data(as_text=True)
    assert 'data-oauth-client-id="agora-web"' in page
    assert 'data-oauth-redirect="/docs/oauth2-redirect.html"' in page
    assert 'data-spec-url="/openapi.json"' in page
    script = client.get("/docs/init.js").get_data(as_text=True)
    assert "usePkceWithAuthorizationCodeGrant: true" in script
    assert "validatorUrl: null" in script
    # The redirect is registered for the demo web client, under the public URL
    # the issuer is too. (Seeded by `agora seed`: the gateway itself is not
    # given the demo settings.)
    issuer = app.config["AGORA"]["auth"]["issuer"].rstrip("/")
    assert issuer == config["gateway"]["public_url"]
    (web, _integration) = demo_clients(config)
    assert f"{issuer}/docs/oauth2-redirect.html" in web["redirect_uris"]


def test_every_swagger_ui_asset_exists_and_renders_openapi_3_1(client):
    folder = swagger_ui_dir()
    for name in SWAGGER_UI_ASSETS:
        assert (folder / name).is_file(), name
    # Swagger UI 5 is the first to render OpenAPI 3.1 documents.
    assert (folder / "VERSION").read_text().strip().startswith("v5.")


def test_unknown_docs_asset_is_a_json_404(client):
    response = client.get("/docs/index.html")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_image_upload_takes_the_image_itself_and_media_is_described(document):
    upload = document["paths"]["/v1/products/{product_id}/images"]["post"]
    content = upload["requestBody"]["content"]
    assert set(content) == {"image/jpeg", "image/png", "image/webp"}
    assert content["image/png"]["schema"] == {"type": "string", "contentMediaType": "image/png"}
    assert {"201", "401", "403", "404", "409", "413", "415", "422"} <= set(upload["responses"])
    assert upload["security"] == [{"oauth2": ["catalog:write"]}, {"bearerAuth": ["catalog:write"]}]
    assert upload["x-rate-limit-group"] == "write"
    delete = document["paths"]["/v1/products/{product_id}/images/{image_id}"]["delete"]
    assert "204" in delete["responses"] and delete["x-rate-limit-group"] == "write"
    media = document["paths"]["/media/{key}"]["get"]
    assert "security" not in media and media["x-rate-limit-group"] == "read"
    assert set(media["responses"]["200"]["content"]) == {"image/webp"}
    assert {"304", "404"} <= set(media["responses"])


def test_media_refuses_keys_that_are_not_stored_images_without_a_store(client):
    for path in ("/media/../setup.cfg", "/media/images/%2e%2e/x.webp", "/media/config/agora.yaml"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found"
