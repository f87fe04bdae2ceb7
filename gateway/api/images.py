"""Product images: upload and removal under /v1/products, serving at /media.

- ``POST /v1/products/<id>/images`` (``catalog:write``): the body is the image
  itself (``Content-Type: image/jpeg|image/png|image/webp``), up to
  ``media.max_upload_bytes`` (its own limit: ``gateway.max_body_bytes`` is for
  JSON). The gateway processes it here, in the request thread
  (:mod:`gateway.images`: checked, stripped, re-encoded to WebP renditions),
  puts the renditions in the object store, then tells the catalog their keys
  (``add_product_image``): megabytes never cross RabbitMQ, only a few keys.
- ``DELETE /v1/products/<id>/images/<image_id>`` (``catalog:write``): the
  catalog drops the image, and the gateway deletes the objects no product
  refers to any more.
- ``GET /media/<key>``: a stored object, public, with its SHA-256 as a strong
  ``ETag`` and ``Cache-Control: public, max-age=31536000, immutable`` (a key
  names the same bytes forever); ``304`` to a matching ``If-None-Match``.

Both writes are in the ``write`` rate-limit group; /media reads in ``read``.
"""

import logging
import re
import threading

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from gateway import images
from gateway.api import created, rpc
from gateway.auth.guard import requires
from gateway.errors import ApiError
from gateway.openapi import operation
from services.catalog.domain import IMAGE_ID_PATTERN, IMAGE_KEY_PATTERN
from services.catalog.schemas import PRODUCT
from services.chassis import objectstore
from services.chassis.schemas import UUID_PATTERN, is_uuid

log = logging.getLogger(__name__)

bp = Blueprint("product_images", __name__, url_prefix="/v1/products")
media_bp = Blueprint("media", __name__, url_prefix="/media")

IMMUTABLE = "public, max-age=31536000, immutable"
_IMAGE_ID = re.compile(IMAGE_ID_PATTERN)
_MEDIA_KEY = re.compile(IMAGE_KEY_PATTERN)

_PRODUCT_ID = {"type": "string", "pattern": UUID_PATTERN}


class Media:
    """The gateway's media settings, its object store (opened on first use, so
    a gateway starts while the store is unreachable) and the bound on uploads
    processed at once."""

    def __init__(self, settings, store=None):
        self.settings = settings
        self._store = store
        self._lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(settings["max_concurrent"])
        images.configure(settings["max_pixels"])

    @property
    def store(self):
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = objectstore.open_store(self.settings)
        return self._store


def init_media(app):
    """Register the image routes; ``app.extensions["agora.media"]`` is the :class:`Media`."""
    app.extensions["agora.media"] = Media(app.config["AGORA"]["media"])
    app.register_blueprint(bp)
    app.register_blueprint(media_bp)


def _media():
    return current_app.extensions["agora.media"]


def _store():
    try:
        return _media().store
    except objectstore.StorageUnavailable as exc:
        raise _unavailable(exc) from None


def _unavailable(exc):
    log.warning("object store unavailable: %s", exc)
    return ApiError(
        503,
        "storage_unavailable",
        "the image store is unavailable, retry later",
        None,
        {"Retry-After": "5"},
    )


def _rejected(exc):
    return ApiError(exc.status, exc.code, exc.message, exc.details)


