"""Printable tables as PDF (the inspection pack, issue 14 item 2; decision 0038).

ReportLab's canvas, not its Platypus tables: a month's journal is 30 000 rows, and a Platypus
`Table` of that size holds every cell's flowable in memory and lays it out twice. Here a row is
wrapped (`simpleSplit`), drawn and forgotten; only the finished pages' compressed streams stay.
The header repeats on every page, pages are numbered «Лист N», and the font is an embedded
TrueType font that has Cyrillic: DejaVu Sans from Debian's `fonts-dejavu-core` (found at run time
in the usual folders or in `OPENADS_PDF_FONT_DIR`). Without it the PDF cannot show Russian text,
so building one fails with a message naming the package instead of printing empty boxes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

FONT = "OpenADS-Sans"
FONT_BOLD = "OpenADS-Sans-Bold"
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/local/share/fonts/truetype/dejavu",
             "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF")
FONT_MISSING = ("нет шрифта с кириллицей для PDF: установите пакет fonts-dejavu-core "
                "(apt-get install fonts-dejavu-core) или укажите каталог с DejaVuSans.ttf в OPENADS_PDF_FONT_DIR")


class FontMissing(RuntimeError):
    """No TrueType font with Cyrillic was found: `str(exc)` says what to install (in Russian)."""


def font_dir() -> Path:
    """The folder holding DejaVuSans.ttf and DejaVuSans-Bold.ttf; FontMissing when there is none."""
    candidates = [os.environ.get("OPENADS_PDF_FONT_DIR", ""), *FONT_DIRS]
    for folder in candidates:
        if folder and all((Path(folder) / name).is_file() for name in FONT_FILES):
            return Path(folder)
    raise FontMissing(FONT_MISSING)


def register_fonts() -> None:
    """Register the embedded fonts once per process (subset into each PDF that uses them)."""
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    folder = font_dir()
    pdfmetrics.registerFont(TTFont(FONT, str(folder / FONT_FILES[0])))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(folder / FONT_FILES[1])))


@dataclass(frozen=True)
class Column:
    title: str
    width_mm: float


PAGE = landscape(A4)
MARGIN = 10 * mm
SIZE = 6.5  # points: twelve columns on a landscape A4 sheet
LEADING = SIZE * 1.2
PAD = 1.2 * mm
MAX_LINES = 40  # a cell longer than this (a 10 000-character description) is cut with a marker
CUT = "… (полный текст в карточке заявки)"
CACHE_ENTRIES = 50_000  # distinct short texts remembered per document (wrapping, encoding)


def _chop(line: str, font: str, room: float) -> list[str]:
    """A line still wider than the cell (one long word: a number, an e-mail) cut between characters.
    A line of several words is one `simpleSplit` made fit."""
    if " " in line.strip() or pdfmetrics.stringWidth(line, font, SIZE) <= room:
        return [line]
    out: list[str] = []
    part = ""
    for char in line:
        if part and pdfmetrics.stringWidth(part + char, font, SIZE) > room:
            out.append(part)
            part = ""
        part += char
    return [*out, part]


class TablePdf:
    """One table drawn page by page; `add(row)` for each row, then `finish()`."""

    def __init__(self, out: IO[bytes], *, title: str, subtitle: str, columns: Sequence[Column],
                 footer: str = "") -> None:
        register_fonts()
        self.canvas = Canvas(out, pagesize=PAGE, pageCompression=1, invariant=1)
        self.canvas.setTitle(title)
        self.canvas.setAuthor("Открытая АДС")
        self.title, self.subtitle, self.footer = title, subtitle, footer
        total = sum(c.width_mm for c in columns)
        usable = PAGE[0] - 2 * MARGIN
        self.widths = [c.width_mm / total * usable for c in columns]
        self.columns = columns
        self._header_lines: list[list[str]] = []
        self._cache: dict[tuple[str, str], str] = {}
        self._split: dict[tuple[str, float, str], list[str]] = {}
        self.page = 0
        self.rows = 0
        self.y = 0.0
        self._new_page()

    def _header(self) -> None:
        c = self.canvas
        if not self._header_lines:
            self._header_lines = [self._lines(col.title, w, FONT_BOLD)
                                  for col, w in zip(self.columns, self.widths, strict=True)]
        heights = self._header_lines
        height = max(len(lines) for lines in heights) * LEADING + 2 * PAD
        x = MARGIN
        c.setFillGray(0.9)
        c.rect(MARGIN, self.y - height, sum(self.widths), height, stroke=0, fill=1)
        c.setFillGray(0)
        c.setFont(FONT_BOLD, SIZE)
        for lines, w in zip(heights, self.widths, strict=True):
            self._draw(lines, x, self.y, FONT_BOLD)
            c.rect(x, self.y - height, w, height, stroke=1, fill=0)
            x += w
        self.y -= height

    def _new_page(self) -> None:
        c = self.canvas
        if self.page:
            c.showPage()
        self.page += 1
        c.setLineWidth(0.3)
        top = PAGE[1] - MARGIN
        c.setFont(FONT_BOLD, 10)
        c.drawString(MARGIN, top - 10, self.title)
        c.setFont(FONT, 7.5)
        c.drawString(MARGIN, top - 20, self.subtitle)
        c.drawRightString(PAGE[0] - MARGIN, top - 10, f"Лист {self.page}")
        if self.footer:
            c.drawString(MARGIN, MARGIN - 6, self.footer)
        self.y = top - 26
        self._header()

    def _lines(self, text: str, width: float, font: str = FONT) -> list[str]:
        if not text:
            return [""]
        key = (text, width, font)
        hit = self._split.get(key)
        if hit is not None:
            return hit
        lines = self._wrap(text, width, font)
        if len(text) <= 120 and len(self._split) < CACHE_ENTRIES:
            self._split[key] = lines
        return lines

    @staticmethod
    def _wrap(text: str, width: float, font: str) -> list[str]:
        room = width - 2 * PAD
        lines: list[str] = []
        for paragraph in (text or "").split("\n"):
            for line in simpleSplit(paragraph, font, SIZE, room) or [""]:
                lines.extend(_chop(line, font, room))
            if len(lines) > MAX_LINES:
                return [*lines[:MAX_LINES - 1], CUT]
        return lines

    def _draw(self, lines: list[str], x: float, top: float, font: str = FONT) -> None:
        """One cell's lines as one text block. Written as PDF operators directly (what ReportLab's text
        object writes, less its per-line bookkeeping), each distinct line encoded once per document:
        the journal's names, addresses, categories and times repeat on every page."""
        parts = [f"BT 1 0 0 1 {x + PAD:.2f} {top - PAD - SIZE:.2f} Tm {LEADING:.2f} TL"]
        for i, line in enumerate(lines):
            if i:
                parts.append("T*")
            if line:
                parts.append(self._encoded(line, font))
        parts.append("ET")
        self.canvas._code.append(" ".join(parts))

    def _encoded(self, line: str, font: str) -> str:
        key = (font, line)
        hit = self._cache.get(key)
        if hit is None:
            ttf = pdfmetrics.getFont(font)
            doc = self.canvas._doc
            hit = " ".join(f"{ttf.getSubsetInternalName(subset, doc)} {SIZE} Tf ({self.canvas._escape(chunk)}) Tj"
                           for subset, chunk in ttf.splitString(line, doc))
            if len(self._cache) < CACHE_ENTRIES:
                self._cache[key] = hit
        return hit

    def add(self, row: Sequence[str]) -> None:
        cells = [self._lines(value, w) for value, w in zip(row, self.widths, strict=True)]
        height = max(len(lines) for lines in cells) * LEADING + 2 * PAD
        if self.y - height < MARGIN:
            self._new_page()
        x = MARGIN
        for lines, w in zip(cells, self.widths, strict=True):
            self._draw(lines, x, self.y)
            self.canvas.rect(x, self.y - height, w, height, stroke=1, fill=0)
            x += w
        self.y -= height
        self.rows += 1

    def finish(self, empty: str = "Записей за период нет.") -> None:
        if not self.rows:
            self.canvas.setFont(FONT, 9)
            self.canvas.drawString(MARGIN, self.y - 14, empty)
        self.canvas.showPage()
        self.canvas.save()


