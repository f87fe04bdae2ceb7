"""Product image processing: pure functions, no I/O (unit-tested without brokers).

An upload is trusted for nothing. :func:`process` takes the raw bytes and the
declared ``Content-Type`` and either refuses them with an :class:`ImageRejected`
(the gateway's 413, 415 or 422) or returns WebP renditions that hold pixels
only:

1. The declared type must be JPEG, PNG or WebP (415), and the bytes must decode
   as that same format (a GIF is 415 whatever it is called; a PNG sent as
   ``image/jpeg`` is 422): browsers sniff, so a mislabelled file is refused
   rather than stored under a type it is not. No other Pillow parser ever sees
   an upload (a TIFF is 422).
2. Decompression bombs: the dimensions are read from the header first (Pillow
   opens lazily) and more than ``max_pixels`` is refused (422) before a single
   pixel is decoded. Pillow's own ``MAX_IMAGE_PIXELS`` is set to the same
   bound (:func:`configure`) for anything the header check could miss.
3. The EXIF orientation is applied to the pixels, an embedded ICC profile is
   converted to sRGB, and the result is copied into a fresh image: EXIF (GPS
   position, camera serial...), XMP, ICC, PNG text chunks and comments are all
   left behind.
4. One WebP per configured size (``list``, ``detail``: the longest side),
   never upscaled, under a content-addressed key ``images/<sha256>.webp``.

Runs in the gateway's request thread (gunicorn gthread): Pillow releases the
GIL while it decodes, resizes and encodes, and the upload never crosses
RabbitMQ. The view bounds how many run at once per process (memory: a 40
megapixel image takes about 160 MB while it is decoded).
"""

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps

# Declared Content-Type -> the format Pillow must decode the bytes as.
FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
OUTPUT_CONTENT_TYPE = "image/webp"
OUTPUT_EXTENSION = "webp"
RENDITIONS = ("list", "detail")
DEFAULT_QUALITY = 82
_PARSED_FORMATS = (*FORMATS.values(), "GIF")
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA"})
_WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L"})


class ImageRejected(Exception):
    """An upload refused: ``status`` (413, 415, 422), ``code`` and ``details``."""

    def __init__(self, status, code, message, details=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def too_large(max_bytes):
    return ImageRejected(
        413,
        "image_too_large",
        f"the image is larger than {max_bytes} bytes",
        {"max_bytes": max_bytes},
    )


def _unsupported(what):
    return ImageRejected(
        415,
        "unsupported_media_type",
        "send a JPEG, PNG or WebP image (Content-Type: image/jpeg, image/png or image/webp)",
        {"content_type": what},
    )


def _invalid(problem):
    return ImageRejected(422, "invalid_image", "the image cannot be used", {"image": problem})


@dataclass(frozen=True)
class Rendition:
    data: bytes
    width: int
    height: int
    key: str
    content_type: str = OUTPUT_CONTENT_TYPE


@dataclass(frozen=True)
class ProcessedImage:
    # The image's id in the product: derived from its detail rendition, so the
    # same picture uploaded twice is the same image.
    id: str
    renditions: dict  # name -> Rendition

    @property
    def detail(self):
        return self.renditions["detail"]


def configure(max_pixels):
    """Pillow's process-wide decompression bomb bound, from ``media.max_pixels``
    (Pillow raises past twice this and warns past it; :func:`process` refuses
    past it before decoding)."""
    Image.MAX_IMAGE_PIXELS = max_pixels


def declared_format(content_type):
    """The Pillow format name a declared ``Content-Type`` promises, or 415."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in FORMATS:
        raise _unsupported(media_type or None)
    return FORMATS[media_type]


def content_key(data):
    return f"images/{hashlib.sha256(data).hexdigest()}.{OUTPUT_EXTENSION}"


def process(data, content_type, *, max_bytes, max_pixels, sizes, quality=DEFAULT_QUALITY):
    """Check, clean and re-encode an upload; :class:`ImageRejected` if refused.

    ``sizes``: ``{"list": 480, "detail": 1200}`` (longest side, pixels)."""
    expected = declared_format(content_type)
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    image = _open(data, expected, max_pixels)
    largest = max(sizes.values())
    if image.format == "JPEG":
        # Decode at the smallest DCT scale that still covers the largest rendition.
        image.draft("RGB", (largest, largest))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
            clean = _clean(image)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _invalid(f"more than {max_pixels} pixels") from None
    except Exception as exc:  # truncated or corrupt data: OSError, SyntaxError, ValueError...
        raise _invalid(f"cannot be decoded ({exc.__class__.__name__})") from None
    renditions = {name: _encode(clean, sizes[name], quality) for name in RENDITIONS}
    image_id = hashlib.sha256(renditions["detail"].data).hexdigest()[:32]
    return ProcessedImage(image_id, renditions)


def _open(data, expected, max_pixels):
    """The image, opened lazily (header only), its format and size checked."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Only the parsers of the accepted formats (and GIF's, to name it in
            # the 415) ever see an upload: Pillow tries no other decoder.
            image = Image.open(io.BytesIO(data), formats=_PARSED_FORMATS)
    except Image.DecompressionBombError:
        raise _invalid(f"more than {max_pixels} pixels") from None
    except Exception:
        raise _invalid("not a JPEG, PNG or WebP image") from None
    found = image.format
    if found not in FORMATS.values():
        raise _unsupported(f"image/{(found or 'unknown').lower()}")
    if found != expected:
        raise _invalid(f"the body is {found}, not the declared {expected}")
    width, height = image.size
    if width < 1 or height < 1:
        raise _invalid("has no pixels")
    if width * height > max_pixels:
        raise _invalid(f"{width}x{height} is more than {max_pixels} pixels")
    return image


def _clean(image):
    """Pixels only: orientation applied, sRGB, no metadata of any kind."""
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # an animation: its first frame
    try:
        oriented = ImageOps.exif_transpose(image)
    except Exception:  # an EXIF block too broken to read: keep the pixels as stored
        oriented = image
    if oriented.mode in _WIDE_GREY_MODES:
        # 16-bit greyscale PNG: scale to 8 bits (a plain convert would clip to white).
        oriented = oriented.convert("I").point(lambda value: value / 256).convert("L")
    has_alpha = oriented.mode in _ALPHA_MODES or (
        oriented.mode == "P" and "transparency" in oriented.info
    )
    mode = "RGBA" if has_alpha else "RGB"
    converted = _to_srgb(oriented, mode)
    # A new image from the raw pixels: nothing of image.info comes along.
    return Image.frombytes(mode, converted.size, converted.tobytes())


def _to_srgb(image, mode):
    profile = image.info.get("icc_profile")
    if profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            if image.mode not in ("RGB", "RGBA", "CMYK", "L"):
                image = image.convert(mode)
            return ImageCms.profileToProfile(
                image, source, ImageCms.createProfile("sRGB"), outputMode=mode
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: take the pixels as they are
    return image.convert(mode)


def _encode(image, longest, quality):
    copy = image.copy()
    copy.thumbnail((longest, longest), Image.Resampling.LANCZOS)  # never upscales
    out = io.BytesIO()
    copy.save(out, format="WEBP", quality=quality, method=4)
    data = out.getvalue()
    return Rendition(data, copy.width, copy.height, content_key(data))
