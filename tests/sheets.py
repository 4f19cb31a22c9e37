"""Reading back the .xlsx files the product writes (export) or reads (import)."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import load_workbook


def sheet_rows(data: bytes) -> list[tuple[Any, ...]]:
    """All rows of the active sheet as value tuples."""
    wb = load_workbook(io.BytesIO(data))
    ws = wb.active
    assert ws is not None
    rows = [tuple(r) for r in ws.iter_rows(values_only=True)]
    wb.close()
    return rows
