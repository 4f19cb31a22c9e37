"""The executor app's icons (decision 0042), drawn here rather than kept as hand-made binaries:
`python -m web.app_icons` writes them into web/static/app/; a test checks the committed files are
what this draws. A white house with an orange door on a dark amber tile; the maskable variant fills
the square and keeps the house inside the 80 % safe circle.

Plain zlib PNG: no imaging library needed to build or check them.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent / "static" / "app"
BG = (180, 83, 9)  # #b45309
FG = (255, 255, 255)
DOOR = (17, 24, 39)  # #111827

ICONS = {"icon-192.png": (192, False), "icon-512.png": (512, False), "icon-maskable-512.png": (512, True),
         "apple-touch-icon.png": (180, True)}


def _png(size: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _pixel(x: float, y: float, maskable: bool) -> tuple[int, int, int, int]:
    """Colour at (x, y) in the unit square."""
    if not maskable:  # a rounded tile
        r = 0.18
        cx, cy = min(max(x, r), 1 - r), min(max(y, r), 1 - r)
        if (x - cx) ** 2 + (y - cy) ** 2 > r * r:
            return (0, 0, 0, 0)
    scale = 0.62 if maskable else 0.74  # the house's share of the square
    u, v = (x - 0.5) / scale + 0.5, (y - 0.5) / scale + 0.5
    roof = 0.08 <= v <= 0.5 and abs(u - 0.5) <= (v - 0.08) * 1.1
    body = 0.46 <= v <= 0.92 and 0.18 <= u <= 0.82
    door = 0.62 <= v <= 0.92 and 0.42 <= u <= 0.58
    if door:
        return (*DOOR, 255)
    if roof or body:
        return (*FG, 255)
    return (*BG, 255)


def draw(size: int, maskable: bool) -> bytes:
    rows = []
    for py in range(size):
        row = bytearray()
        for px in range(size):
            row += bytes(_pixel((px + 0.5) / size, (py + 0.5) / size, maskable))
        rows.append(bytes(row))
    return _png(size, rows)


def main(out: Path = OUT) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for name, (size, maskable) in ICONS.items():
        (out / name).write_bytes(draw(size, maskable))
        print(f"{out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
