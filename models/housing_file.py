"""Reading a housing stock file: CSV (delimiter «;», «,» or tab; UTF-8 or Windows-1251) or XLSX
(the first sheet), as a stream of `RowData` after a checked header. No database here.

A file that cannot be read at all (not CSV/XLSX, broken workbook, no «Адрес» column, empty) raises
`ImportFailed` with a Russian message before any row is yielded; data rows are read lazily, so
memory stays bounded for files of 100 000 rows and more.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from models.errors import ImportFailed
from models.rules.housing_rows import HEADER_MAP, RowData, header_key

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003, and any password-protected workbook
BROKEN_XLSX = "файл повреждён или не является книгой Excel (.xlsx); сохраните его заново как .xlsx или CSV"
OLE_XLSX = ("файл в формате Excel 97–2003 или защищён паролем: откройте его в Excel и сохраните как .xlsx "
            "без пароля или как CSV")


class HousingRows:
    """An iterator of `RowData` plus what the header told: recognised and ignored columns."""

    def __init__(self, rows: Iterator[RowData], columns: list[str], ignored: list[str],
                 close: Callable[[], None] | None = None, total_hint: int | None = None) -> None:
        self._rows = rows
        self.columns = columns
        self.ignored_columns = ignored
        self._close = close
        self.total_hint = total_hint  # data rows the file says it has (xlsx), else None

    def __iter__(self) -> Iterator[RowData]:
        return self

    def __next__(self) -> RowData:
        return next(self._rows)

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None


# ---------------------------------------------------------------------------------------------
# Reading files


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _mapping(header: list[object]) -> tuple[list[tuple[int, str]], list[str], list[str]]:
    """Column positions of known fields; fails without the «Адрес» column."""
    positions: list[tuple[int, str]] = []
    seen: set[str] = set()
    ignored: list[str] = []
    for i, raw in enumerate(header):
        name = HEADER_MAP.get(header_key(raw))
        if name is None or name in seen:
            if _cell_text(raw):
                ignored.append(_cell_text(raw))
            continue
        seen.add(name)
        positions.append((i, name))
    if "address" not in seen:
        found = ", ".join(f"«{_cell_text(h)}»" for h in header if _cell_text(h)) or "нет заголовков"
        raise ImportFailed(f"в первой строке файла нет столбца «Адрес» (найдено: {found})")
    return positions, [name for _i, name in positions], ignored


def _rows_from(table: Iterator[Any], close: Callable[[], None] | None, size: int | None = None) -> HousingRows:
    """`table`: an iterator of row sequences; the first non-empty one is the header."""
    header: list[object] | None = None
    header_row = 0
    for raw in table:
        header_row += 1
        if any(_cell_text(v) for v in raw):
            header = list(raw)
            break
    if header is None:
        if close:
            close()
        raise ImportFailed("файл пуст: нет строки заголовков")
    try:
        positions, columns, ignored = _mapping(header)
    except ImportFailed:
        if close:
            close()
        raise

    def gen() -> Iterator[RowData]:
        n = header_row
        try:
            for raw in table:
                n += 1
                values = {}
                width = len(raw)
                for i, name in positions:
                    if i < width:
                        text = _cell_text(raw[i])
                        if text:
                            values[name] = text
                if values:
                    yield RowData(n, values)
        finally:
            if close:
                close()

    total = size - header_row if size is not None and size > header_row else None
    return HousingRows(gen(), columns, ignored, close, total)


def _open_binary(source: str | Path | IO[bytes]) -> tuple[IO[bytes], bool]:
    if hasattr(source, "read"):
        return source, False  # type: ignore[return-value]
    try:
        return open(source, "rb"), True  # noqa: SIM115
    except OSError as exc:
        raise ImportFailed(f"не удалось открыть файл: {exc.strerror or exc}") from exc


def _detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1251"


def _detect_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ";"


def _csv_rows(source: str | Path | IO[bytes]) -> HousingRows:
    binary, owned = _open_binary(source)
    try:
        if not hasattr(binary, "peek"):
            binary = io.BufferedReader(binary)  # type: ignore[type-var]
        sample = binary.peek(64 * 1024)[: 64 * 1024]
        if b"\x00" in sample[:4096]:
            raise ImportFailed("файл не похож на текстовый CSV (двоичные данные); сохраните его как CSV или XLSX")
        encoding = _detect_encoding(sample)
        first_line = sample.decode(encoding, errors="replace").splitlines()[0] if sample else ""
        text = io.TextIOWrapper(binary, encoding=encoding, newline="")
    except BaseException:
        if owned:
            binary.close()
        raise
    delimiter = _detect_delimiter(first_line.lstrip("\ufeff"))
    reader = csv.reader(text, delimiter=delimiter)

    def safe() -> Iterator[list[str]]:
        try:
            yield from reader
        except UnicodeDecodeError as exc:
            raise ImportFailed("не удалось прочитать файл: кодировка не UTF-8 и не Windows-1251") from exc
        except csv.Error as exc:
            raise ImportFailed(f"ошибка разбора CSV в строке {reader.line_num}: {exc}") from exc

    def close() -> None:
        if owned:
            text.close()
        else:
            text.detach()  # leave the caller's stream open

    return _rows_from(safe(), close)


def _xlsx_rows(source: str | Path | IO[bytes]) -> HousingRows:
    import warnings

    from openpyxl import load_workbook

    broken = BROKEN_XLSX
    if _starts_with(source, OLE_MAGIC):
        raise ImportFailed(OLE_XLSX)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles/extensions it does not know
            wb = load_workbook(source, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise ImportFailed(broken) from exc
    except Exception as exc:  # openpyxl raises assorted errors on malformed parts
        raise ImportFailed(broken) from exc
    try:
        ws = wb.worksheets[0] if wb.worksheets else None
    except Exception as exc:
        wb.close()
        raise ImportFailed(broken) from exc
    if ws is None:
        wb.close()
        raise ImportFailed("в книге нет листов")

    def table() -> Iterator[Any]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield from ws.iter_rows(values_only=True)
        except ImportFailed:
            raise
        except Exception as exc:
            raise ImportFailed(broken) from exc

    try:
        size = ws.max_row  # from the sheet's <dimension>; None when the writer left it out
    except Exception:
        size = None
    return _rows_from(table(), wb.close, size if isinstance(size, int) else None)


def _starts_with(source: str | Path | IO[bytes], magic: bytes) -> bool:
    try:
        if hasattr(source, "read"):
            stream: Any = source
            if not hasattr(stream, "seek"):
                return False
            at = stream.tell()
            head = stream.read(len(magic))
            stream.seek(at)
        else:
            with open(source, "rb") as f:
                head = f.read(len(magic))
    except OSError:
        return False
    return bool(head == magic)


def estimate_data_rows(path: str | Path) -> int | None:
    """About how many data rows a file holds, for a progress bar: an XLSX's own dimension, a CSV's
    line count less the header (quoted line breaks make it a little high). None when unknown."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            lines = 0
            last = b"\n"
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    lines += chunk.count(b"\n")
                    last = chunk[-1:]
            lines += last != b"\n"
            return max(0, lines - 1)
        if suffix in (".xlsx", ".xlsm"):
            rows = parse_housing_file(path, path.name)
            rows.close()
            return rows.total_hint
    except (OSError, ImportFailed):
        return None
    return None


def parse_housing_file(source: str | Path | IO[bytes], filename: str) -> HousingRows:
    """Open a CSV (delimiter «;», «,» or tab; UTF-8 or Windows-1251) or an XLSX (first sheet).

    The header is read and checked at once (a broken or headerless file raises ImportFailed
    before anything is written); data rows are then read lazily. Close the result when done
    (iterating to the end closes it too).
    """
    suffix = Path(filename or "").suffix.lower()
    if suffix in (".csv", ".txt"):
        return _csv_rows(source)
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_rows(source)
    if suffix == ".xls":
        raise ImportFailed("формат .xls (Excel 97–2003) не поддерживается: сохраните файл как .xlsx или CSV")
    raise ImportFailed("поддерживаются файлы .csv и .xlsx")
