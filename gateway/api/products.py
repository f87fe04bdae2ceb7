"""/v1/products"""

from flask import Blueprint, jsonify

from gateway.api import created, json_body, query_args, rpc
from gateway.auth.guard import requires
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


def _product_id(product_id):
    if not is_uuid(product_id):
        raise ApiError(404, "not_found", "product not found")
    return product_id


@bp.get("")
@operation(
    "List products, newest first, page by page",
    tags=("products",),
    query=LIST_QUERY,
    responses={200: PRODUCT_PAGE},
)
def list_products():
    query = query_args(LIST_QUERY)
    return jsonify(rpc().call("catalog", "list_products", **query))


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
    responses={200: PRODUCT},
    errors=(404,),
)
def get_product(product_id):
    return jsonify(rpc().call("catalog", "get_product", _product_id(product_id)))


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
