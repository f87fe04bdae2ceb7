"""/v1/inventory: stock levels per SKU.

Reading stock is public (it is product availability, as the catalog is);
setting it needs ``inventory:write``. A malformed SKU answers 404, as an
unknown one does.
"""

from flask import Blueprint, jsonify

from gateway.api import json_body, rpc
from gateway.auth.guard import requires
from gateway.errors import ApiError
from gateway.openapi import operation
from services.chassis.schemas import pattern_matches
from services.inventory.schemas import SKU, STOCK, STOCK_SET

bp = Blueprint("inventory", __name__, url_prefix="/v1/inventory")

SKU_PARAM = {"sku": SKU}


def _sku_or_404(sku):
    if not pattern_matches(SKU["pattern"], sku):  # RE2: "SKU%0A" is refused
        raise ApiError(404, "not_found", "no stock is known for this SKU")
    return sku


@bp.get("/<sku>")
@operation(
    "Stock of one SKU: per warehouse and in total",
    tags=("inventory",),
    path_params=SKU_PARAM,
    responses={200: STOCK},
    errors=(404,),
)
def get_stock(sku):
    return jsonify(rpc().call("inventory", "get_stock", _sku_or_404(sku)))


@bp.put("/<sku>")
@operation(
    "Set the stock on hand of one SKU in one warehouse",
    description=(
        "Sets the absolute quantity on hand (a stock count), not a delta. 409 when it "
        "would fall below what is reserved there for orders in progress; 404 "
        "`unknown_sku` when no catalog product has the SKU (create the product first)."
    ),
    tags=("inventory",),
    path_params=SKU_PARAM,
    body=STOCK_SET,
    responses={200: STOCK},
    errors=(404, 409),
)
@requires("inventory:write")
def set_stock(sku):
    sku = _sku_or_404(sku)
    body = json_body(STOCK_SET)
    return jsonify(rpc().call("inventory", "set_stock", sku, body["warehouse"], body["on_hand"]))
