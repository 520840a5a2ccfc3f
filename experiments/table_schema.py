"""The one Arrow schema of every results table, so that every file of a table has every column.

Built from :mod:`downscalexr.schema` (the column names and pandas dtypes): the grid writes every cell
file with it (:func:`experiments.store.write_cell`) and ``<table>/_common_metadata`` holds it. A file
whose schema differs (written before a column existed) is found by :func:`is_current` and rewritten by
:mod:`experiments.upgrade`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from downscalexr import schema

COMMON_METADATA = "_common_metadata"
# pandas dtype of downscalexr.schema -> the Arrow type every file of a table stores it as (the types
# pandas writes them with, so files written by earlier versions with every column are already current)
_ARROW_TYPES = {
    "string": pa.large_string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "boolean": pa.bool_(),
}


def arrow_schema(table: str) -> pa.Schema:
    """The one Arrow schema every file of ``table`` is written with: the schema module's columns, in order.

    Examples
    --------
    >>> arrow_schema("epochs").names[:3]
    ['run_id', 'epoch', 'train_loss']
    """
    columns = schema.TABLES[table]
    return pa.schema([pa.field(name, _ARROW_TYPES[dtype]) for name, dtype in columns.items()])


def to_arrow(table: str, frame: pd.DataFrame) -> pa.Table:
    """``frame`` (conformed to ``table``) as an Arrow table with :func:`arrow_schema`'s columns and types.

    Columns beyond the schema (a measurement not yet in :mod:`downscalexr.schema`) are kept after it,
    with the types Arrow infers, rather than dropped.
    """
    frame = schema.conform(table, frame).reset_index(drop=True)
    target = arrow_schema(table)
    extra = [c for c in frame.columns if c not in target.names]
    if extra:
        inferred = pa.Table.from_pandas(frame[extra], preserve_index=False).schema
        target = pa.schema([*target, *(inferred.field(c) for c in extra)])
    return pa.Table.from_pandas(frame, schema=target, preserve_index=False)


def is_current(path: Path, table: str) -> bool:
    """Whether the Parquet file ``path`` already has ``table``'s schema (its columns first, same types).

    Raises
    ------
    OSError, pyarrow.ArrowException
        When the file's footer cannot be read.
    """
    found = pq.read_schema(path).remove_metadata()
    wanted = arrow_schema(table)
    head = pa.schema(list(found)[: len(wanted)])
    return head.equals(wanted)
