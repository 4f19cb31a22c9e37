"""Fixtures of the domain-core tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database of its own (a migration is run down and up on it)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'chain.sqlite3'}"
        return
    from tests.conftest import _pg_database

    yield from _pg_database(database_url)
