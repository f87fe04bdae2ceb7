"""Catalog contracts (JSON Schema 2020-12): RPC arguments, results and event payloads.

Imported by the gateway to validate request bodies, so this module has no side
effects and imports nothing but the chassis schema helpers and the pure domain.
"""

from services.catalog import domain
from services.chassis.schemas import SKU_MESSAGE, SKU_PATTERN, UUID_PATTERN, obj

_TIMESTAMP = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"}

SKU = {
    "type": "string",
    "pattern": SKU_PATTERN,
    "x-message": SKU_MESSAGE,
}
NAME = {"type": "string", "minLength": 1, "maxLength": domain.NAME_MAX}
DESCRIPTION = {"type": "string", "maxLength": domain.DESCRIPTION_MAX}
PRICE = obj(
    {
        "amount": {"type": "integer", "minimum": 0, "maximum": domain.MAX_AMOUNT},
        "currency": {
            "type": "string",
            "pattern": domain.CURRENCY_PATTERN,
            "x-message": domain.CURRENCY_MESSAGE,
        },
    },
    required=("amount", "currency"),
)
ACTIVE = {"type": "boolean"}

# An image of a product: its renditions as WebP (longest side: media.sizes),
# served with an ETag and a year-long immutable Cache-Control. ``width`` and
# ``height`` are the detail rendition's.
IMAGE_ID = {"type": "string", "pattern": domain.IMAGE_ID_PATTERN}
_IMAGE_KEY = {"type": "string", "pattern": domain.IMAGE_KEY_PATTERN}
_DIMENSION = {"type": "integer", "minimum": 1, "maximum": domain.IMAGE_SIDE_MAX}
# Absolute, printable ASCII without spaces (the URL's own characters).
_URL = {"type": "string", "pattern": "^https?://[!-~]+$"}
PRODUCT_IMAGE = obj(
    {
        "id": IMAGE_ID,
        "width": _DIMENSION,
        "height": _DIMENSION,
        "urls": obj({"list": _URL, "detail": _URL}, required=("list", "detail")),
    },
    required=("id", "width", "height", "urls"),
)

PRODUCT = obj(
    {
        "id": {"type": "string", "pattern": UUID_PATTERN},
        "sku": SKU,
        "name": NAME,
        "description": DESCRIPTION,
        "price": PRICE,
        "active": ACTIVE,
        "created_at": _TIMESTAMP,
        "updated_at": _TIMESTAMP,
        # The first is the main image; empty when the product has none.
        "images": {"type": "array", "items": PRODUCT_IMAGE, "maxItems": domain.IMAGES_MAX},
    },
    required=(
        "id",
        "sku",
        "name",
        "description",
        "price",
        "active",
        "created_at",
        "updated_at",
        "images",
    ),
)

# description defaults to "" and active to true.
PRODUCT_CREATE = obj(
    {"sku": SKU, "name": NAME, "description": DESCRIPTION, "price": PRICE, "active": ACTIVE},
    required=("sku", "name", "price"),
)

# The SKU is the product's business key and cannot change: it is an unknown field here.
PRODUCT_UPDATE = obj(
    {"name": NAME, "description": DESCRIPTION, "price": PRICE, "active": ACTIVE},
    minProperties=1,
)

PRODUCT_PAGE = obj(
    {
        "items": {"type": "array", "items": PRODUCT},
        "next_cursor": {"type": ["string", "null"]},
    },
    required=("items", "next_cursor"),
)

# list_products arguments as they arrive from an HTTP query string (limit
# already converted to int); absent parameters are simply left out.
LIST_QUERY = obj(
    {
        "limit": {"type": "integer", "minimum": 1, "maximum": domain.LIMIT_MAX},
        "cursor": {"type": "string", "minLength": 1, "maxLength": domain.CURSOR_MAX},
        "q": {"type": "string", "maxLength": domain.QUERY_MAX},
        # Staff only (the gateway asks for catalog:write): inactive products too.
        "include_inactive": {"type": "boolean"},
    }
)

# known_skus arguments: which of these SKUs has a product (inventory's projection
# of the catalog's SKUs asks when it meets one it has not heard of yet).
KNOWN_SKUS_ARGS = obj(
    {"skus": {"type": "array", "items": SKU, "maxItems": domain.KNOWN_SKUS_MAX}},
    required=("skus",),
)

# add_product_image arguments: an image the gateway has already processed and
# stored (the bytes never travel over RabbitMQ), by its rendition keys.
_RENDITION = obj(
    {"key": _IMAGE_KEY, "width": _DIMENSION, "height": _DIMENSION},
    required=("key", "width", "height"),
)
IMAGE_ADD = obj(
    {
        "id": IMAGE_ID,
        "renditions": obj({"list": _RENDITION, "detail": _RENDITION}, ("list", "detail")),
    },
    required=("id", "renditions"),
)

# remove_product_image's result: the product, and the keys of the removed image
# that no product refers to any more (the gateway deletes those objects).
IMAGE_REMOVED = obj(
    {
        "product": PRODUCT,
        "unreferenced_keys": {"type": "array", "items": _IMAGE_KEY},
    },
    required=("product", "unreferenced_keys"),
)

# Event payloads: catalog.product_created and catalog.product_updated.
PRODUCT_EVENT = obj({"product": PRODUCT}, required=("product",))

__all__ = [
    "PRODUCT",
    "PRODUCT_CREATE",
    "PRODUCT_UPDATE",
    "PRODUCT_PAGE",
    "LIST_QUERY",
    "KNOWN_SKUS_ARGS",
    "PRODUCT_EVENT",
    "PRODUCT_IMAGE",
    "IMAGE_ADD",
    "IMAGE_REMOVED",
]

# Events this service emits (its part of docs/asyncapi.yaml).
# RPC methods a caller may send again after a timeout or a transient failure
# (services/chassis/service_client.py retries only these): reads, which change
# nothing. Any other method may have run when its caller gave up waiting.
IDEMPOTENT_RPC = frozenset({"get_product", "health", "known_skus", "list_products"})

EVENTS = {
    "product_created": {
        "version": 1,
        "summary": "A product was added to the catalog (inventory learns its SKU)",
        "payload": obj({"product": PRODUCT}, ("product",)),
    },
    "product_updated": {
        "version": 1,
        "summary": "A product's name, description, price, active flag or images changed",
        "payload": obj({"product": PRODUCT}, ("product",)),
    },
}
