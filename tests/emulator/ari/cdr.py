"""Asterisk's CDR table as cdr_sqlite3_custom writes it, for the emulated Asterisk.

The table name and columns come from dialplan/cdr_sqlite3_custom.conf, the file a real Asterisk
loads, each value being the CDR field its `'${CDR(<field>)}'` names. As the module does
(res/cdrel_custom/config.c `open_database`, writers.c `write_record_to_database`):

- the file is opened (created) when the module loads, and the table made if `SELECT COUNT(*)`
  fails: `CREATE TABLE <table> (AcctId INTEGER PRIMARY KEY, <columns>)`, columns without types;
- every record is `INSERT INTO <table> VALUES (NULL,?,...)`, every value bound as text ('' when
  empty), with the config's `busy_timeout` (ms) against a reader holding the file;
- times are `${CDR(start)}` etc.: the server's local wall clock, "%Y-%m-%d %H:%M:%S", '' for a
  time never reached (answer); duration and billsec whole seconds; disposition ANSWERED,
  NO ANSWER, BUSY, FAILED or CONGESTION.

What records the emulator writes (state.py `_cdr_records`) is documented in ../ari/README.md.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[3]
CONF = ROOT / "dialplan" / "cdr_sqlite3_custom.conf"


@dataclass(frozen=True)
class CdrConfig:
    table: str
    columns: tuple[str, ...]
    fields: tuple[str, ...]  # the CDR field of each column's value, in order
    busy_timeout_ms: int = 1000


def load_config(path: Path = CONF) -> CdrConfig:
    """The [master] section of a cdr_sqlite3_custom.conf."""
    options = dict(re.findall(r"^\s*(\w+)\s*=>\s*(.+?)\s*$", path.read_text(encoding="utf-8"), re.M))
    columns = tuple(c.strip().strip("'\"") for c in options["columns"].split(","))
    fields = tuple(re.findall(r"\$\{CDR\((\w+)\)\}", options["values"]))
    if len(fields) != len(columns):
        raise ValueError(f"{path}: {len(columns)} columns but {len(fields)} ${{CDR(...)}} values")
    return CdrConfig(options.get("table", "cdr"), columns, fields, int(options.get("busy_timeout", 1000)))


def wall_clock(ts: float | None) -> str:
    """`${CDR(start)}`: the server's local time to the second; '' when never reached."""
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


class CdrWriter:
    """One SQLite file (master.db), kept open as the module keeps it."""

    def __init__(self, path: Path | str, config: CdrConfig | None = None) -> None:
        self.path = Path(path)
        self.config = config or load_config()
        self.written = 0
        self.failed = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     timeout=self.config.busy_timeout_ms / 1000)
        try:
            self._conn.execute(f"SELECT COUNT(*) FROM {self.config.table}")  # noqa: S608
        except sqlite3.OperationalError:
            self._conn.execute(f"CREATE TABLE {self.config.table} (AcctId INTEGER PRIMARY KEY, "
                               f"{','.join(self.config.columns)})")
        marks = ",".join("?" * len(self.config.columns))
        self._insert = f"INSERT INTO {self.config.table} VALUES (NULL,{marks})"  # noqa: S608

    def write(self, record: dict[str, str]) -> None:
        """One record: CDR field → value (missing fields are ''). A record that cannot be written
        (the file locked longer than busy_timeout) is logged and lost, as Asterisk loses it."""
        try:
            self._conn.execute(self._insert, [str(record.get(f, "")) for f in self.config.fields])
        except sqlite3.Error as exc:
            self.failed += 1
            log.error("Unable to write CDR to database %s. Error: %s", self.path, exc)
            return
        self.written += 1

    def close(self) -> None:
        self._conn.close()
