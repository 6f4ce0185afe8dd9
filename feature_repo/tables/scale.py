"""Scale data: the built tables as N back-to-back copies of the year, for benchmarks.

Copy k is the year itself with every timestamp moved k x 54 weeks later and every row id
given the suffix `~k`: no two rows of one key share a timestamp (the tables reach 7 days past
the year's end, so a shift of a whole year would collide there), each copy's values are the
real year's, so every distribution stays real, and whole weeks keep each weekday's traffic
on its weekday. (Months drift by 13 days a copy.) Tables stamped before the year (the static
profiles) are kept once: they hold for every copy.

    python -m feature_repo.tables.scale --copies 10 --into /tmp/scaled-data

Streams copy by copy through Arrow (one copy of one table in memory at a time).
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SHIFT = timedelta(weeks=54)
# Row ids that must stay unique across copies: the flight, in the request and outcome tables.
ROW_IDS = {"flight_requests": "flight_id", "flight_outcomes": "flight_id"}
MANIFEST = "tables.json"


def _copy(table: pa.Table, k: int, row_id: str | None) -> pa.Table:
    if k == 0:
        return table
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_timestamp(column.type):
            column = pc.add(column, pa.scalar(SHIFT * k, pa.duration(column.type.unit)))
        elif name == row_id:
            column = pc.binary_join_element_wise(column, pa.scalar(f"~{k}"), "")
        columns.append(column)
    return pa.table(columns, schema=table.schema)


def scale_tables(source: Path, target: Path, copies: int) -> dict[str, int]:
    """Write `copies` copies of every table in `source` into `target`; rows per table."""
    if copies < 1:
        raise ValueError("copies must be 1 or more")
    if target.resolve() == source.resolve():
        raise ValueError(f"{target} is the source folder: write the copies elsewhere")
    target.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    paths = sorted(source.glob("*.parquet"))
    spans = {p: pc.min_max(pq.read_table(p, columns=["event_timestamp"])[0]) for p in paths}
    # Static: every row stamped before the time-varying tables begin (the latest first stamp).
    begins = max(span["min"].as_py() for span in spans.values())
    for path in paths:
        table = pq.read_table(path)
        name = path.stem
        n = 1 if spans[path]["max"].as_py() < begins else copies
        if n > 1 and spans[path]["max"].as_py() - spans[path]["min"].as_py() >= SHIFT:
            raise ValueError(f"{name} spans more than {SHIFT.days} days: its copies would collide")
        with pq.ParquetWriter(target / path.name, table.schema) as writer:
            for k in range(n):
                writer.write_table(_copy(table, k, ROW_IDS.get(name)), row_group_size=1 << 17)
        rows[name] = table.num_rows * n
    manifest = json.loads((source / MANIFEST).read_text()) if (source / MANIFEST).is_file() else {}
    manifest.pop("key", None)  # not the build's tables: `build-tables` must not take them as such
    manifest["rows"] = rows
    manifest["scaled"] = {"copies": copies, "shift_days": SHIFT.days}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--into", type=Path, required=True, help="Folder for the scaled tables.")
    parser.add_argument("--source", type=Path, default=Path(__file__).parents[1] / "data")
    args = parser.parse_args()
    if args.into.resolve() == args.source.resolve():
        parser.error("--into is the source folder")
    shutil.rmtree(args.into, ignore_errors=True)
    for name, n in scale_tables(args.source, args.into, args.copies).items():
        print(f"{name}: {n:,} rows")


if __name__ == "__main__":
    main()
