"""The results schema: late-added columns are filled in for files written before they existed."""

import math

import pandas as pd
import pytest

from downscalexr import schema


def _old_runs_row() -> pd.DataFrame:
    """A runs row as written before the inductive-bias columns existed."""
    late = schema.LATE_DEFAULTS["runs"]
    frame = schema.empty("runs").drop(columns=list(late))
    row = {c: (0 if schema.RUNS[c] == "int64" else math.nan) for c in frame.columns}
    row |= {"run_id": "a" * 16, "status": "ok", "variant": "avgpool"}
    return pd.DataFrame([row]).astype({c: schema.RUNS[c] for c in frame.columns})


def test_conform_fills_late_columns_with_their_defaults():
    out = schema.validate("runs", _old_runs_row())
    assert list(out.columns) == list(schema.RUNS)
    assert not out["permute"].iloc[0]
    assert out["init"].iloc[0] == "random"
    assert math.isnan(out["location_shift"].iloc[0])
    assert math.isnan(out["shift_consistency_pad"].iloc[0])
    assert str(out["permute"].dtype) == "boolean"
    # before operating points every binary run was scored at 0.5; the chosen point is unknown
    assert out["operating_point"].iloc[0] == "fixed"
    assert out[list(schema.OPERATING_POINT_COLUMNS)].isna().all(axis=None)
    assert out["threshold_rule"].isna().iloc[0] and out["steps_run"].iloc[0] == -1


def test_conform_gives_old_epoch_files_the_step_column():
    old = schema.empty("epochs").drop(columns=["step"])
    old.loc[0] = ["a" * 16, 0, 0.5, 0.8, 0.5, 0.8, 0.9, 1.0]
    out = schema.validate("epochs", old.astype({c: schema.EPOCHS[c] for c in old.columns}))
    assert out["step"].iloc[0] == -1 and list(out.columns) == list(schema.EPOCHS)


def test_conform_still_rejects_a_missing_column_without_a_default():
    frame = _old_runs_row().drop(columns=["accuracy"])
    with pytest.raises(schema.SchemaError, match="accuracy"):
        schema.conform("runs", frame)


def test_kernels_table_is_part_of_the_contract():
    assert "kernels" in schema.TABLES
    assert list(schema.empty("kernels").columns) == list(schema.KERNELS)
    assert schema.LATE_DEFAULTS["runs"]["init"] in schema.INIT_CHOICES


def test_every_compression_column_has_a_description():
    from experiments._compression import FACT_COLUMNS

    described = schema.COMPRESSION_DESCRIPTIONS["runs"]
    added = {"compression", "parent_run_id", "compression_seconds", "compression_detail", *FACT_COLUMNS}
    assert added <= set(described) <= set(schema.RUNS)
    assert all(status in described["status"] for status in schema.STATUSES)
    assert all(len(text) > 20 for text in described.values())
