"""Object storage for media (product images): the local filesystem or any
S3-compatible store, behind one small interface.

``media.storage`` chooses the backend (config/agora.yaml ``media:``):

- ``filesystem`` (the default, nothing to install): files under ``media.path``
  (empty: ``<state dir>/media``, i.e. ``.agora/media``). A write goes to a
  temporary file in the same folder, then is renamed over its key, so a reader
  sees the whole object or none. A key that would leave the root is refused.
- ``s3``: a bucket reached through boto3 at ``media.s3.endpoint_url`` (MinIO,
  Ceph, AWS itself...), path-style addressing so any S3-compatible server
  works. Empty credentials mean boto3's own chain (an instance role...).

Keys are content-addressed (``images/<sha256 of the bytes>.webp``): a key
always names the same bytes, so :meth:`put` of an existing key is a no-op,
and an object may be cached forever by whoever serves it. Only the gateway
holds a store; the catalog only builds URLs (:func:`media_base_url`).
"""

import hashlib
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]

# Lower-case path segments of letters, digits, "_", "-" and ".", no segment
# starting with a dot: no "..", no hidden files, no absolute path, no backslash.
_SEGMENT = r"[a-z0-9][a-z0-9_-]*(\.[a-z0-9]+)*"
KEY_PATTERN = re.compile(rf"^{_SEGMENT}(/{_SEGMENT})*$")
KEY_MAX = 512
CONTENT_TYPES = {
    ".webp": "image/webp",
    ".jpg": "image/jpeg",
    ".png": "image/png",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class InvalidKey(ValueError):
    """A key that is not a plain relative path (it could escape the store)."""


class StorageUnavailable(Exception):
    """The store could not be reached or refused the operation (not a missing key)."""


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    content_type: str
    # The SHA-256 of ``data`` (hex): the strong ETag it is served with.
    etag: str


def check_key(key):
    """``key`` if it is a safe relative key, else :class:`InvalidKey`."""
    if not isinstance(key, str) or len(key) > KEY_MAX or not KEY_PATTERN.fullmatch(key):
        raise InvalidKey(f"invalid object key {key!r}")
    return key


def content_type_of(key):
    return CONTENT_TYPES.get(Path(key).suffix, DEFAULT_CONTENT_TYPE)


def etag_of(data):
    return hashlib.sha256(data).hexdigest()


class ObjectStore:
    """``put``, ``get``, ``exists``, ``delete`` on keys (see :func:`check_key`)."""

    name = "abstract"

    def put(self, key, data, content_type):
        """Store ``data`` under ``key`` unless the key exists (keys are
        content-addressed, so an existing key already holds these bytes)."""
        raise NotImplementedError

    def get(self, key):
        """The :class:`StoredObject` under ``key``, or None if there is none."""
        raise NotImplementedError

    def exists(self, key):
        raise NotImplementedError

    def delete(self, key):
        """Remove ``key``; a missing key is not an error."""
        raise NotImplementedError


class FilesystemStore(ObjectStore):
    name = "filesystem"

    def __init__(self, root):
        self.root = Path(root).resolve()

    def _path(self, key):
        path = (self.root / check_key(key)).resolve()
        # check_key already refuses "..": this is the belt to its braces.
        if self.root not in path.parents:
            raise InvalidKey(f"object key {key!r} escapes the store")
        return path

    def put(self, key, data, content_type):
        path = self._path(key)
        if path.is_file():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(temporary, flags, 0o644)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def get(self, key):
        path = self._path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        return StoredObject(data, content_type_of(key), etag_of(data))

    def exists(self, key):
        return self._path(key).is_file()

    def delete(self, key):
        self._path(key).unlink(missing_ok=True)


class S3Store(ObjectStore):
    """A bucket of an S3-compatible server, through boto3 (a client is
    thread-safe: one per store, shared by the gateway's request threads)."""

    name = "s3"

    def __init__(self, settings, client=None):
        self.bucket = settings["bucket"]
        self.client = client or make_s3_client(settings)
        if settings.get("create_bucket"):
            self._ensure_bucket(settings.get("region") or "us-east-1")

    def _ensure_bucket(self, region):
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _status(exc) not in (404, 400):
                raise StorageUnavailable(f"bucket {self.bucket}: {_code(exc)}") from None
        arguments = {"Bucket": self.bucket}
        if region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**arguments)
            log.info("created bucket %s", self.bucket)
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StorageUnavailable(f"bucket {self.bucket}: {_code(exc)}") from None

    def put(self, key, data, content_type):
        check_key(key)
        if self.exists(key):
            return
        self._call(
            "put_object",
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            # Read straight from the bucket (media.s3.public_url), it caches like /media.
            CacheControl="public, max-age=31536000, immutable",
            Metadata={"sha256": etag_of(data)},
        )

    def get(self, key):
        from botocore.exceptions import ClientError

        check_key(key)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
            data = answer["Body"].read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StorageUnavailable(f"get {key}: {_code(exc)}") from None
        except Exception as exc:  # connection refused, timeouts (botocore's own classes)
            raise StorageUnavailable(f"get {key}: {exc.__class__.__name__}") from None
        content_type = answer.get("ContentType") or content_type_of(key)
        return StoredObject(data, content_type, etag_of(data))

    def exists(self, key):
        from botocore.exceptions import ClientError

        check_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise StorageUnavailable(f"head {key}: {_code(exc)}") from None
        except Exception as exc:
            raise StorageUnavailable(f"head {key}: {exc.__class__.__name__}") from None

    def delete(self, key):
        check_key(key)
        self._call("delete_object", Bucket=self.bucket, Key=key)

    def _call(self, method, **arguments):
        from botocore.exceptions import ClientError

        try:
            return getattr(self.client, method)(**arguments)
        except ClientError as exc:
            raise StorageUnavailable(f"{method} {arguments.get('Key')}: {_code(exc)}") from None
        except Exception as exc:
            raise StorageUnavailable(
                f"{method} {arguments.get('Key')}: {exc.__class__.__name__}"
            ) from None


