"""The stream processor's offline parts: the feature rows it wrote online, kept beside the
batch table, so that training reads what was served.

Layout: beside a view's batch table `{folder}/{table}.parquet`, the folder
`{folder}/{table}.stream/` holds parquet parts, each the rows of one write, named so that
writing the same rows again replaces the part instead of adding one: a tiled view's rows of one
bucket boundary are `b{boundary}.parquet`, observations the log entries they came from
(`e{first}_{last}.parquet`). A part is written under a temporary name and renamed: a reader
sees a whole part or none.

Reading (the ASOF store, `relation_sql`): from the first instant the parts hold, they replace
the batch table: the batch table's rows before it, the parts' rows from it on, one row per key
and time. The stream writes a key's row only at the boundaries it passed (the online store
held the earlier row in between), so the batch table's rows in between, equal as they are to
what the stream would have computed there, were never served; they are not read either.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SUFFIX = ".stream"


def parts_folder(table_path: str | Path) -> Path:
    """The folder of a batch table's stream parts."""
    path = Path(table_path)
    return path.with_name(path.stem + SUFFIX)


def has_parts(table_path: str | Path) -> bool:
    folder = parts_folder(table_path)
    return folder.is_dir() and any(folder.glob("*.parquet"))


def part_glob(table_path: str | Path) -> str:
    return str(parts_folder(table_path) / "*.parquet")


def write_part(table_path: str | Path, name: str, rows: pa.Table) -> Path:
    """The rows as the part `name` of the table's stream parts, replacing one of that name."""
    folder = parts_folder(table_path)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{name}.parquet"
    # A dot-name is not matched by the readers' `*.parquet`: a half-written part is unseen.
    temporary = folder / f".{name}.{uuid.uuid4().hex}.tmp"
    pq.write_table(rows, temporary)
    os.replace(temporary, final)
    return final


def table_schema(table_path: str | Path) -> pa.Schema | None:
    """The batch table's schema, which parts are written in (None: no batch table yet)."""
    path = Path(table_path)
    return pq.read_schema(path) if path.is_file() else None


def discard_parts(table_path: str | Path) -> int:
    """Remove the table's stream parts (their definition changed: a rebuilt table's rows and
    parts written by the old code must not be read together). The parts removed."""
    folder = parts_folder(table_path)
    if not folder.is_dir():
        return 0
    removed = len(list(folder.glob("*.parquet")))
    shutil.rmtree(folder)
    return removed
