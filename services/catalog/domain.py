"""Catalog rules with no I/O: money, SKUs, list cursors, product changes and views.

Nothing here touches Nameko, a database session or Redis, so every rule is
unit-tested without brokers.
"""

import uuid

from services.chassis import cursors, values
from services.chassis.values import Money, isoformat_utc, parse_uuid, utcnow

# Money and its bounds are the chassis's, shared with orders and billing.
CURRENCY_PATTERN = values.CURRENCY_PATTERN
CURRENCY_MESSAGE = values.CURRENCY_MESSAGE
MAX_AMOUNT = values.MAX_AMOUNT
NAME_MAX = 200
# known_skus answers for at most this many SKUs at once (inventory's largest sync).
KNOWN_SKUS_MAX = 1000
DESCRIPTION_MAX = 5000
QUERY_MAX = 100
LIMIT_DEFAULT = 20
LIMIT_MAX = 100
CURSOR_MAX = cursors.CURSOR_MAX
# Product images: an id is 32 hex digits (from the detail rendition's hash), a
# rendition's key is content-addressed (gateway/images.py), a product has at
# most IMAGES_MAX images.
IMAGE_ID_PATTERN = r"^[0-9a-f]{32}$"
IMAGE_KEY_PATTERN = r"^images/[0-9a-f]{64}\.webp$"
IMAGE_SIDE_MAX = 8192
IMAGES_MAX = 12


def parse_product_id(value):
    """The canonical UUID string of ``value``, or None if it is not a UUID."""
    parsed = parse_uuid(value)
    return str(parsed) if parsed else None


def new_product(payload):
    """Column values for a validated ``PRODUCT_CREATE`` payload, defaults applied."""
    price = Money.from_dict(payload["price"])
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "sku": payload["sku"],
        "name": payload["name"],
        "description": payload.get("description", ""),
        "price_amount": price.amount,
        "price_currency": price.currency,
        "active": payload.get("active", True),
        "created_at": now,
        "updated_at": now,
    }


def product_changes(changes):
    """Column values for a validated ``PRODUCT_UPDATE``; always bumps ``updated_at``."""
    values = {key: changes[key] for key in ("name", "description", "active") if key in changes}
    if "price" in changes:
        price = Money.from_dict(changes["price"])
        values["price_amount"] = price.amount
        values["price_currency"] = price.currency
    values["updated_at"] = utcnow()
    return values


def product_view(row, media_base):
    """The public product dict (the ``PRODUCT`` contract) of a stored product;
    image URLs are ``<media_base>/<key>`` (see services.chassis.objectstore)."""
    return {
        "id": str(row.id),
        "sku": row.sku,
        "name": row.name,
        "description": row.description,
        "price": Money(row.price_amount, row.price_currency).to_dict(),
        "active": row.active,
        "created_at": isoformat_utc(row.created_at),
        "updated_at": isoformat_utc(row.updated_at),
        "images": [image_view(image, media_base) for image in row.images],
    }


def image_view(image, media_base):
    """One ``PRODUCT_IMAGE`` of a stored image row."""
    return {
        "id": image.image_id,
        "width": image.width,
        "height": image.height,
        "urls": {
            "list": f"{media_base}/{image.list_key}",
            "detail": f"{media_base}/{image.detail_key}",
        },
    }


def new_image(product_id, image, position):
    """Column values of a validated ``IMAGE_ADD`` as the product's image at ``position``."""
    renditions = image["renditions"]
    return {
        "product_id": product_id,
        "image_id": image["id"],
        "position": position,
        "width": renditions["detail"]["width"],
        "height": renditions["detail"]["height"],
        "list_key": renditions["list"]["key"],
        "detail_key": renditions["detail"]["key"],
    }


def like_pattern(q):
    """A LIKE pattern matching ``q`` literally anywhere (escape character ``\\``)."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- list cursors and which pages are cached ----------------------------------
# A cursor is the position after which the next page starts (the last seq
# shown) and whether it continues the canonical chain (the listing with the
# default limit and no ``q``, from its first page), opaque and signed with the
# service's cursor key: see services.chassis.cursors. Only canonical pages are
# cached, so the cache holds at most one entry per page of the public listing
# whatever limits, queries and cursors clients send (those are served from the
# database, under the gateway's rate limits). Version 2 added the chain flag.
_CANONICAL, _OTHER = "c", "o"


class ListingCursors:
    """The cursors of ``list_products``, signed with ``key`` (bytes)."""

    def __init__(self, key: bytes):
        self.cursor = cursors.Cursor(key, "2")

    def encode(self, seq, canonical=False):
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ValueError("seq must be a non-negative integer")
        return self.cursor.encode(str(seq), _CANONICAL if canonical else _OTHER)

    def decode(self, cursor):
        """``(seq, canonical)`` of ``cursor``; ValidationError ``{"cursor": "is invalid"}``
        otherwise."""
        seq, chain = self.cursor.decode(cursor, 2)
        if not seq.isdigit() or chain not in (_CANONICAL, _OTHER):
            raise cursors.invalid_cursor()
        return int(seq), chain == _CANONICAL

    def page(self, rows, limit, seq_of, canonical=False):
        """Split ``limit + 1`` fetched rows into the page and its ``next_cursor``."""
        return cursors.split_page(rows, limit, lambda last: self.encode(seq_of(last), canonical))


def is_canonical_page(limit, q, cursor_canonical, include_inactive=False):
    """True for the pages the catalog caches: the public listing (active products
    only: the staff listing is never cached, nor are its cursors canonical), the
    default limit, no ``q``, and the first page or a cursor issued by a canonical page."""
    return limit == LIMIT_DEFAULT and q is None and cursor_canonical and not include_inactive
