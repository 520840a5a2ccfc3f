"""Part of the "Inductive bias" section: shift consistency of the base-level CNN runs, and its contrasts."""

from __future__ import annotations

import pandas as pd

from analysis.design import CONSISTENCY_MODES, base_runs
from analysis.report.document import Section, Settings, Study, Table, fraction_label, order_variants
from analysis.report.figures import forest_plot
from analysis.report.format import format_interval, format_p, interval_cells
from analysis.stats.contrasts import paired_contrasts
from analysis.stats.intervals import seed_summary


def _contrasts(section: Section, cnn: pd.DataFrame, columns: list[str], study: Study, s: Settings) -> None:
    """Consistency of each variant minus the reference's, paired by seed, with a forest plot."""
    pc = paired_contrasts(cnn, columns, reference=s.reference, **s.kw)
    pc_disp = pd.DataFrame(
        {
            "mode": pc["metric"].str.replace("shift_consistency_", ""),
            "variant": pc["variant"],
            "data_fraction": pc["data_fraction"].map(fraction_label),
            "seeds": pc["n_seeds"],
            f"difference (pp) [{s.level}]": [
                format_interval(r.diff, r.low, r.high, percent=True) for r in pc.itertuples()
            ],
            "p (Holm)": pc["p_holm"].map(format_p),
        }
    )
    note = "p (Holm): Holm-adjusted across the rows of this table."
    caption = f"Shift consistency: variant - {s.reference}"
    section.tables.append(Table("shift_consistency_contrasts", caption, pc, pc_disp, note=note))
    caption = f"Shift consistency, paired differences vs {s.reference} (consistency on the 0-1 scale)"
    section.figures.append(("shift_consistency", caption, forest_plot(pc, palette=study.palette)[0]))


def add_shift_consistency(section: Section, study: Study, s: Settings) -> None:
    """Shift consistency (Zhang 2019) per variant and fraction, and contrasts against the reference."""
    cnn = base_runs(study.tables["runs"])
    cnn = cnn[cnn["status"] == "ok"]
    columns = [c for c in CONSISTENCY_MODES.values() if cnn[c].notna().any()]
    if not columns:
        section.text.append("Shift consistency was not measured in this study (no consistency columns).")
        return
    means = pd.concat([seed_summary(cnn, c, **s.kw) for c in columns], ignore_index=True)
    disp = (
        means.assign(cell=interval_cells(means, metric="accuracy"))
        .pivot_table(index=["variant", "data_fraction"], columns="metric", values="cell", aggfunc="first")
        .reset_index()
    )
    disp = order_variants(disp, s.reference).assign(
        data_fraction=lambda x: x["data_fraction"].map(fraction_label)
    )
    section.text.append(
        "Shift consistency (Zhang 2019): the probability that the predicted class is unchanged between two "
        "random shifts of the same test image (circular: wrap-around; pad: crop with padding), in %, "
        f"base-level CNN runs, mean [{s.level} interval] over seeds; "
        f"contrasts are paired by seed against {s.reference}."
    )
    section.tables.append(
        Table("shift_consistency", f"Shift consistency (%) [{s.level} interval]", means, disp)
    )
    if cnn["variant"].nunique() > 1 and s.reference in set(cnn["variant"]):
        _contrasts(section, cnn, columns, study, s)
