"""The gateway's access line (``gateway.access``): one per request, naming the
route template (never the ids in the path), the status, the duration and the
request's trace id, the one answered in X-B3-TraceId. Real app, RabbitMQ, Redis."""

import copy
import io
import json
import logging
import uuid

import pytest

from gateway.app import create_app
from services.chassis.logs import JsonFormatter

pytestmark = pytest.mark.integration
OWN_VHOST = True  # no catalog consumes here: a product read is a 503 at once


@pytest.fixture
def app_and_lines(config):
    cfg = copy.deepcopy(config)
    cfg["redis"]["key_prefix"] = f"{config['redis']['key_prefix']}access-{uuid.uuid4().hex[:8]}:"
    cfg["gateway"]["catalog_cache"]["enabled"] = False
    app = create_app(cfg)
    # create_app configured logging for the process: listen to the access logger itself.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("gateway"))
    access = logging.getLogger("gateway.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    yield app, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    access.removeHandler(handler)
    app.extensions["agora.rpc"].close()
    app.extensions["agora.redis"].close()


def test_one_access_line_per_request_with_its_route_template_and_trace(app_and_lines):
    app, lines = app_and_lines
    client = app.test_client()
    trace_id = uuid.uuid4().hex
    product_id = str(uuid.uuid4())
    response = client.get(
        f"/v1/products/{product_id}",
        headers={"X-B3-TraceId": trace_id, "X-B3-SpanId": uuid.uuid4().hex[:16]},
    )
    assert response.status_code == 503  # no catalog on this vhost
    client.get("/v1/no/such/route")

    first, second = lines()
    assert first["trace_id"] == trace_id == response.headers["X-B3-TraceId"]
    assert (first["http_method"], first["route"], first["status"]) == (
        "GET",
        "/v1/products/<product_id>",
        503,
    )
    assert first["path"] == f"/v1/products/{product_id}"
    assert first["duration_ms"] >= 0
    assert first["message"].startswith("GET /v1/products/<product_id> 503 ")
    assert (second["route"], second["status"]) == ("unmatched", 404)
    assert second["trace_id"] not in (None, trace_id)
