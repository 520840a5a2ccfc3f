"""The latency-vs-FLOPs table: FLOP ratios and the published single-run ratios, known answers."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.report.sections.latency import latency_vs_flops


def test_flops_and_published_ratios_are_put_beside_measured_ones():
    runs = pd.DataFrame(
        {"variant": ["avgpool", "maxpool", "strided"], "status": "ok", "flops": [100e6, 100e6, 25e6]}
    )
    lr = pd.DataFrame(
        {
            "variant": ["avgpool", "maxpool", "strided"],
            "memory_format": "contiguous",
            "batch_size": 32,
            "median_ms": [10.0, 15.0, 4.0],
            "ratio": [1.0, 1.5, 0.4],
            "low": [1.0, 1.4, 0.35],
            "high": [1.0, 1.6, 0.45],
        }
    )
    raw, disp, note = latency_vs_flops(lr, runs, "avgpool")
    by = raw.set_index("variant")
    assert by.loc["strided", "flops_ratio"] == pytest.approx(0.25)
    assert by.loc["maxpool", "flops_ratio"] == pytest.approx(1.0)
    assert by.loc["maxpool", "published_ratio"] == pytest.approx(168.7 / 78.2)
    assert by.loc["strided", "published_ratio"] == pytest.approx(50.8 / 78.2)
    assert "168.7 : 78.2 : 50.8" in note and len(disp) == 3


def test_no_table_without_the_reference_variant():
    runs = pd.DataFrame({"variant": ["maxpool"], "status": "ok", "flops": [1e6]})
    lr = pd.DataFrame(
        {
            "variant": ["maxpool"],
            "memory_format": "contiguous",
            "batch_size": 1,
            "median_ms": [1.0],
            "ratio": [1.0],
            "low": [1.0],
            "high": [1.0],
        }
    )
    assert latency_vs_flops(lr, runs, "avgpool") is None
