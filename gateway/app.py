"""``create_app(config)``: the Flask factory behind gunicorn."""

import atexit

from flask import Flask

from gateway.api import health, products, users
from gateway.errors import register_error_handlers
from gateway.rpc import RpcClient
from gateway.tracing import init_tracing
from services.chassis.config import load_config, nameko_config
from services.chassis.logs import setup_logging
from services.chassis.redis import make_client
from services.chassis.tracing import Tracer

SERVICES = ("users", "catalog")


def create_app(config=None):
    config = config or load_config()
    setup_logging("gateway", config["logging"]["level"])
    gateway = config["gateway"]

    app = Flask(__name__)
    app.json.sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = gateway["max_body_bytes"]
    app.config["AGORA"] = config

    tracer = Tracer("gateway", config["tracing"])
    rpc = RpcClient(nameko_config(config, "gateway"), gateway["rpc"], tracer)
    app.extensions["agora.tracer"] = tracer
    app.extensions["agora.rpc"] = rpc
    app.extensions["agora.services"] = SERVICES
    app.extensions["agora.redis"] = make_client(config["redis"], name="gateway")

    init_tracing(app, tracer)
    register_error_handlers(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(products.bp)

    atexit.register(rpc.close)
    atexit.register(tracer.close)
    return app
