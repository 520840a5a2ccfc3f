"""The report's summary of findings: plain-word sentences, each with its estimate and interval.

Each kind of finding is one small function in :data:`FINDINGS`, taking the study, the sections'
results (by section name, see :data:`analysis.report.sections.SECTIONS`) and the settings, and
returning its sentences; :func:`summary_lines` runs them in order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from analysis.design import MLP_MODEL, POINT_NAMES, primary_model, reported_point
from analysis.report.document import Settings, Study, fraction_label
from analysis.report.format import format_interval, format_p, format_value, is_unit_metric
from analysis.stats.power import worst_case
from analysis.verdicts.hypotheses import STATEMENTS


def _fractions(values) -> str:
    return ", ".join(f"{f:g}" for f in sorted(set(values)))


def _direction(low: float, high: float, above: str, below: str) -> str:
    if low > 0:
        return above
    if high < 0:
        return below
    return "no difference resolved (the interval includes 0)"


def _unit(metric: str) -> str:
    return " pp" if is_unit_metric(metric) else ""


def run_counts(study: Study, results: dict, s: Settings) -> list[str]:
    """How many runs, variants, fractions and seeds; and which runs the standard sections analyse."""
    runs = study.standard["runs"]
    ok = runs[runs["status"] == "ok"]
    lines = [
        f"{len(ok)} successful runs of {len(runs)} ({len(runs) - len(ok)} failed or diverged): variants "
        f"{', '.join(sorted(set(ok['variant'])))}; data fractions {_fractions(ok['data_fraction'])}; "
        f"{ok['seed'].nunique()} seeds. All intervals are {s.level} intervals."
    ]
    every = study.tables["runs"]
    level = every["compression"].fillna("none") if "compression" in every else pd.Series("none", every.index)
    n_all = int(((every["status"] == "ok") & (level == "none")).sum())
    models = sorted(set(every["model"].astype(str)) - {MLP_MODEL})
    if len(ok) < n_all:
        which = f"{primary_model(study.tables['runs'])} runs" if len(models) > 1 else "CNN runs"
        lines.append(
            f"The standard sections analyse the {len(ok)} successful {which} "
            "at the base level of every factor (unpermuted, no location shift, random init); "
            f"calibration and inductive bias use all {n_all}."
        )
    if len(models) > 1:
        lines.append(
            f"The study trains {len(models)} CNN models ({', '.join(models)}); the standard sections "
            f"analyse {primary_model(study.tables['runs'])} only, so no variant's effect is averaged over "
            "architectures; the other models appear in the sections that compare models."
        )
    n_compressed = int(((every["status"] == "ok") & (level != "none")).sum())
    if n_compressed:
        lines.append(
            f"{n_compressed} successful compressed runs (compression levels of the trained models) are "
            "analysed in 'Compression' only; every other section uses the uncompressed models."
        )
    return lines


def contrast_findings(study: Study, results: dict, s: Settings) -> list[str]:
    """Each variant against the reference on the primary metric, pooled over fractions."""
    ref, metric = s.reference, s.metrics[0]
    pc = results["contrasts"]
    lines = []
    for variant, part in pc[pc["metric"] == metric].groupby("variant", sort=True):
        per = part[part["data_fraction"].notna()]
        # a study with one fraction has no pooled row: its single fraction is the overall answer
        pooled = part[part["data_fraction"].isna()] if part["data_fraction"].isna().any() else per
        if not len(pooled):
            continue
        n_sig = int((per["p_holm"] < s.alpha).sum())
        r = pooled.iloc[0]
        cell = format_interval(r["diff"], r["low"], r["high"], percent=is_unit_metric(metric))
        verdict = _direction(r["low"], r["high"], f"higher than {ref}", f"lower than {ref}")
        if r["method"] != "t":  # fewer than 3 seeds, or the same difference on every seed
            verdict = f"not testable ({r['method']})"
        where = (
            "pooled over fractions" if pd.isna(r["data_fraction"]) else f"at fraction {r['data_fraction']:g}"
        )
        lines.append(
            f"{variant} vs {ref}, {metric} {where}: {cell}{_unit(metric)} (Holm p {format_p(r['p_holm'])}): "
            f"{verdict}; Holm-significant at {n_sig} of {len(per)} fractions."
        )
    return lines


def mixed_findings(study: Study, results: dict, s: Settings) -> list[str]:
    """The likelihood-ratio tests of the primary metric's mixed model, and any fit warnings."""
    fits = results["mixed models"] or []
    lines = []
    for fit in fits[:1]:
        tests = fit.lrt.set_index("test")
        parts = [
            f"{name} chi2 = {tests.loc[key, 'chi2']:.2f} (df {int(tests.loc[key, 'df'])}, "
            f"p {format_p(tests.loc[key, 'p_value'])})"
            for key, name in (("variant", "variant effect"), ("variant:log2_fraction", "variant x fraction"))
            if key in tests.index
        ]
        caveat = "" if fit.converged else " (the fit did not converge: do not rely on these tests)"
        lines.append(f"Mixed model of {fit.metric} (pp): likelihood-ratio tests {'; '.join(parts)}{caveat}.")
        if fit.floors:
            lines.append(
                f"Fractions {', '.join(f'{x:g}' for x in fit.floors)} are at the floor (every run of "
                f"{fit.metric} identical) and were left out of the mixed model."
            )
        if fit.sensitivity is not None:
            off = fit.sensitivity.loc[~fit.sensitivity["agree"].astype(bool), "term"].tolist()
            lines.append(
                "The binomial sensitivity model (counts, logit scale) "
                + (
                    f"disagrees with the linear model on {', '.join(off)}."
                    if off
                    else "agrees with it on every term."
                )
            )
    warned = [f for f in fits if f.warnings]
    if warned:
        failed = [f.metric for f in fits if not f.converged]
        lines.append(
            f"Mixed-model warnings: {sum(len(f.warnings) for f in warned)} for "
            f"{', '.join(f.metric for f in warned)}"
            + (f"; no converged fit for {', '.join(failed)}" if failed else "")
            + " (listed in the section 'Mixed-effects models')."
        )
    return lines


