"""/v1/products"""

from flask import Blueprint, jsonify, request

from gateway.api import rpc
from gateway.errors import ApiError
from services.catalog.schemas import LIST_QUERY
from services.chassis.schemas import is_uuid, validate

bp = Blueprint("products", __name__, url_prefix="/v1/products")


def _list_query():
    query = {}
    for key in request.args:
        values = request.args.getlist(key)
        if len(values) > 1:
            raise ApiError(400, "validation_error", "invalid query", {key: "must be given once"})
        query[key] = values[0]
    if "limit" in query:
        try:
            query["limit"] = int(query["limit"])
        except ValueError:
            raise ApiError(
                400, "validation_error", "invalid query", {"limit": "must be an integer"}
            ) from None
    return validate(LIST_QUERY, query, "invalid query")


@bp.get("")
def list_products():
    query = _list_query()
    return jsonify(rpc().call("catalog", "list_products", **query))


@bp.get("/<product_id>")
def get_product(product_id):
    if not is_uuid(product_id):
        raise ApiError(404, "not_found", "product not found")
    return jsonify(rpc().call("catalog", "get_product", product_id))
