"""The stream processor's offline parts, as the ASOF store reads them: from the first instant
the parts hold, they replace the batch table (its rows before that instant still count, its
rows after it are not read, even between the parts' rows), a part written twice counts once,
and a half-written part is never read. DuckDB on small parquet files, no services."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from skewless.offline.asof_sql import ROW, ViewJoin, join_views
from skewless.offline.stream_parts import discard_parts, parts_folder, table_schema, write_part

T0 = pd.Timestamp("2013-12-01 00:00", tz="UTC")


def _rows(hours: list[float], value: float, origin: str = "EWR") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "origin": origin,
            "event_timestamp": [T0 + pd.Timedelta(hours=h) for h in hours],
            "x": [value + h for h in hours],
        }
    )


def _read(table: Path, hours: list[float], origin: str = "EWR") -> list[float | None]:
    view = ViewJoin(
        path=str(table),
        keys={"origin": "origin"},
        timestamp="event_timestamp",
        created=None,
        columns={"x": "x"},
        ttl=None,
    )
    entity = pa.table(
        {
            ROW: list(range(len(hours))),
            "event_timestamp": [T0 + pd.Timedelta(hours=h) for h in hours],
            "origin": [origin] * len(hours),
        }
    )
    return join_views(entity, [view], "event_timestamp")["x"].to_pylist()


def test_parts_replace_the_batch_table_from_their_first_instant(tmp_path: Path) -> None:
    table = tmp_path / "origin_recent.parquet"
    _rows([0, 1, 2, 3, 4, 5, 6], value=100).to_parquet(table)  # the batch: every hour
    assert _read(table, [0.5, 3.5, 5.5]) == [100, 103, 105]  # no parts: the batch table

    schema = table_schema(table)
    # The stream wrote rows at hours 3 and 5 only (it passed those boundaries).
    for hour in (3, 5):
        rows = pa.Table.from_pandas(_rows([hour], value=200), schema=schema)
        write_part(table, f"b{hour}", rows)
    # Before hour 3: the batch; from it on: the parts, and the batch's hour-4 row is not
    # read (it was never served: the online store held hour 3's row until hour 5's).
    assert _read(table, [0.5, 2.5, 3.5, 4.5, 5.5, 9]) == [100, 102, 203, 203, 205, 205]


def test_a_part_written_twice_counts_once_and_a_half_written_one_is_unseen(
    tmp_path: Path,
) -> None:
    table = tmp_path / "weather.parquet"
    _rows([0, 1], value=0).to_parquet(table)
    schema = table_schema(table)
    same = pa.Table.from_pandas(_rows([2, 3], value=50), schema=schema)
    write_part(table, "e1-0_9-0", same)
    write_part(table, "e1-0_5-0", same)  # a restart read the entries again, batched otherwise
    write_part(table, "e1-0_5-0", same)  # and the same part again: replaced
    assert len(list(parts_folder(table).glob("*.parquet"))) == 2
    # A writer killed mid-part leaves a temporary file: not a part.
    (parts_folder(table) / ".b9.0123.tmp").write_bytes(b"PAR1 half a file")
    assert _read(table, [1.5, 2.5, 3.5]) == [1, 52, 53]

    # Another key's part: read for its key only.
    other = pa.Table.from_pandas(_rows([2], value=70, origin="JFK"), schema=schema)
    write_part(table, "e10-0_11-0", other)
    assert _read(table, [2.5], origin="JFK") == [72]
    assert pq.read_table(parts_folder(table) / "e1-0_9-0.parquet").num_rows == 2


def test_parts_of_a_changed_definition_are_discarded(tmp_path: Path) -> None:
    table = tmp_path / "route.parquet"
    _rows([0, 1], value=0).to_parquet(table)
    write_part(table, "b1", pa.Table.from_pandas(_rows([1], value=9), schema=table_schema(table)))
    assert _read(table, [1.5]) == [10]
    assert discard_parts(table) == 1
    assert not parts_folder(table).exists()
    assert _read(table, [1.5]) == [1]  # the rebuilt table alone
