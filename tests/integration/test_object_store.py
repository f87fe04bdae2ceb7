"""Both object stores against the real thing: a folder on disk, and an
S3-compatible HTTP server (moto's standalone server in a child process, a
bucket per test run) reached by boto3 over a socket."""

import hashlib
import os
import uuid

import pytest

from services.chassis import objectstore
from services.chassis.objectstore import (
    FilesystemStore,
    InvalidKey,
    S3Store,
    StorageUnavailable,
)
from tests.support.s3 import S3Server, plain_http_botocore
from tests.support.smtp import free_port

pytestmark = pytest.mark.integration

RUN_BUCKET = f"agora-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def s3_server():
    plain_http_botocore()
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture(params=["filesystem", "s3"])
def store(request, tmp_path):
    if request.param == "filesystem":
        return FilesystemStore(tmp_path / "media")
    server = request.getfixturevalue("s3_server")
    return S3Store(server.settings(RUN_BUCKET))


def content_key(data):
    return f"images/{hashlib.sha256(data).hexdigest()}.webp"


def test_put_get_exists_delete(store):
    data = b"RIFF fake webp " + uuid.uuid4().bytes
    key = content_key(data)
    assert store.get(key) is None and not store.exists(key)
    store.put(key, data, "image/webp")
    assert store.exists(key)
    stored = store.get(key)
    assert stored.data == data
    assert stored.content_type == "image/webp"
    assert stored.etag == hashlib.sha256(data).hexdigest()
    # Content-addressed: putting the key again is a no-op, not an error.
    store.put(key, data, "image/webp")
    assert store.get(key).data == data
    store.delete(key)
    assert store.get(key) is None and not store.exists(key)
    store.delete(key)  # deleting what is gone is fine


@pytest.mark.parametrize(
    "key",
    [
        "../outside.webp",
        "images/../../etc/passwd",
        "/etc/passwd",
        "images//x.webp",
        ".hidden",
        "images/.x",
        "IMAGES/X.webp",
        "images\\x.webp",
        "",
        "a" * 600,
    ],
)
def test_keys_that_could_escape_are_refused(store, key):
    for operation in (
        lambda: store.put(key, b"x", "image/webp"),
        lambda: store.get(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(InvalidKey):
            operation()


def test_filesystem_writes_are_atomic_and_stay_under_the_root(tmp_path):
    root = tmp_path / "media"
    store = FilesystemStore(root)
    data = os.urandom(100_000)
    key = content_key(data)
    store.put(key, data, "image/webp")
    # No temporary file is left next to the object.
    assert sorted(p.name for p in (root / "images").iterdir()) == [key.split("/")[1]]
    # A folder inside the root that is a link to elsewhere is not followed.
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKey):
        store.put("linked/x.webp", b"x", "image/webp")
    assert list(outside.iterdir()) == []


def test_the_filesystem_store_defaults_to_the_state_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("AGORA_STATE_DIR", str(tmp_path))
    media = {"storage": "filesystem", "path": ""}
    assert objectstore.open_store(media).root == (tmp_path / "media").resolve()
    media["path"] = str(tmp_path / "elsewhere")
    assert objectstore.open_store(media).root == (tmp_path / "elsewhere").resolve()


def test_s3_objects_carry_their_type_and_immutable_caching(s3_server):
    store = S3Store(s3_server.settings(RUN_BUCKET))
    data = b"webp bytes " + uuid.uuid4().bytes
    key = content_key(data)
    store.put(key, data, "image/webp")
    head = store.client.head_object(Bucket=RUN_BUCKET, Key=key)
    assert head["ContentType"] == "image/webp"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_s3_creates_its_bucket_only_when_allowed(s3_server):
    bucket = f"agora-test-{uuid.uuid4().hex[:12]}"
    refused = S3Store(s3_server.settings(bucket, create_bucket=False))
    with pytest.raises(StorageUnavailable):
        refused.put(content_key(b"x"), b"x", "image/webp")
    created = S3Store(s3_server.settings(bucket))
    created.put(content_key(b"x"), b"x", "image/webp")
    assert created.get(content_key(b"x")).data == b"x"
    # Opening it again (another gateway process) finds the bucket there.
    assert S3Store(s3_server.settings(bucket)).exists(content_key(b"x"))


def test_an_unreachable_s3_endpoint_is_storage_unavailable(s3_server):
    settings = s3_server.settings(RUN_BUCKET, create_bucket=False, timeout=1.0)
    settings["endpoint_url"] = f"http://127.0.0.1:{free_port()}"
    store = S3Store(settings)
    for operation in (
        lambda: store.put(content_key(b"y"), b"y", "image/webp"),
        lambda: store.get(content_key(b"y")),
        lambda: store.exists(content_key(b"y")),
    ):
        with pytest.raises(StorageUnavailable):
            operation()


def test_media_urls_come_from_the_public_address_or_the_bucket():
    config = {"gateway": {"host": "127.0.0.1", "port": 8123}, "media": {"storage": "filesystem"}}
    assert objectstore.media_base_url(config) == "http://127.0.0.1:8123/media"
    config["gateway"]["public_url"] = "https://shop.example/"
    assert objectstore.media_base_url(config) == "https://shop.example/media"
    config["media"] = {"storage": "s3", "s3": {"public_url": "https://cdn.example/bucket/"}}
    assert objectstore.media_base_url(config) == "https://cdn.example/bucket"
    assert (
        objectstore.media_url("https://cdn.example/bucket", "images/a.webp")
        == "https://cdn.example/bucket/images/a.webp"
    )
