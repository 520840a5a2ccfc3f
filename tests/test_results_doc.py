"""docs/results.md describes every table and column of downscalexr.schema and cannot drift from it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from downscalexr import schema

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("generate_results", REPO / "docs" / "generate_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_page_is_the_generators_output(generator):
    committed = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    assert committed == generator.render(), "docs/results.md is stale: run `python docs/generate_results.py`"


def test_every_table_and_column_has_a_description():
    assert set(schema.TABLE_DESCRIPTIONS) == set(schema.TABLES)
    for table, columns in schema.TABLES.items():
        described = schema.COLUMN_DESCRIPTIONS[table]
        assert [c for c in columns if not described.get(c, "").strip()] == [], table
        # no description of a column the schema lacks (a typo, or a renamed column left behind)
        assert set(described) <= set(columns), table


def test_page_lists_every_column_with_its_dtype(generator):
    """Read the page's Markdown tables back and compare them with the schema itself."""
    page = generator.render()
    sections = re.split(r"^## ", page, flags=re.M)
    for table, columns in schema.TABLES.items():
        (section,) = [s for s in sections if s.startswith(f"`{table}`")]
        rows = re.findall(r"^\| `([a-z0-9_]+)` \| ([a-z0-9]+) \|", section, flags=re.M)
        assert rows == list(columns.items())


def test_missing_description_is_named(generator, monkeypatch):
    trimmed = {t: dict(c) for t, c in schema.COLUMN_DESCRIPTIONS.items()}
    del trimmed["latency"]["reference_seconds"]
    monkeypatch.setattr(schema, "COLUMN_DESCRIPTIONS", trimmed)
    with pytest.raises(ValueError, match=r"latency\.reference_seconds.*downscalexr/schema\.py"):
        generator.render()


def test_check_mode_reports_a_stale_page(generator, monkeypatch, tmp_path, capsys):
    target = tmp_path / "results.md"
    monkeypatch.setattr(generator, "TARGET", target)
    target.write_text("old\n")
    assert generator.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
    assert target.read_text() == generator.render()
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]  # no temporary left behind
