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
            f"difference [{s.level}]": interval_cells(pc, estimate="diff"),
            "p": pc["p_value"].map(format_p),
            "p (Holm)": pc["p_holm"].map(format_p),
            "d_z": pc["dz"].map(lambda v: format_value(v, decimals=2)),
            "P(variant > ref)": pc["prob_superior"].map(lambda v: format_value(v, decimals=2)),
        }
    )
    text = [
        f"Differences are variant minus {s.reference} on the same seed (pp for metrics in [0, 1]); "
        "intervals come from a bootstrap that resamples seeds jointly across variants "
        f"({s.n_boot} resamples, method: {', '.join(sorted(set(pc['method'])))}). "
        f"p-values are Holm-adjusted across the whole family of {len(pc)} contrasts "
        "(metrics x fractions x variants, pooled rows included). "
        "d_z is the mean paired difference over its SD; "
        "P(variant > ref) the share of seeds where the variant wins."
    ]
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
