"""Real image files for tests, made with Pillow: with EXIF GPS tags, or a PNG
whose header claims a decompression bomb's size."""

import io
import struct
import zlib

from PIL import Image
from PIL.ExifTags import IFD, Base


def encode(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def gradient(width, height, mode="RGB"):
    """An image whose left and right halves differ (so orientation shows)."""
    image = Image.new(mode, (width, height), (200, 40, 40, 255)[: len(mode)])
    image.paste((20, 40, 220, 255)[: len(mode)], (width // 2, 0, width, height))
    return image


def jpeg_with_gps(width=1600, height=900, orientation=6):
    exif = Image.Exif()
    exif[Base.Make] = "SpyCam"
    exif[Base.Orientation] = orientation
    gps = exif.get_ifd(IFD.GPSInfo)
    gps.update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    return encode(gradient(width, height), "JPEG", exif=exif.tobytes(), quality=90)


def png_header_only(width, height):
    """A PNG whose IHDR claims ``width`` x ``height`` and whose data is one tiny
    compressed row: a decompression bomb's header."""

    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
