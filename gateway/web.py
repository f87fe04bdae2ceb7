"""The storefront at ``/`` (the Vite build of ``web/``), the shared theme, and CORS.

The single-page app is a folder of files (``gateway.web.root``, default
``web/dist``, which `make run` builds): ``index.html``, hashed bundles under
``assets/`` and a few fixed files (``favicon.svg``...). The gateway serves:

- ``/assets/<file>``: the hashed bundles, ``Cache-Control: public,
  max-age=31536000, immutable`` (a new build has new names); a missing one is a
  404 JSON, never ``index.html`` (a stale page asking for an old bundle must
  fail loudly, not parse HTML as JavaScript);
- ``/`` and every other GET that no API route answers and that is not under a
  reserved prefix (``/v1/``, ``/oauth/``, ``/.well-known/``, ``/docs``,
  ``/media/``, the probes, ``/metrics``): the file of that name at the top of
  the build if there is one, else ``index.html`` (the app's own router draws
  ``/orders/42``: history fallback), with ``Cache-Control: no-cache``, so a new
  build is picked up on the next load;
- with no build, ``/`` and the app's routes answer a JSON 503 ``web_not_built``
  saying how to build it (the API keeps working).

``/oauth/theme.css`` is ``web/src/theme.css`` as it is in the repository (no
build step): the look the authorize page shares with the app.

CORS: ``gateway.cors.origins`` (the Vite dev server of `make web-dev`) may call
the API from the browser. A preflight is answered here, before the token
check and the rate limiter (it carries no token and must not spend the
caller's budget); an actual response gets ``Access-Control-Allow-Origin`` for
an allowed origin only.
"""

import mimetypes
from pathlib import Path

from flask import Blueprint, current_app, request, send_file
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join

from gateway.errors import ApiError, error_response
from gateway.limits import group
from gateway.openapi import operation
from services.chassis.config import ROOT

# Paths the app never owns: an unknown one there is the API's JSON 404.
RESERVED_PREFIXES = ("/v1/", "/oauth/", "/.well-known/", "/docs/", "/media/", "/assets/")
RESERVED_PATHS = frozenset({"/v1", "/oauth", "/docs", "/media", "/healthz", "/readyz", "/metrics"})

INDEX = "index.html"
ASSETS = "assets"
ASSET_CACHE = "public, max-age=31536000, immutable"
# The content types a build holds, whatever the host's mime.types says.
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".txt": "text/plain",
}

# The app's page: its own scripts and styles only (Vite emits no inline script;
# React sets style attributes, hence 'unsafe-inline' for styles), images from
# anywhere over HTTPS (a bucket's public URL may serve product images), API
# calls to this origin, never framed.
APP_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob: https:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
CORS_ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, If-None-Match"
CORS_EXPOSE_HEADERS = (
    "ETag, Location, Retry-After, X-B3-TraceId, Agora-Degraded, Idempotent-Replayed, "
    "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
)
# How long a browser may reuse a preflight's answer (seconds).
CORS_MAX_AGE = "600"

bp = Blueprint("web", __name__)


def _path(setting):
    path = Path(setting)
    return path if path.is_absolute() else ROOT / path


def web_root(config):
    """The folder of the built app (``gateway.web.root``), absolute."""
    return _path(config["gateway"]["web"]["root"])


def theme_path(config):
    """The shared stylesheet (``gateway.web.theme``), absolute."""
    return _path(config["gateway"]["web"]["theme"])


def _content_type(name):
    suffix = Path(name).suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def _send(path, cache_control):
    response = send_file(path, mimetype=_content_type(path.name), conditional=True, etag=True)
    response.headers["Cache-Control"] = cache_control
    response.headers["X-Content-Type-Options"] = "nosniff"
    # A page or a script, not a download: no Content-Disposition.
    response.headers.pop("Content-Disposition", None)
    return response


def _not_built():
    return error_response(
        503,
        "web_not_built",
        "the storefront is not built: `make run` builds it "
        "(or: .venv/bin/python -m agora web-build); the API under /v1/ works meanwhile",
        {"root": str(current_app.extensions["agora.web_root"])},
        {"Retry-After": "60", "Cache-Control": "no-store"},
    )


def _app_page():
    """``index.html`` for ``/`` and every route of the app, or the 503."""
    index = current_app.extensions["agora.web_root"] / INDEX
    if not index.is_file():
        return _not_built()
    response = _send(index, "no-cache")
    response.headers["Content-Security-Policy"] = APP_CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


_HTML = {"content_type": "text/html", "schema": {"type": "string"}}
_NOT_BUILT = {
    "description": "The storefront is not built yet (`web_not_built`): the API still works",
}


