"""/v1/products

Reads are public and the same for every caller: they carry a strong ``ETag``
(a hash of the body), answer ``304`` to a matching ``If-None-Match``, and come
from the gateway's catalog cache when it holds them (:mod:`gateway.catalog_cache`).

``Cache-Control: no-cache`` (``public`` for anonymous requests, ``private``
for requests with a token): any cache may keep the body but must revalidate it
before each use. A ``max-age`` would let a browser or a proxy show a price for
seconds after it changed, which the gateway's own cache never does; a
revalidation costs one round trip answered with ``304`` and no body, without
an RPC when the gateway's cache holds the product.
"""

import hashlib

from flask import Blueprint, Response, current_app, jsonify, request

from gateway.api import created, json_body, query_args, rpc
from gateway.auth.guard import demand_scopes, requires
from gateway.catalog_cache import list_key, product_key
from gateway.errors import ApiError
from gateway.openapi import operation
from services.catalog.schemas import (
    LIST_QUERY,
    PRODUCT,
    PRODUCT_CREATE,
    PRODUCT_PAGE,
    PRODUCT_UPDATE,
)
from services.chassis.schemas import UUID_PATTERN, is_uuid

bp = Blueprint("products", __name__, url_prefix="/v1/products")

PRODUCT_ID = {"product_id": {"type": "string", "pattern": UUID_PATTERN}}
_CONDITIONAL = {
    "If-None-Match": {
        "schema": {"type": "string"},
        "description": "ETags of copies the client holds: 304 if one is current",
    }
}
_VALIDATORS = {
    "ETag": {"type": "string"},
    "Cache-Control": {"type": "string"},
}
_NOT_MODIFIED = {"description": "Not modified: the copy named by If-None-Match is current"}


def _public_read(key, load):
    """The JSON answer of a public catalog read, from the gateway's cache or
    ``load()`` (an RPC), with its ETag; 304 when the client's copy is current."""
    cache = current_app.extensions.get("agora.catalog_cache")
    entry = None
    if cache is not None:
        cache.start()
        entry = cache.get(key)
    if entry is not None:
        body, etag = entry.body, entry.etag
    else:
        ticket = cache.ticket() if cache is not None else None
        body = jsonify(load()).get_data()
        etag = hashlib.sha256(body).hexdigest()[:32]
        if cache is not None:
            cache.put(key, ticket, body, etag)
    if request.if_none_match.contains_weak(etag):  # RFC 9110 13.1.2: weak comparison
        response = Response(status=304)
    else:
        response = Response(body, mimetype=current_app.json.mimetype)
    response.set_etag(etag)
    shared = "public" if "Authorization" not in request.headers else "private"
    response.headers["Cache-Control"] = f"{shared}, no-cache"
    response.vary.add("Authorization")
    return response


def _product_id(product_id):
    if not is_uuid(product_id):
        raise ApiError(404, "not_found", "product not found")
    return product_id


STAFF_SCOPE = "catalog:write"
# The query string of GET /v1/products: list_products' arguments, with
# include_inactive spelled as query strings are.
PRODUCT_LIST_QUERY = {
    **LIST_QUERY,
    "properties": {
        **LIST_QUERY["properties"],
        "include_inactive": {
            "enum": ["true", "false"],
            "description": "true: deactivated products too (staff: needs a token with "
            f"`{STAFF_SCOPE}`; never cached)",
        },
    },
}


def _staff_listing(query):
    """Every product, deactivated ones too: for staff only, so never served from
    or stored in the gateway's cache of public reads (nor the catalog's)."""
    demand_scopes(STAFF_SCOPE)
    response = jsonify(rpc().call("catalog", "list_products", **query, include_inactive=True))
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("")
@operation(
    "List products, newest first, page by page",
    description=(
        "Active products, public and cached (ETag, `If-None-Match`). With "
        f"`include_inactive=true` deactivated products are listed too: staff only, "
        f"401 without a token and 403 without `{STAFF_SCOPE}`; that listing is never "
        "cached (`Cache-Control: private, no-store`, no ETag)."
    ),
    tags=("products",),
    query=PRODUCT_LIST_QUERY,
    headers=_CONDITIONAL,
    responses={
        200: {
            "schema": PRODUCT_PAGE,
            "headers": {
                **_VALIDATORS,
                "ETag": {
                    "schema": {"type": "string"},
                    "required": False,
                    "description": "Absent from the staff listing (include_inactive=true)",
                },
            },
        },
        304: _NOT_MODIFIED,
    },
    errors=(403,),
)
def list_products():
    query = query_args(PRODUCT_LIST_QUERY)
    if query.pop("include_inactive", "false") == "true":
        return _staff_listing(query)
    return _public_read(list_key(query), lambda: rpc().call("catalog", "list_products", **query))


@bp.post("")
@operation(
    "Create a product",
    tags=("products",),
    body=PRODUCT_CREATE,
    responses={201: {"schema": PRODUCT, "headers": {"Location": {"type": "string"}}}},
    errors=(409,),
)
@requires("catalog:write")
def create_product():
    payload = json_body(PRODUCT_CREATE)
    product = rpc().call("catalog", "create_product", payload)
    return created(product, f"/v1/products/{product['id']}")


@bp.get("/<product_id>")
@operation(
    "Get one product",
    tags=("products",),
    path_params=PRODUCT_ID,
    headers=_CONDITIONAL,
    responses={200: {"schema": PRODUCT, "headers": _VALIDATORS}, 304: _NOT_MODIFIED},
    errors=(404,),
)
def get_product(product_id):
    product_id = _product_id(product_id)
    # Not found is not cached: the catalog answers it, so a product created
    # after a 404 is seen at once.
    return _public_read(
        product_key(product_id), lambda: rpc().call("catalog", "get_product", product_id)
    )


@bp.patch("/<product_id>")
@operation(
    "Change a product",
    tags=("products",),
    path_params=PRODUCT_ID,
    body=PRODUCT_UPDATE,
    responses={200: PRODUCT},
    errors=(404,),
)
@requires("catalog:write")
def update_product(product_id):
    product_id = _product_id(product_id)
    changes = json_body(PRODUCT_UPDATE)
    return jsonify(rpc().call("catalog", "update_product", product_id, changes))
