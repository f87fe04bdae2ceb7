"""The catalog service: products, their prices, and a cached public listing."""

import logging

import redis as redis_lib
from nameko.dependency_providers import Config
from sqlalchemy.exc import IntegrityError

from services.catalog import domain
from services.catalog.models import (
    SKU_CONSTRAINT,
    Base,
    Product,
    ProductImage,
    active_products_after,
    existing_skus,
    find_product,
    image_in_use,
)
from services.catalog.schemas import (
    EVENTS,
    IMAGE_ADD,
    KNOWN_SKUS_ARGS,
    LIST_QUERY,
    PRODUCT_CREATE,
    PRODUCT_UPDATE,
)
from services.chassis import cursors, objectstore
from services.chassis.cache import Cache
from services.chassis.db import Database, is_unique_violation
from services.chassis.errors import Conflict, NotFound
from services.chassis.messaging import EventDispatcher, rpc
from services.chassis.metrics import cache_stats
from services.chassis.schemas import validate
from services.chassis.service import AgoraService
from services.chassis.values import utcnow

log = logging.getLogger(__name__)

# Cache generations: one per product (its get_product entry) and one for the
# whole collection (every list page). A change bumps them after the commit.
COLLECTION = "products"


def _product_generation(product_id):
    return f"product:{product_id}"