def write_table_pdf(out: IO[bytes], *, title: str, subtitle: str, columns: Sequence[Column],
                    rows: Iterable[Sequence[str]], footer: str = "") -> int:
    """A whole table; returns the row count."""
    pdf = TablePdf(out, title=title, subtitle=subtitle, columns=columns, footer=footer)
    for row in rows:
        pdf.add(row)
    pdf.finish()
    return pdf.rows


def write_text_pdf(out: IO[bytes], *, title: str, paragraphs: Sequence[tuple[str, str]]) -> None:
    """A portrait page (or several) of labelled text: the pack's cover. `paragraphs`: (label, text);
    a label "" prints the text alone; monospaced text (hashes) keeps its width."""
    register_fonts()
    c = Canvas(out, pagesize=A4, pageCompression=1, invariant=1)
    c.setTitle(title)
    c.setAuthor("Открытая АДС")
    width = A4[0] - 2 * 18 * mm
    y = A4[1] - 20 * mm

    def line(text: str, font: str, size: float) -> None:
        nonlocal y
        for part in simpleSplit(text, font, size, width) or [""]:
            if y < 18 * mm:
                c.showPage()
                y = A4[1] - 20 * mm
            c.setFont(font, size)
            c.drawString(18 * mm, y, part)
            y -= size * 1.35

    line(title, FONT_BOLD, 14)
    y -= 4
    for label, text in paragraphs:
        if label:
            line(label, FONT_BOLD, 9)
        for paragraph in text.split("\n"):
            line(paragraph, FONT, 8.5)
        y -= 4
    c.showPage()
    c.save()