def bias_findings(study: Study, results: dict, s: Settings) -> list[str]:
    """Which variants over-call the positive class relative to the reference, pooled over fractions.

    Over-calling is a PPR/prevalence or FPR difference whose interval lies above 0; both differences
    are printed, since the two can disagree (more positive calls, yet fewer of them false).
    """
    bs, ref = results.get("bias"), s.reference
    if bs is None:  # a multi-class study: no positive class to over-call
        return []
    point = POINT_NAMES[reported_point(study.standard["runs"])]
    pooled = bs[bs["data_fraction"].isna() & (bs["variant"] != ref)]
    names = {"ppr_over_prevalence": "PPR/prevalence", "fpr": "FPR"}
    lines = []
    for variant, part in pooled.groupby("variant", sort=True):
        rows = part.set_index("measure").reindex(list(names))
        above = [names[m] for m, r in rows.iterrows() if r["diff_low"] > 0]
        if not above:
            continue
        parts = "; ".join(
            f"{names[m]} difference "
            + format_interval(r["diff_vs_reference"], r["diff_low"], r["diff_high"], percent=m == "fpr")
            + (" pp" if m == "fpr" else "")
            for m, r in rows.iterrows()
        )
        lines.append(
            f"{variant} over-calls the positive class relative to {ref} ({' and '.join(above)} above 0, "
            f"pooled over fractions, at {point}): {parts}."
        )
    return lines or [f"No variant over-calls the positive class relative to {ref} (pooled over fractions)."]


def latency_findings(study: Study, results: dict, s: Settings) -> list[str]:
    """The fastest variant at the smallest batch size, with its ratio to the reference."""
    lr, ref = results["latency"], s.reference
    if lr is None or not len(lr):
        return []
    small = lr[lr["batch_size"] == lr["batch_size"].min()]
    ranked = small.sort_values(["ratio", "variant"])
    best = ranked.iloc[0]
    if best["variant"] == ref and len(ranked) > 1:
        nxt = ranked.iloc[1]
        ratio = format_interval(nxt["ratio"], nxt["low"], nxt["high"])
        return [
            f"Fastest at batch size {int(best['batch_size'])}: {ref} itself ({best['median_ms']:.3g} ms); "
            f"the next, {nxt['variant']}, takes {ratio} x its median latency."
        ]
    return [
        f"Fastest at batch size {int(best['batch_size'])}: {best['variant']}, median latency "
        f"{format_interval(best['ratio'], best['low'], best['high'])} x {ref}'s ({best['median_ms']:.3g} ms)."
    ]


def power_findings(study: Study, results: dict, s: Settings) -> list[str]:
    """The smallest detectable difference of the primary metric, and the seeds a given one needs."""
    metric, pw = s.metrics[0], results["power"]
    scale, unit = is_unit_metric(metric), _unit(metric)
    lines = []
    for r in worst_case(pw[pw["metric"] == metric]).itertuples(index=False):
        if not (np.isfinite(r.sd) and r.sd > 0):
            lines.append(
                f"Power: the paired {metric} differences do not vary across seeds, so the detectable "
                "difference cannot be estimated from this study."
            )
            continue
        needed = (
            "more seeds than can be planned"
            if pd.isna(r.seeds_needed_family)
            else f"{r.seeds_needed_family:.0f} seeds"
        )
        lines.append(
            f"Power (worst contrast, {r.variant} at fraction {fraction_label(r.data_fraction)}): with "
            f"{r.n_seeds} seeds the smallest {metric} difference detectable at 80 % power is "
            f"{format_value(r.mde, percent=scale)}{unit} per comparison and "
            f"{format_value(r.mde_family, percent=scale)}{unit} after Holm over {r.family_size} contrasts; "
            f"detecting {format_value(r.effect, percent=scale)}{unit} after Holm needs {needed}."
        )
    return lines


