"""Section "Paired contrasts against the reference": per fraction and pooled, Holm-adjusted."""

from __future__ import annotations

import pandas as pd

from analysis.report.document import Section, Settings, Study, Table, fraction_label
from analysis.report.figures import forest_plot
from analysis.report.format import format_p, format_value, interval_cells
from analysis.stats.contrasts import paired_contrasts


def build(study: Study, s: Settings) -> tuple[Section, pd.DataFrame]:
    """Paired differences to the reference with intervals, tests and effect sizes, and a forest plot."""
    pc = paired_contrasts(study.standard["runs"], s.metrics, reference=s.reference, **s.kw)
    disp = pd.DataFrame(
        {
            "metric": pc["metric"],
            "variant": pc["variant"],
            "data_fraction": pc["data_fraction"].map(fraction_label),
            "seeds": pc["n_seeds"],
            "test": pc["method"].map(lambda m: "paired t" if m == "t" else m),
            f"difference [{s.level}]": interval_cells(pc, estimate="diff"),
            "p": pc["p_value"].map(format_p),
            "p (Holm)": pc["p_holm"].map(format_p),
            "d_z": pc["dz"].map(lambda v: format_value(v, decimals=2)),
            "P(variant > ref)": pc["prob_superior"].map(lambda v: format_value(v, decimals=2)),
        }
    )
    tested = int(pc["p_value"].notna().sum())
    text = [
        f"Differences are variant minus {s.reference} on the same seed (pp for metrics in [0, 1]). "
        "Each row has one procedure, the paired t-test: its interval is the paired t interval and its "
        "p-value the test's, so a difference is significant exactly when its interval excludes 0, at "
        "every seed count (the t interval held its 95 % coverage and Holm its family-wise error in the "
        "project's simulation with heavy tails, failed runs, ceilings and floors; a bootstrap interval did "
        f"not at 3-10 seeds). p (Holm) is adjusted across the family of the {tested} contrasts "
        "with a p-value (metrics x fractions x variants, pooled rows included). "
        "d_z is the mean paired difference over its SD; "
        "P(variant > ref) the share of seeds where the variant wins."
    ]
    untested = pc[pc["method"] != "t"]
    if len(untested):
        counts = untested["method"].value_counts()
        parts = [f"{n} {'has' if n == 1 else 'have'} {m}" for m, n in counts.items()]
        text.append(
            f"Not testable: of {len(pc)} contrasts, {' and '.join(parts)} (fewer than 3 seeds, or the same "
            "difference on every seed, e.g. every run at a ceiling or floor). They show no interval and no "
            "p-value, are left out of Holm's family and can only be 'not resolved at this seed count'."
        )
    fig = forest_plot(pc, palette=study.palette)[0]
    caption = f"Paired contrasts against {s.reference}, difference [{s.level} interval]"
    note = "p (Holm): Holm-adjusted across every row of this table."
    section = Section(
        f"Paired contrasts against {s.reference}",
        text,
        [Table("contrasts", caption, pc, disp, note=note)],
        [("contrasts", "Forest plot of the paired contrasts", fig)],
    )
    return section, pc