class CatalogService(AgoraService):
    name = "catalog"

    db = Database(Base)
    dispatch = EventDispatcher(EVENTS)
    config = Config()

    @rpc
    def create_product(self, payload):
        """Create a product; ``Conflict`` if the SKU exists. Emits ``product_created``."""
        validate(PRODUCT_CREATE, payload, "invalid product")
        product = Product(**domain.new_product(payload))
        self.db.session.add(product)
        try:
            self.db.session.flush()
        except IntegrityError as exc:
            if is_unique_violation(exc, SKU_CONSTRAINT):
                raise Conflict("sku already exists", {"sku": "already exists"}) from None
            raise
        view = self._view(product)
        self._invalidate_after_commit(COLLECTION)
        self.dispatch("product_created", {"product": view})
        return view

    @rpc
    def update_product(self, product_id, changes):
        """Change name, description, price or active. Emits ``product_updated``."""
        validate(PRODUCT_UPDATE, changes, "invalid product changes")
        product = find_product(self.db.session, product_id, for_update=True)
        if product is None:
            raise NotFound("product not found", {"product_id": product_id})
        for column, value in domain.product_changes(changes).items():
            setattr(product, column, value)
        self.db.session.flush()
        view = self._view(product)
        self._invalidate_after_commit(_product_generation(view["id"]), COLLECTION)
        self.dispatch("product_updated", {"product": view})
        return view

    @rpc
    def add_product_image(self, product_id, image):
        """Append an image (already processed and stored by the gateway: its
        rendition keys and sizes) to a product. Adding an image the product
        has is a no-op; more than IMAGES_MAX is ``Conflict``. Emits
        ``product_updated`` when the images changed."""
        validate(IMAGE_ADD, image, "invalid image")
        product = find_product(self.db.session, product_id, for_update=True)
        if product is None:
            raise NotFound("product not found", {"product_id": product_id})
        if any(existing.image_id == image["id"] for existing in product.images):
            return self._view(product)
        if len(product.images) >= domain.IMAGES_MAX:
            raise Conflict(
                "the product has as many images as allowed",
                {"images": f"at most {domain.IMAGES_MAX}"},
            )
        # Positions only grow (a removal leaves a gap): the row lock above
        # serializes concurrent additions to one product.
        position = max((existing.position for existing in product.images), default=-1) + 1
        product.images.append(ProductImage(**domain.new_image(product.id, image, position)))
        return self._changed(product)

    @rpc
    def remove_product_image(self, product_id, image_id):
        """Remove one image from a product; ``NotFound`` if it has no such image.
        Returns ``{"product", "unreferenced_keys"}``: the keys of the removed
        image's objects that no product shows any more, for the gateway to
        delete (the same picture may be another product's too). Emits
        ``product_updated``."""
        product = find_product(self.db.session, product_id, for_update=True)
        if product is None:
            raise NotFound("product not found", {"product_id": product_id})
        image = next((i for i in product.images if i.image_id == image_id), None)
        if image is None:
            raise NotFound("image not found", {"image_id": image_id})
        product.images.remove(image)
        view = self._changed(product)
        in_use = image_in_use(self.db.session, image_id)
        return {
            "product": view,
            "unreferenced_keys": [] if in_use else [image.list_key, image.detail_key],
        }

    def _changed(self, product):
        """Bump ``updated_at``, flush, invalidate and announce a changed product."""
        product.updated_at = utcnow()
        self.db.session.flush()
        view = self._view(product)
        self._invalidate_after_commit(_product_generation(view["id"]), COLLECTION)
        self.dispatch("product_updated", {"product": view})
        return view

    @rpc
    def get_product(self, product_id):
        """One product, active or not; ``NotFound`` otherwise. Cached."""
        canonical = domain.parse_product_id(product_id)
        if canonical is None:
            raise NotFound("product not found", {"product_id": product_id})

        def load():
            product = find_product(self.db.session, canonical)
            if product is None:
                raise NotFound("product not found", {"product_id": product_id})
            return self._view(product)

        generation = _product_generation(canonical)
        return self._cache("products").get_or_load(generation, load, depends_on=[generation])

    @rpc
    def known_skus(self, skus):
        """The SKUs among ``skus`` that a product has (active or not), sorted."""
        validate(KNOWN_SKUS_ARGS, {"skus": skus}, "invalid skus")
        return sorted(existing_skus(self.db.session, skus))

    @rpc
    def list_products(
        self, limit=domain.LIMIT_DEFAULT, cursor=None, q=None, include_inactive=False
    ):
        """Active products in creation order, ``limit`` per page; ``q`` filters. Cached.

        ``include_inactive`` (the staff listing) lists deactivated products too,
        never from or into the cache of public pages."""
        arguments = {"limit": limit, "cursor": cursor, "q": q, "include_inactive": include_inactive}
        validate(LIST_QUERY, {k: v for k, v in arguments.items() if v is not None})
        limit = domain.LIMIT_DEFAULT if limit is None else limit
        listing = self._cursors()
        after, chained = listing.decode(cursor) if cursor is not None else (0, True)
        q = (q or "").strip() or None
        include_inactive = bool(include_inactive)
        canonical = domain.is_canonical_page(limit, q, chained, include_inactive)

        def load():
            rows = active_products_after(self.db.session, after, limit + 1, q, include_inactive)
            items, next_cursor = listing.page(rows, limit, lambda row: row.seq, canonical)
            return {"items": [self._view(r) for r in items], "next_cursor": next_cursor}

        if not canonical:
            return load()
        return self._cache("product_pages").get_or_load(
            f"page:{after}", load, depends_on=[COLLECTION]
        )

    def _settings(self):
        return self.config["AGORA"]["services"]["catalog"]

    def _view(self, product):
        return domain.product_view(product, objectstore.media_base_url(self.config["AGORA"]))

    def _cursors(self):
        return domain.ListingCursors(cursors.signing_key(self._settings()["cursor_key"]))

    def _cache(self, name=None):
        """The catalog's cache; ``name`` (``products``, ``product_pages``) labels
        its hits and misses."""
        settings = self._settings()["cache"]
        stats = cache_stats(self.name, name) if name else None
        return Cache.from_settings(self.cache, self.cache.key("catalog", ""), settings, stats=stats)

    def _invalidate_after_commit(self, *generations):
        cache = self._cache()

        def invalidate():
            try:
                cache.invalidate(*generations)
            except redis_lib.RedisError as exc:
                # Committed is committed: stale entries live until their TTL.
                log.warning("cache invalidation failed for %s: %s", generations, exc)

        self.db.on_commit(invalidate)