def claim_findings(study: Study, results: dict, s: Settings) -> list[str]:
    """How many claims got each verdict, then each claim's verdict."""
    cl = results["claims"]
    counts = cl["verdict"].value_counts()
    lines = ["Claims of single-run studies: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + "."]
    return lines + [f'Claim "{r.claim}": {r.verdict}.' for r in cl.itertuples(index=False)]


def hypothesis_findings(study: Study, results: dict, s: Settings) -> list[str]:
    """One sentence per tested inductive-bias hypothesis: its verdict per subject."""
    result = results.get("inductive bias")
    if not result or result["hypotheses"].empty:
        return []
    lines = []
    for h, part in result["hypotheses"].groupby("hypothesis", sort=False):
        verdicts = part.groupby("verdict", sort=False)["subject"].agg(lambda x: ", ".join(map(str, x)))
        text = "; ".join(f"{v} for {subjects}" for v, subjects in verdicts.items())
        lines.append(f"Inductive bias {h} ({STATEMENTS[h].split(' (')[0].rstrip('.')}): {text}.")
    return lines


def dilution_findings(study: Study, results: dict, s: Settings) -> list[str]:
    """The dilution verdict per residual model, with each variant's pooled effects in both models."""
    result = results.get("dilution")
    if not result or result["tests"].empty:
        return []
    tests, verdicts, metric = result["tests"], result["verdicts"], result["metric"]
    pct, lines = is_unit_metric(metric), []
    for model, part in verdicts.groupby("model", sort=True):
        overall = part.loc[part["variant"] == "all", "verdict"].iloc[0]
        rows = tests[tests["model"] == model]
        pooled = rows[rows["data_fraction"].isna()] if rows["data_fraction"].isna().any() else rows

        def effect(r, name: str) -> str:
            low, high = getattr(r, f"{name}_low"), getattr(r, f"{name}_high")
            return format_interval(getattr(r, name), low, high, percent=pct)

        evidence = "; ".join(
            f"{r.variant}: {effect(r, 'effect_base')} in {r.base_model} vs {effect(r, 'effect_model')} in "
            f"{model} ({r.verdict})"
            for r in pooled.itertuples(index=False)
        )
        lines.append(
            f"Dilution (the operator effect on {metric} vs {s.reference} is smaller in {model} than in the "
            f"{pooled['base_model'].iloc[0]}): {overall}. Effects{_unit(metric)}: {evidence}."
        )
    return lines


def compression_findings(study: Study, results: dict, s: Settings) -> list[str]:
    """Per compression level: the pooled accuracy change of each variant, and the latency and size ratios."""
    result = results.get("compression")
    if not result:
        return []
    ch = result["changes"]
    pooled = ch[ch["data_fraction"].isna() & (ch["metric"] == "accuracy")]
    lat, size = result["latency"], result["sizes"]
    lines = []
    for level, part in pooled.groupby("compression", sort=True):
        changes = ", ".join(
            f"{r.arm} {format_interval(r.diff, r.low, r.high, percent=True)} pp" for r in part.itertuples()
        )
        text = f"Compression {level}: accuracy change vs uncompressed (pooled over fractions) {changes}"
        if len(lat):
            mine = lat[(lat["compression"] == level) & (lat["memory_format"] == "contiguous")]
            for batch, rows in mine.groupby("batch_size", sort=True):
                text += (
                    f"; latency ratio at batch {batch} (contiguous, over variants) "
                    f"{rows['ratio'].min():.2f} to {rows['ratio'].max():.2f}"
                )
        sizes = size[(size["compression"] == level) & (size["measure"] == "size")]
        if len(sizes):
            text += f"; state-dict size ratio {sizes['mean'].min():.2f} to {sizes['mean'].max():.2f}"
        lines.append(text + ".")
    return lines


Finding = Callable[[Study, dict, Settings], list[str]]
FINDINGS: tuple[Finding, ...] = (
    run_counts,
    contrast_findings,
    mixed_findings,
    bias_findings,
    latency_findings,
    power_findings,
    claim_findings,
    hypothesis_findings,
    dilution_findings,
    compression_findings,
)


def summary_lines(study: Study, results: dict, settings: Settings) -> list[str]:
    """The findings in plain words, in the order of :data:`FINDINGS`.

    Parameters
    ----------
    study : Study
        The loaded study.
    results : dict
        Each section's result by name (:func:`analysis.report.sections.build_sections`).
    settings : Settings
        Reference, metrics, resamples, alpha and seed.
    """
    return [line for finding in FINDINGS for line in finding(study, results, settings)]
