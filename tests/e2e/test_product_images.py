"""Product images end to end: the real gateway (gunicorn) and catalog service,
the default filesystem store. Upload, the product lists it, GET /media with
its ETag and 304, removal; every refusal with its status and error code."""

import hashlib
import io
import uuid

import pytest
import requests
from PIL import Image

from tests.support.images import encode, gradient, jpeg_with_gps, png_header_only
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # media.max_upload_bytes in config/agora.yaml


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def create_product(base, admin_token):
    body = {
        "sku": f"PIC-{uuid.uuid4().hex[:8]}".upper(),
        "name": "Pictured lamp",
        "price": {"amount": 4900, "currency": "EUR"},
    }
    created = requests.post(f"{base}/v1/products", json=body, headers=bearer(admin_token))
    assert created.status_code == 201, created.text
    return created.json()


def upload(base, product_id, token, data, content_type):
    headers = {**bearer(token), "Content-Type": content_type}
    return requests.post(
        f"{base}/v1/products/{product_id}/images", data=data, headers=headers, timeout=30
    )


def error_code(response, status):
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()["error"]["code"]


def product_images(base, product_id):
    return requests.get(f"{base}/v1/products/{product_id}", timeout=10).json()["images"]


def test_upload_list_serve_and_delete(platform, admin_token):
    base = platform.base_url
    product = create_product(base, admin_token)
    assert product["images"] == []
    # Read once, so the gateway's catalog cache holds the product without images:
    # the upload's product_updated event must drop it.
    assert product_images(base, product["id"]) == []

    uploaded = upload(base, product["id"], admin_token, jpeg_with_gps(), "image/jpeg")
    assert uploaded.status_code == 201, uploaded.text
    (image,) = uploaded.json()["images"]
    assert uploaded.headers["Location"] == image["urls"]["detail"]
    assert (image["width"], image["height"]) == (675, 1200)  # EXIF orientation applied
    for url in image["urls"].values():
        assert url.startswith(f"{base}/media/images/") and url.endswith(".webp")

    # Public reads list it as soon as the catalog's event reaches the gateway cache.
    wait_until(lambda: product_images(base, product["id"]) == [image], 10, "the image listed")
    page = requests.get(f"{base}/v1/products", params={"q": product["sku"]}, timeout=10)
    assert page.json()["items"][0]["images"] == [image]

    served = requests.get(image["urls"]["detail"], timeout=10)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/webp"
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    digest = hashlib.sha256(served.content).hexdigest()
    assert served.headers["ETag"] == f'"{digest}"'
    assert image["urls"]["detail"].endswith(f"/images/{digest}.webp")
    picture = Image.open(io.BytesIO(served.content))
    assert picture.format == "WEBP" and picture.size == (675, 1200)
    assert not picture.getexif() and b"SpyCam" not in served.content

    again = requests.get(
        image["urls"]["detail"], headers={"If-None-Match": served.headers["ETag"]}, timeout=10
    )
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == served.headers["ETag"]
    listed = requests.get(image["urls"]["list"], timeout=10)
    assert Image.open(io.BytesIO(listed.content)).size == (270, 480)

    # The same picture again: nothing changes.
    same = upload(base, product["id"], admin_token, jpeg_with_gps(), "image/jpeg")
    assert same.status_code == 201 and same.json()["images"] == [image]

    path = f"{base}/v1/products/{product['id']}/images/{image['id']}"
    assert requests.delete(path, headers=bearer(admin_token), timeout=10).status_code == 204
    wait_until(lambda: product_images(base, product["id"]) == [], 10, "the image gone")
    # No other product shows it: its files are deleted.
    assert error_code(requests.get(image["urls"]["detail"], timeout=10), 404) == "not_found"
    gone = requests.delete(path, headers=bearer(admin_token), timeout=10)
    assert error_code(gone, 404) == "not_found"


def test_refusals(platform, admin_token, user_token):
    base = platform.base_url
    product = create_product(base, admin_token)
    png = encode(gradient(64, 64), "PNG")

    too_large = upload(
        base, product["id"], admin_token, b"\0" * (MAX_UPLOAD_BYTES + 1), "image/png"
    )
    assert error_code(too_large, 413) == "image_too_large"
    # Without a Content-Length (chunked), the body is cut off at the limit.
    chunks = (b"\0" * 1024 * 1024 for _ in range(6))
    chunked = upload(base, product["id"], admin_token, chunks, "image/png")
    assert error_code(chunked, 413) == "image_too_large"
    gif = encode(gradient(64, 64).convert("P"), "GIF")
    assert error_code(upload(base, product["id"], admin_token, gif, "image/gif"), 415) == (
        "unsupported_media_type"
    )
    assert error_code(upload(base, product["id"], admin_token, gif, "image/png"), 415) == (
        "unsupported_media_type"
    )
    garbage = upload(base, product["id"], admin_token, b"not an image", "image/png")
    assert error_code(garbage, 422) == "invalid_image"
    bomb = upload(base, product["id"], admin_token, png_header_only(50_000, 50_000), "image/png")
    assert error_code(bomb, 422) == "invalid_image"
    assert "pixels" in bomb.json()["error"]["details"]["image"]
    mislabelled = upload(base, product["id"], admin_token, png, "image/jpeg")
    assert error_code(mislabelled, 422) == "invalid_image"

    unknown = upload(base, str(uuid.uuid4()), admin_token, png, "image/png")
    assert error_code(unknown, 404) == "not_found"
    customer = upload(base, product["id"], user_token, png, "image/png")
    assert error_code(customer, 403) == "insufficient_scope"
    anonymous = requests.post(
        f"{base}/v1/products/{product['id']}/images",
        data=png,
        headers={"Content-Type": "image/png"},
        timeout=10,
    )
    assert anonymous.status_code == 401
    delete = requests.delete(
        f"{base}/v1/products/{product['id']}/images/{'0' * 32}",
        headers=bearer(user_token),
        timeout=10,
    )
    assert error_code(delete, 403) == "insufficient_scope"
    assert product_images(base, product["id"]) == []


@pytest.mark.parametrize(
    "path",
    [
        f"/media/images/{'0' * 64}.webp",
        "/media/images/..%2F..%2Fconfig%2Fagora.yaml",
        "/media/..%2F..%2Fsetup.cfg",
        "/media/images/x.webp",
        "/media/images",
    ],
)
def test_media_answers_404_json_for_anything_but_a_stored_key(platform, path):
    response = requests.get(f"{platform.base_url}{path}", timeout=10)
    assert error_code(response, 404) == "not_found"