def _code(exc):
    return str(exc.response.get("Error", {}).get("Code", "error"))


def _status(exc):
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def make_s3_client(settings):
    """A boto3 S3 client for ``media.s3``: path-style addressing (MinIO, moto),
    short timeouts and few retries, since a request thread waits on it."""
    import boto3
    from botocore.config import Config

    options = {
        "region_name": settings.get("region") or "us-east-1",
        "config": Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=settings.get("timeout", 5.0),
            read_timeout=settings.get("timeout", 5.0),
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    }
    if settings.get("endpoint_url"):
        options["endpoint_url"] = settings["endpoint_url"]
    if settings.get("access_key_id"):
        options["aws_access_key_id"] = settings["access_key_id"]
        options["aws_secret_access_key"] = settings.get("secret_access_key") or ""
    return boto3.session.Session().client("s3", **options)


def state_dir():
    """The local state folder (``AGORA_STATE_DIR``, default ``.agora`` in the checkout)."""
    return Path(os.environ.get("AGORA_STATE_DIR") or ROOT / ".agora")


def media_root(media):
    """Where the filesystem store keeps objects: ``media.path`` or ``<state dir>/media``."""
    return Path(media.get("path") or state_dir() / "media")


def open_store(media):
    """The store ``media`` (the ``media:`` settings) names."""
    if media["storage"] == "s3":
        return S3Store(media["s3"])
    return FilesystemStore(media_root(media))


# --- public URLs ----------------------------------------------------------------


def public_gateway_url(config):
    """The gateway's public base URL, without a trailing slash.

    ``gateway.public_url`` when set (the one public address of the platform),
    else what ``make run`` binds: ``http://<gateway.host>:<gateway.port>``.
    When the platform's own helper for that setting exists, this is the one
    place to switch over to it."""
    gateway = config.get("gateway") or {}
    public = gateway.get("public_url")
    if public:
        return public.rstrip("/")
    host = gateway.get("host") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{gateway.get('port', 8080)}"


def media_base_url(config):
    """The base that an object key is appended to for its public URL:
    ``media.s3.public_url`` when objects are served straight from the bucket,
    else the gateway's ``/media`` (GET /media/<key>)."""
    media = config.get("media") or {}
    if media.get("storage") == "s3":
        public = (media.get("s3") or {}).get("public_url")
        if public:
            return public.rstrip("/")
    return f"{public_gateway_url(config)}/media"


def media_url(base, key):
    return f"{base}/{check_key(key)}"
