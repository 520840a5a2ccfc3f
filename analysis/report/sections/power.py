"""Section "Statistical power": the smallest detectable difference and the seeds a given one needs."""

from __future__ import annotations

import pandas as pd

from analysis.report.document import Section, Settings, Study, Table, fraction_label
from analysis.report.format import format_value, is_unit_metric
from analysis.stats.intervals import MIN_SEEDS
from analysis.stats.power import power_analysis, worst_case

EFFECT = 0.01  # the difference whose seed count the report states (one point on the metric's scale)


def _seeds(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{int(value)}"


def build(study: Study, s: Settings, effect: float = EFFECT) -> tuple[Section, pd.DataFrame]:
    """Per-contrast power figures (raw table) and the worst contrast per metric (displayed)."""
    pw = power_analysis(
        study.standard["runs"], s.metrics, reference=s.reference, alpha=s.alpha, effect=effect
    )
    worst = worst_case(pw)

    def scaled(column: str) -> list[str]:
        return [
            format_value(v, percent=is_unit_metric(m))
            for v, m in zip(worst[column], worst["metric"], strict=True)
        ]

    m = int(pw["family_size"].iloc[0]) if len(pw) else 0
    effect_text = format_value(effect, percent=True)
    disp = pd.DataFrame(
        {
            "metric": worst["metric"],
            "worst contrast": [
                f"{r.variant} @ {fraction_label(r.data_fraction)}" for r in worst.itertuples(index=False)
            ],
            "testable": [
                f"{a} of {b}" for a, b in zip(worst["n_testable"], worst["n_contrasts"], strict=True)
            ],
            "seeds": worst["n_seeds"],
            "paired SD": scaled("sd"),
            "MDE": scaled("mde"),
            f"MDE (Holm, m = {m})": scaled("mde_family"),
            f"seeds for {effect_text} pp": worst["seeds_needed"].map(_seeds),
            f"seeds for {effect_text} pp (Holm)": worst["seeds_needed_family"].map(_seeds),
        }
    )
    text = [
        "Power of the report's paired t-test from the noncentral t distribution, per contrast with its own "
        "SD of the paired (same-seed) differences; the table shows, per metric, the contrast with the "
        "largest SD (the one a study must be planned for; every contrast is in tables/power.csv). "
        f"MDE is the difference detected with 80 % power at the contrast's seeds, two-sided alpha "
        f"{s.alpha:g}; the Holm columns plan at alpha / m for the family of m = {m} contrasts the "
        "contrasts table Holm-adjusts together (the Bonferroni bound for Holm's first step: a conservative "
        f"lower bound on the power after Holm). Seeds needed are for a difference of {effect_text} pp "
        f"and never fewer than {MIN_SEEDS}, the fewest the intervals accept. The figures treat the "
        "estimated SD as the true one; planned from a small pilot, a study reaches less power on average. "
        "Contrasts whose differences do not vary, or that have fewer than 3 seeds, are not testable and "
        "have no figures (SD and differences in pp for metrics in [0, 1])."
    ]
    table = Table(
        "power", "Power: worst-case contrast per metric, minimum detectable difference and seeds", pw, disp
    )
    return Section("Statistical power", text, [table]), pw
