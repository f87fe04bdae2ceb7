"""The platform with ``media.storage: s3`` against a real S3-compatible server
(moto's standalone server on a free port, a public-read bucket of its own): an
upload lands in the bucket, product JSON points at the bucket's public URL, the
gateway's /media serves the same bytes from it, and a removal deletes the
objects."""

import hashlib
import json
import uuid

import pytest
import requests
import yaml

from tests.e2e.conftest import admin_access_token, running_platform, seed_demo
from tests.support.images import encode, gradient
from tests.support.polling import wait_until
from tests.support.s3 import S3Server, plain_http_botocore

pytestmark = pytest.mark.e2e

BUCKET = f"agora-e2e-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def s3_server():
    plain_http_botocore()
    server = S3Server().start()
    yield server
    server.stop()


def public_read(bucket):
    """What an operator does for media.s3.public_url: anyone may read the
    bucket's objects (the gateway itself never changes a bucket's policy)."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket.bucket}/*",
            }
        ],
    }
    bucket.client.put_bucket_policy(Bucket=bucket.bucket, Policy=json.dumps(policy))


@pytest.fixture(scope="module")
def s3_platform(rabbit_vhost, redis_client, zipkin, smtp, sms, s3_server, tmp_path_factory):
    from services.chassis.objectstore import S3Store

    public_read(S3Store(s3_server.settings(BUCKET)))
    settings = s3_server.settings(BUCKET, public_url=f"{s3_server.url}/{BUCKET}")
    overlay = tmp_path_factory.mktemp("s3-media") / "media.yaml"
    overlay.write_text(yaml.safe_dump({"media": {"storage": "s3", "s3": settings}}))
    with running_platform(zipkin, smtp, sms, name="s3media", overlay=overlay) as platform:
        yield platform


@pytest.fixture(scope="module")
def admin(s3_platform):
    from nameko.standalone.rpc import ClusterRpcProxy

    from services.chassis.config import nameko_config

    with ClusterRpcProxy(nameko_config(s3_platform.config, "tests"), timeout=10) as rpc:
        demo = seed_demo(s3_platform, rpc)
    return {"Authorization": f"Bearer {admin_access_token(s3_platform, demo)}"}


def test_images_live_in_the_bucket(s3_platform, s3_server, admin):
    from services.chassis.objectstore import S3Store

    base = s3_platform.base_url
    bucket = S3Store(s3_server.settings(BUCKET, create_bucket=False))
    body = {
        "sku": f"S3-{uuid.uuid4().hex[:8]}".upper(),
        "name": "Bucketed vase",
        "price": {"amount": 2500, "currency": "EUR"},
    }
    product = requests.post(f"{base}/v1/products", json=body, headers=admin, timeout=10).json()

    uploaded = requests.post(
        f"{base}/v1/products/{product['id']}/images",
        data=encode(gradient(1600, 1000), "PNG"),
        headers={**admin, "Content-Type": "image/png"},
        timeout=30,
    )
    assert uploaded.status_code == 201, uploaded.text
    (image,) = uploaded.json()["images"]
    keys = {}
    for name, url in image["urls"].items():
        # Served straight from the bucket (media.s3.public_url).
        assert url.startswith(f"{s3_server.url}/{BUCKET}/images/"), url
        keys[name] = url.removeprefix(f"{s3_server.url}/{BUCKET}/")
        stored = bucket.get(keys[name])
        assert stored is not None and stored.content_type == "image/webp"
        assert keys[name] == f"images/{hashlib.sha256(stored.data).hexdigest()}.webp"
        direct = requests.get(url, timeout=10)
        assert direct.status_code == 200 and direct.content == stored.data
        assert direct.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        # The gateway serves the same object from the bucket.
        proxied = requests.get(f"{base}/media/{keys[name]}", timeout=10)
        assert proxied.status_code == 200 and proxied.content == stored.data
        assert proxied.headers["ETag"] == f'"{stored.etag}"'
        revalidated = requests.get(
            f"{base}/media/{keys[name]}", headers={"If-None-Match": f'"{stored.etag}"'}, timeout=10
        )
        assert revalidated.status_code == 304

    removed = requests.delete(
        f"{base}/v1/products/{product['id']}/images/{image['id']}", headers=admin, timeout=10
    )
    assert removed.status_code == 204
    for key in keys.values():
        assert not bucket.exists(key)
    assert requests.get(f"{base}/media/{keys['detail']}", timeout=10).status_code == 404
    wait_until(
        lambda: (
            requests.get(f"{base}/v1/products/{product['id']}", timeout=10).json()["images"] == []
        ),
        10,
        "the product without its image",
    )
