"""Section "Statistical power": the smallest detectable difference and the seeds a given one needs."""

from __future__ import annotations

import pandas as pd

from analysis.report.document import Section, Settings, Study, Table
from analysis.report.format import format_value, is_unit_metric
from analysis.stats.power import power_analysis

EFFECT = 0.01  # the difference whose seed count the report states (one point on the metric's scale)


def build(study: Study, s: Settings, effect: float = EFFECT) -> tuple[Section, pd.DataFrame]:
    """Minimum detectable difference at the study's seed count and seeds needed for ``effect``."""
    pw = power_analysis(
        study.standard["runs"], s.metrics, reference=s.reference, alpha=s.alpha, effect=effect
    )

    def scaled(column: str) -> list[str]:
        return [
            format_value(v, percent=is_unit_metric(m)) for v, m in zip(pw[column], pw["metric"], strict=True)
        ]

    disp = pd.DataFrame(
        {
            "metric": pw["metric"],
            "seeds": pw["n_seeds"],
            "paired SD": scaled("seed_sd"),
            "min. detectable diff.": scaled("mde"),
            f"seeds for {format_value(effect, percent=True)} pp": pw["seeds_needed"],
        }
    )
    text = [
        "From the pooled SD of the paired (same-seed) differences to the reference: the smallest difference "
        f"detectable with 80 % power at alpha {s.alpha:g} (two-sided) with the study's seeds, and the seeds "
        f"needed to detect a difference of {format_value(effect, percent=True)} pp "
        "(SD and differences in pp for metrics in [0, 1])."
    ]
    table = Table("power", "Power: minimum detectable difference and seeds needed", pw, disp)
    return Section("Statistical power", text, [table]), pw
