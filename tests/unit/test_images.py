"""Image processing (gateway/images.py): pure functions on real image bytes made
with Pillow here, no broker and no store."""

import hashlib
import io

import pytest
from PIL import Image, ImageCms, PngImagePlugin
from PIL.ExifTags import IFD

from gateway import images
from gateway.images import ImageRejected
from tests.support.images import encode, gradient, jpeg_with_gps, png_header_only

pytestmark = pytest.mark.unit

SIZES = {"list": 480, "detail": 1200}
LIMITS = {"max_bytes": 5 * 1024 * 1024, "max_pixels": 40_000_000, "sizes": SIZES}


def opened(rendition):
    image = Image.open(io.BytesIO(rendition.data))
    image.load()
    return image


def rejected(data, content_type, **overrides):
    with pytest.raises(ImageRejected) as excinfo:
        images.process(data, content_type, **{**LIMITS, **overrides})
    return excinfo.value


def test_a_jpeg_with_gps_tags_comes_out_without_any_metadata_and_upright():
    data = jpeg_with_gps()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(IFD.GPSInfo), "the input has GPS"
    result = images.process(data, "image/jpeg", **LIMITS)
    for rendition in result.renditions.values():
        out = opened(rendition)
        assert out.format == "WEBP"
        assert not out.getexif(), "EXIF survived"
        assert b"SpyCam" not in rendition.data and b"GPS" not in rendition.data
        for key in ("exif", "xmp", "icc_profile"):
            assert not out.info.get(key), key
    # Orientation 6 (rotate 90 degrees clockwise) is applied: portrait now.
    detail = result.renditions["detail"]
    assert (detail.width, detail.height) == (675, 1200)
    # Clockwise: the original left half (red) is now on top.
    top = opened(detail).convert("RGB").getpixel((detail.width // 2, 100))
    assert top[0] > 150 and top[2] < 100, top


def test_renditions_fit_their_longest_side_and_are_never_upscaled():
    result = images.process(encode(gradient(2000, 1000), "PNG"), "image/png", **LIMITS)
    sizes = {name: (r.width, r.height) for name, r in result.renditions.items()}
    assert sizes == {"list": (480, 240), "detail": (1200, 600)}
    assert {name: opened(r).size for name, r in result.renditions.items()} == sizes

    small = images.process(encode(gradient(300, 200), "WEBP"), "image/webp", **LIMITS)
    assert {(r.width, r.height) for r in small.renditions.values()} == {(300, 200)}


def test_keys_are_content_addressed_and_the_same_picture_is_the_same_image():
    data = encode(gradient(640, 480), "PNG")
    first = images.process(data, "image/png", **LIMITS)
    again = images.process(data, "image/png", **LIMITS)
    for rendition in first.renditions.values():
        digest = hashlib.sha256(rendition.data).hexdigest()
        assert rendition.key == f"images/{digest}.webp"
        assert rendition.content_type == "image/webp"
    assert first.id == again.id and len(first.id) == 32
    assert first.id == first.detail.key[len("images/") :][:32]
    other = images.process(encode(gradient(640, 481), "PNG"), "image/png", **LIMITS)
    assert other.id != first.id


def test_png_text_chunks_and_an_icc_profile_are_dropped_and_alpha_is_kept():
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Secret")
    info.add_text("Comment", "taken at home")
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    picture = gradient(800, 600, "RGBA")
    picture.paste((0, 0, 0, 0), (0, 0, 100, 100))  # a transparent corner
    data = encode(picture, "PNG", pnginfo=info, icc_profile=profile)
    assert Image.open(io.BytesIO(data)).info["Author"] == "Jane Secret"
    result = images.process(data, "image/png", **LIMITS)
    for rendition in result.renditions.values():
        out = opened(rendition)
        assert out.mode == "RGBA" and out.getpixel((0, 0))[3] == 0
        assert b"Jane Secret" not in rendition.data
        assert not out.info.get("icc_profile")


def test_a_png_bomb_header_is_refused_before_decoding():
    error = rejected(png_header_only(100_000, 100_000), "image/png")
    assert (error.status, error.code) == (422, "invalid_image")
    assert "pixels" in error.details["image"]
    # Just over a configured bound is refused too.
    assert rejected(png_header_only(101, 100), "image/png", max_pixels=10_000).status == 422


def test_a_gif_is_refused_whatever_it_is_called():
    gif = encode(gradient(64, 64).convert("P"), "GIF")
    error = rejected(gif, "image/gif")
    assert (error.status, error.code) == (415, "unsupported_media_type")
    error = rejected(gif, "image/png")
    assert (error.status, error.code) == (415, "unsupported_media_type")


def test_a_declared_type_that_is_not_the_body_is_refused():
    png = encode(gradient(64, 64), "PNG")
    error = rejected(png, "image/jpeg")
    assert (error.status, error.code) == (422, "invalid_image")
    assert "PNG" in error.details["image"]
    for content_type in ("", None, "application/json", "text/plain", "image/svg+xml"):
        assert rejected(png, content_type).status == 415
    # Parameters and case do not matter.
    assert images.process(png, "Image/PNG; charset=binary", **LIMITS).id


def test_undecodable_and_truncated_bytes_are_invalid_images():
    assert rejected(b"not an image at all", "image/jpeg").status == 422
    truncated = jpeg_with_gps()[:2000]
    error = rejected(truncated, "image/jpeg")
    assert (error.status, error.code) == (422, "invalid_image")


def test_over_the_byte_limit_is_too_large():
    data = encode(gradient(64, 64), "PNG")
    error = rejected(data, "image/png", max_bytes=len(data) - 1)
    assert (error.status, error.code) == (413, "image_too_large")
    assert error.details == {"max_bytes": len(data) - 1}


def test_wide_grey_palette_and_cmyk_images_become_plain_srgb():
    grey16 = images.process(
        encode(Image.new("I;16", (100, 80), 30000), "PNG"), "image/png", **LIMITS
    )
    # 30000 / 256 = 117: scaled, not clipped to white.
    assert opened(grey16.detail).convert("RGB").getpixel((1, 1))[0] in range(110, 125)
    palette = Image.new("P", (100, 80), 3)
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] * 64)
    palette.paste(1, (50, 0, 100, 80))
    clear = images.process(encode(palette, "PNG", transparency=3), "image/png", **LIMITS)
    out = opened(clear.detail)
    assert out.getpixel((1, 1))[3] == 0 and out.getpixel((60, 1))[3] == 255
    cmyk = images.process(
        encode(Image.new("CMYK", (100, 80), (0, 100, 200, 0)), "JPEG"), "image/jpeg", **LIMITS
    )
    assert opened(cmyk.detail).mode == "RGB"


def test_other_formats_are_never_parsed_as_images():
    for fmt in ("TIFF", "BMP"):
        error = rejected(encode(gradient(10, 10), fmt), "image/png")
        assert (error.status, error.code) == (422, "invalid_image")
