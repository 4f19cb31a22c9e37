"""Writes web/static/favicon.ico (32×32 and 16×16 PNG images in an ICO) from the same design as
web/static/favicon.svg: a red rounded square with a white cross. Standard library only.

    python deploy/make_favicon.py
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

RED = (192, 57, 43, 255)
WHITE = (255, 255, 255, 255)
CLEAR = (0, 0, 0, 0)


def pixel(x: int, y: int, n: int) -> tuple[int, int, int, int]:
    r = n // 6  # corner radius
    cx = min(max(x, r), n - 1 - r)
    cy = min(max(y, r), n - 1 - r)
    if (x - cx) ** 2 + (y - cy) ** 2 > r * r:
        return CLEAR
    arm, bar = n * 5 // 16, n * 3 // 16  # the cross: arms from the centre, bar half-width
    mid = (n - 1) / 2
    if (abs(x - mid) <= bar and abs(y - mid) <= arm) or (abs(y - mid) <= bar and abs(x - mid) <= arm):
        return WHITE
    return RED


def png(n: int) -> bytes:
    raw = b"".join(b"\x00" + b"".join(bytes(pixel(x, y, n)) for x in range(n)) for y in range(n))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", n, n, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def ico(sizes: tuple[int, ...] = (16, 32)) -> bytes:
    images = [png(n) for n in sizes]
    out = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    for n, data in zip(sizes, images, strict=True):
        out += struct.pack("<BBBBHHII", n, n, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
    return out + b"".join(images)


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "web" / "static" / "favicon.ico"
    target.write_bytes(ico())
    print(target)
