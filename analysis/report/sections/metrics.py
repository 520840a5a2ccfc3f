"""Section "Accuracy and metrics by variant and data fraction": mean and interval of every metric."""

from __future__ import annotations

import pandas as pd

from analysis.report.document import (
    INTERVAL_RULE,
    Section,
    Settings,
    Study,
    Table,
    fraction_label,
    order_variants,
    pp_suffix,
)
from analysis.report.format import interval_cells
from analysis.stats.intervals import seed_summary


def build(study: Study, s: Settings) -> tuple[Section, pd.DataFrame]:
    """Mean and interval of each metric per variant x fraction; returns the section and the summaries."""
    runs = study.standard["runs"]
    summ = pd.concat([seed_summary(runs, m, **s.kw) for m in s.metrics], ignore_index=True)
    summ["cell"] = interval_cells(summ)
    disp = summ.pivot_table(
        index=["variant", "data_fraction"], columns="metric", values="cell", aggfunc="first", sort=False
    )[list(s.metrics)].reset_index()
    first = summ[summ["metric"] == s.metrics[0]].set_index(["variant", "data_fraction"])
    keys = list(zip(disp["variant"], disp["data_fraction"], strict=True))
    disp.insert(2, "seeds", [first.loc[k, "n_seeds"] for k in keys])
    disp.insert(3, "interval", [first.loc[k, "method"] for k in keys])
    disp = order_variants(disp, s.reference)
    disp["data_fraction"] = disp["data_fraction"].map(fraction_label)
    disp.columns = [f"{c}{pp_suffix(c)}" if c in s.metrics else c for c in disp.columns]
    text = [
        f"Mean over seeds with {s.level} intervals: {INTERVAL_RULE}. "
        "Metrics in [0, 1] are shown in percentage points (pp)."
    ]
    caption = f"Test metrics by variant and data fraction, mean [{s.level} interval] over seeds"
    raw = summ.drop(columns="cell")
    section = Section(
        "Accuracy and metrics by variant and data fraction", text, [Table("metrics", caption, raw, disp)]
    )
    return section, raw