def _read_upload(max_bytes):
    """The request body, refused (413) past ``max_bytes`` before it is read
    when Content-Length says so, and while reading otherwise (chunked)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise _rejected(images.too_large(max_bytes))
    # One byte over: a chunked body is cut off at the limit without an error
    # (werkzeug's LimitedStream), so reading max + 1 bytes tells "too large".
    request.max_content_length = max_bytes + 1
    try:
        data = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise _rejected(images.too_large(max_bytes)) from None
    if len(data) > max_bytes:
        raise _rejected(images.too_large(max_bytes))
    if not data:
        raise ApiError(422, "invalid_image", "the image cannot be used", {"image": "is empty"})
    return data


def _product_id(product_id):
    if not is_uuid(product_id):
        raise ApiError(404, "not_found", "product not found")
    return product_id


@bp.post("/<product_id>/images")
@operation(
    "Upload an image of a product",
    tags=("products",),
    path_params={"product_id": _PRODUCT_ID},
    binary_body={
        "content_types": tuple(images.FORMATS),
        "description": "The image file itself (JPEG, PNG or WebP), up to media.max_upload_bytes",
    },
    responses={
        201: {
            "schema": PRODUCT,
            "headers": {"Location": {"type": "string"}},
            "description": "The product, which lists the image; Location: its detail URL",
        }
    },
    errors=(409, 415, 422),
)
@requires("catalog:write")
def upload_image(product_id):
    """The image is decoded and re-encoded by the gateway: only its pixels are
    kept (EXIF, GPS position, XMP and ICC profiles are dropped, colours converted
    to sRGB, the EXIF orientation applied), as WebP renditions for lists and
    product pages (``media.sizes``, never upscaled). 413 ``image_too_large``,
    415 ``unsupported_media_type`` (not JPEG, PNG or WebP), 422 ``invalid_image``
    (undecodable, not the declared type, or more than ``media.max_pixels``
    pixels). Uploading an image the product already has changes nothing;
    409 past the number of images a product may have."""
    product_id = _product_id(product_id)
    media = _media()
    settings = media.settings
    try:
        images.declared_format(request.content_type)
    except images.ImageRejected as exc:
        raise _rejected(exc) from None
    data = _read_upload(settings["max_upload_bytes"])
    # No work (nor stored objects) for a product that does not exist.
    rpc().call("catalog", "get_product", product_id)
    with media.slots:
        try:
            processed = images.process(
                data,
                request.content_type,
                max_bytes=settings["max_upload_bytes"],
                max_pixels=settings["max_pixels"],
                sizes=settings["sizes"],
                quality=settings["quality"],
            )
        except images.ImageRejected as exc:
            raise _rejected(exc) from None
    del data
    store = _store()
    try:
        for rendition in processed.renditions.values():
            store.put(rendition.key, rendition.data, rendition.content_type)
    except objectstore.StorageUnavailable as exc:
        raise _unavailable(exc) from None
    image = {
        "id": processed.id,
        "renditions": {
            name: {"key": r.key, "width": r.width, "height": r.height}
            for name, r in processed.renditions.items()
        },
    }
    product = rpc().call("catalog", "add_product_image", product_id, image)
    shown = next((i for i in product["images"] if i["id"] == processed.id), None)
    location = shown["urls"]["detail"] if shown else f"/v1/products/{product_id}"
    return created(product, location)


@bp.delete("/<product_id>/images/<image_id>")
@operation(
    "Remove an image from a product",
    tags=("products",),
    path_params={
        "product_id": _PRODUCT_ID,
        "image_id": {"type": "string", "pattern": IMAGE_ID_PATTERN},
    },
    responses={204: None},
)
@requires("catalog:write")
def delete_image(product_id, image_id):
    """The product no longer lists the image (``product_updated`` follows);
    its stored files are deleted unless another product shows the same picture."""
    product_id = _product_id(product_id)
    if not _IMAGE_ID.fullmatch(image_id):
        raise ApiError(404, "not_found", "image not found")
    removed = rpc().call("catalog", "remove_product_image", product_id, image_id)
    keys = removed["unreferenced_keys"]
    if keys:
        try:
            store = _media().store
            for key in keys:
                store.delete(key)
        except objectstore.StorageUnavailable as exc:
            # The product is changed already: an object left behind is only space.
            log.warning("image %s removed, its objects not deleted: %s", image_id, exc)
    return Response(status=204)


@media_bp.get("/<path:key>")
@operation(
    "A stored media file (product image renditions)",
    tags=("media",),
    path_params={"key": {"type": "string", "pattern": IMAGE_KEY_PATTERN}},
    headers={
        "If-None-Match": {
            "schema": {"type": "string"},
            "description": "The ETag of the copy the client holds: 304 if it is this file",
        }
    },
    responses={
        200: {
            "content_type": ("image/webp",),
            "schema": {"type": "string"},
            "headers": {
                "ETag": {"type": "string"},
                "Cache-Control": {"type": "string"},
            },
            "description": "The file; its key never names other bytes, so it may be cached forever",
        },
        304: {"description": "Not modified: the copy named by If-None-Match is this file"},
    },
    errors=(503,),
    rpc=False,
)
def media_file(key):
    # Only content-addressed image keys: nothing else in the store is served,
    # and no key can name a path outside it.
    if not _MEDIA_KEY.fullmatch(key):
        raise ApiError(404, "not_found", "no such file")
    # The key holds the SHA-256 of its bytes: the ETag is known before any read.
    etag = key.rsplit("/", 1)[1].split(".", 1)[0]
    store = _store()
    try:
        if request.if_none_match.contains_weak(etag):  # RFC 9110 13.1.2: weak comparison
            if not store.exists(key):
                raise ApiError(404, "not_found", "no such file")
            response = Response(status=304)
        else:
            stored = store.get(key)
            if stored is None:
                raise ApiError(404, "not_found", "no such file")
            response = Response(stored.data, mimetype=stored.content_type)
            etag = stored.etag
    except objectstore.StorageUnavailable as exc:
        raise _unavailable(exc) from None
    response.set_etag(etag)
    response.headers["Cache-Control"] = IMMUTABLE
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