@bp.get("/")
@operation(
    "The storefront: the single-page app (index.html; its routes answer the same page)",
    description=(
        "`index.html` of the built app, `Cache-Control: no-cache`. Every GET path "
        "outside the API's prefixes that names no file of the build answers it too "
        "(the app's router draws the page). 503 `web_not_built` until `make run` "
        "(or `python -m agora web-build`) has built `web/`."
    ),
    tags=("web",),
    responses={200: {**_HTML, "description": "The app's page"}},
    errors=(503,),
    rpc=False,
)
@group("exempt")
def index():
    return _app_page()


@bp.get("/assets/<path:asset>")
@operation(
    "A hashed file of the storefront's build (script, style, image), cached for a year",
    tags=("web",),
    path_params={"asset": {"type": "string", "pattern": "^[A-Za-z0-9._/-]+$"}},
    responses={
        200: {
            "content_type": ("text/javascript", "text/css", "image/svg+xml", "image/png"),
            "schema": {"type": "string"},
            "description": "The file, `Cache-Control: public, max-age=31536000, immutable`",
        }
    },
    errors=(404,),
    rpc=False,
)
@group("exempt")
def asset(asset):
    folder = current_app.extensions["agora.web_root"] / ASSETS
    found = safe_join(str(folder), asset)
    if found is None or not Path(found).is_file():
        raise ApiError(404, "not_found", "no such file in the storefront's build")
    return _send(Path(found), ASSET_CACHE)


@bp.get("/oauth/theme.css")
@operation(
    "The stylesheet the authorize page shares with the storefront (web/src/theme.css)",
    tags=("web",),
    responses={
        200: {
            "content_type": "text/css",
            "schema": {"type": "string"},
            "description": "The stylesheet, with an ETag (revalidated: `no-cache`)",
        }
    },
    errors=(404,),
    rpc=False,
)
@group("exempt")
def theme():
    path = current_app.extensions["agora.web_theme"]
    if not path.is_file():
        raise ApiError(404, "not_found", "the theme is missing (web/src/theme.css)")
    return _send(path, "no-cache")


def _is_reserved(path):
    return path in RESERVED_PATHS or path.startswith(RESERVED_PREFIXES)


def _history_fallback():
    """A GET that matched no route: a file at the top of the build, or the app's
    page for the app's own routes; anything else stays the API's JSON 404."""
    path = request.path
    if request.method not in ("GET", "HEAD") or _is_reserved(path):
        return None
    root = current_app.extensions["agora.web_root"]
    name = path.lstrip("/")
    if name and "/" not in name and not name.startswith("."):
        found = safe_join(str(root), name)
        if found is not None and Path(found).is_file():
            return _send(Path(found), "no-cache")
    if Path(name).suffix and not (root / INDEX).is_file():
        return None  # /favicon.ico without a build: a plain 404, not "build the app"
    return _app_page()


def _cors_origin():
    """The request's Origin if it is allowed (gateway.cors.origins), else None."""
    origin = request.headers.get("Origin")
    if origin and origin in current_app.extensions["agora.cors_origins"]:
        return origin
    return None


def _preflight():
    """Answer a CORS preflight before the token check and the rate limiter."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    if "Origin" not in request.headers:
        return None
    origin = _cors_origin()
    if origin is None:
        return error_response(
            403,
            "origin_not_allowed",
            f"cross-origin requests from {request.headers['Origin']!r} are not allowed "
            "(gateway.cors.origins)",
            headers={"Vary": "Origin"},
        )
    response = current_app.response_class(status=204)
    del response.headers["Content-Type"]
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
    response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
    response.headers["Vary"] = "Origin"
    return response


def _cors_headers(response):
    origins = current_app.extensions["agora.cors_origins"]
    if not origins:
        return response
    # Whether the answer holds the header depends on Origin: caches must know.
    response.vary.add("Origin")
    origin = _cors_origin()
    if origin is not None and "Access-Control-Allow-Origin" not in response.headers:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    return response


def init_cors(app):
    """Call first (before the token check and the limiter register their hooks)."""
    app.extensions["agora.cors_origins"] = frozenset(
        app.config["AGORA"]["gateway"]["cors"]["origins"]
    )
    app.before_request(_preflight)
    app.after_request(_cors_headers)


def init_web(app):
    """Serve the storefront and the theme; unmatched GETs fall back to the app."""
    config = app.config["AGORA"]
    app.extensions["agora.web_root"] = web_root(config)
    app.extensions["agora.web_theme"] = theme_path(config)
    app.register_blueprint(bp)

    @app.errorhandler(NotFound)
    def not_found(exc):
        if request.url_rule is None:
            page = _history_fallback()
            if page is not None:
                return page
        return error_response(404, "not_found", exc.description or exc.name)
