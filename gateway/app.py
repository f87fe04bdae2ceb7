"""``create_app(config)``: the Flask factory behind gunicorn."""

import atexit

from flask import Flask

from gateway.api import inventory, notifications, orders, payments, products, users
from gateway.api.health import init_health
from gateway.api.images import init_media
from gateway.api.ops import init_ops
from gateway.auth import guard
from gateway.auth import views as oauth
from gateway.auth.server import AgoraAuthorizationServer
from gateway.auth.tokens import KeyCache, TokenVerifier
from gateway.catalog_cache import PRODUCT_EVENTS, CatalogCache
from gateway.errors import register_error_handlers
from gateway.events import EventListener
from gateway.limits import init_limits
from gateway.metrics import init_metrics
from gateway.openapi import init_openapi
from gateway.rpc import RpcClient
from gateway.tracing import init_tracing
from gateway.web import init_cors, init_web
from gateway.workers import worker_index
from services.chassis.config import amqp_uri, load_config, nameko_config, settings_for
from services.chassis.logs import setup_logging
from services.chassis.metrics import enabled as metrics_enabled
from services.chassis.redis import make_client
from services.chassis.tracing import Tracer

SERVICES = ("users", "auth", "catalog", "inventory", "orders", "billing", "notifications")


def create_app(config=None):
    # Only what the gateway reads: no database, no service's settings or secrets.
    config = settings_for(config, "gateway") if config else load_config(process="gateway")
    setup_logging("gateway", config["logging"]["level"])
    gateway = config["gateway"]
    auth = config["auth"]

    app = Flask(__name__)
    app.json.sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = gateway["max_body_bytes"]
    app.config["AGORA"] = config

    tracer = Tracer("gateway", config["tracing"])
    rpc = RpcClient(
        nameko_config(config, "gateway"),
        gateway["rpc"],
        tracer,
        record_metrics=metrics_enabled(config),
    )
    redis = make_client(config["redis"], name="gateway")
    keys = KeyCache(
        lambda: rpc.call("auth", "jwks"),
        ttl=auth["jwks_cache_ttl"],
        min_refresh_interval=auth["jwks_min_refresh_interval"],
    )
    app.extensions["agora.tracer"] = tracer
    app.extensions["agora.rpc"] = rpc
    app.extensions["agora.services"] = SERVICES
    app.extensions["agora.redis"] = redis
    app.extensions["agora.keys"] = keys
    app.extensions["agora.tokens"] = TokenVerifier(keys, auth, revocations=redis)
    catalog_cache = _catalog_cache(config)
    app.extensions["agora.catalog_cache"] = catalog_cache

    # Order matters: trace, identify the caller, rate limit by that identity,
    # then refuse missing/bad tokens and scopes.
    init_tracing(app, tracer)
    register_error_handlers(app)
    # A CORS preflight carries no token and is answered before it is looked for.
    init_cors(app)
    guard.init_identify(app)
    init_health(app)
    init_ops(app)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(products.bp)
    init_media(app)
    app.register_blueprint(orders.bp)
    app.register_blueprint(inventory.bp)
    app.register_blueprint(payments.bp)
    app.register_blueprint(notifications.bp)
    # The storefront at / (and its routes), its assets, /oauth/theme.css.
    init_web(app)
    app.extensions["agora.oauth"] = AgoraAuthorizationServer(app)
    init_limits(app)
    guard.init_enforce(app)
    init_openapi(app)
    # Last: the middleware wraps the whole app, error handlers and limiter included.
    init_metrics(app, config, worker_index())

    atexit.register(rpc.close)
    atexit.register(tracer.close)
    if catalog_cache is not None:
        atexit.register(catalog_cache.stop)
    return app


def _catalog_cache(config):
    """The process's catalog cache, kept live by the catalog's events; None if off."""
    settings = config["gateway"]["catalog_cache"]
    if not settings["enabled"]:
        return None
    cache = CatalogCache(settings["ttl"], settings["max_entries"], settings["max_bytes"])
    listener = EventListener(
        amqp_uri(config, "gateway"), "catalog", PRODUCT_EVENTS, cache.on_event, cache.set_live
    )
    cache.attach(listener)
    return cache
