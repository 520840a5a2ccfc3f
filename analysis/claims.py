"""The claims of published single-run studies, each tested against the multi-seed data with a verdict.

A claim is *supported* when the interval of its test statistic lies entirely on the claimed side of the
null value, *contradicted* when it lies entirely on the other side (or, for an equivalence claim,
when the difference is shown), and *not resolved at this seed count* otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.design import ok_runs
from analysis.stats.contrasts import paired_contrasts
from analysis.stats.latency import latency_ratios
from analysis.stats.mixed import fit_mixed

SUPPORTED, CONTRADICTED, UNRESOLVED = "supported", "contradicted", "not resolved at this seed count"
SOURCE = "single-run study (issue 4)"
COLUMNS = ["claim", "source", "test", "estimate", "low", "high", "verdict", "detail"]


def _verdict(low: float, high: float, null: float = 0.0, direction: int = 1) -> str:
    """Verdict for a claim that the quantity is above (direction 1) or below (-1) ``null``."""
    if np.isnan(low) or np.isnan(high):
        return UNRESOLVED
    if (direction > 0 and low > null) or (direction < 0 and high < null):
        return SUPPORTED
    if (direction > 0 and high < null) or (direction < 0 and low > null):
        return CONTRADICTED
    return UNRESOLVED


def _combine(verdicts: list[str]) -> str:
    """All parts supported -> supported; any part contradicted -> contradicted; else unresolved."""
    if verdicts and all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return CONTRADICTED if CONTRADICTED in verdicts else UNRESOLVED


def _row(claim: str, test: str, estimate: float, low: float, high: float, verdict: str, detail: str) -> dict:
    return {"claim": claim, "source": SOURCE, "test": test, "estimate": float(estimate), "low": float(low),
            "high": float(high), "verdict": verdict, "detail": detail}  # fmt: skip


def _missing(claim: str, test: str, detail: str) -> dict:
    return _row(claim, test, np.nan, np.nan, np.nan, UNRESOLVED, detail)


def evaluate_claims(
    tables: dict[str, pd.DataFrame],
    *,
    reference: str = "avgpool",
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
    margin: float = 0.01,
) -> pd.DataFrame:
    """Test each published claim and give a verdict.

    Parameters
    ----------
    tables : dict of DataFrame
        ``runs`` (required) and ``latency`` (optional) tables of a study.
    reference : str
        The average-pooling baseline named in the claims.
    n_boot, alpha, seed
        Bootstrap resamples, 1 - confidence level and the seed of every random draw.
    margin : float
        Equivalence margin (metric scale) for "behaves like": the interval must lie within +-margin.

    Returns
    -------
    DataFrame
        Columns ``claim, source, test, estimate, low, high, verdict, detail``; one row per claim.
    """
    runs = ok_runs(tables["runs"], ["accuracy"]).copy()
    variants = set(runs["variant"])
    kw = {"n_boot": n_boot, "alpha": alpha, "seed": seed}
    rows = []

    claim = "max pooling over-predicts the positive class (higher FPR, PPR/prevalence above avgpool)"
    if {"maxpool", reference} <= variants:
        runs["ppr_over_prevalence"] = runs["predicted_positive_rate"] / runs["prevalence"]
        pair = runs[runs["variant"].isin(["maxpool", reference])]
        c = paired_contrasts(pair, ["fpr", "ppr_over_prevalence"], reference=reference, **kw)
        pooled = c[c["data_fraction"].isna() | (c.groupby("metric")["metric"].transform("size") == 1)]
        pooled = pooled.set_index("metric")
        parts = [
            _verdict(pooled.loc[m, "low"], pooled.loc[m, "high"]) for m in ("fpr", "ppr_over_prevalence")
        ]
        fpr = pooled.loc["fpr"]
        detail = "PPR/prevalence difference {:.3f} [{:.3f}, {:.3f}]".format(
            *pooled.loc["ppr_over_prevalence", ["diff", "low", "high"]]
        )
        rows.append(_row(claim, "paired FPR difference maxpool - avgpool, pooled over fractions", fpr["diff"],
                         fpr["low"], fpr["high"], _combine(parts), detail))  # fmt: skip
    else:
        rows.append(_missing(claim, "paired FPR difference", f"needs variants maxpool and {reference}"))

    claim = "average pooling has the smallest generalization gap"
    others = sorted(variants - {reference})
    if reference in variants and others and runs["train_accuracy"].notna().any():
        runs["generalization_gap"] = runs["train_accuracy"] - runs["accuracy"]
        c = paired_contrasts(runs, "generalization_gap", reference=reference, **kw)
        pooled = c[c["data_fraction"].isna()] if c["data_fraction"].isna().any() else c
        per_variant = pooled.groupby("variant").first()
        worst = per_variant["diff"].idxmin()  # the variant closest to (or below) avgpool's gap
        verdicts = [_verdict(r.low, r.high) for r in per_variant.itertuples()]
        rows.append(_row(claim, f"paired gap difference (variant - {reference}); smallest is {worst}",
                         per_variant.loc[worst, "diff"], per_variant.loc[worst, "low"],
                         per_variant.loc[worst, "high"], _combine(verdicts),
                         f"every other variant's gap must exceed {reference}'s; compared "
                         f"{', '.join(others)}"))  # fmt: skip
    else:
        rows.append(
            _missing(claim, "paired gap difference", "needs train_accuracy and at least two variants")
        )

    claim = "strided convolution has the lowest CPU latency"
    latency = tables.get("latency")
    if "strided" in variants and len(variants) > 1 and latency is not None and not latency.empty:
        ratios = latency_ratios(latency, tables["runs"], reference="strided", **kw)
        ratios = ratios[ratios["variant"] != "strided"]
        if ratios.empty:
            rows.append(_missing(claim, "latency ratio", "no latency rows for the other variants"))
        else:
            closest = ratios.loc[ratios["low"].idxmin()]
            verdicts = [_verdict(np.log(r.low), np.log(r.high)) for r in ratios.itertuples()]
            rows.append(_row(claim, "ratio of median latency, other variant / strided (log scale)",
                             closest["ratio"], closest["low"], closest["high"], _combine(verdicts),
                             f"closest: {closest['variant']} at batch size {closest['batch_size']}; "
                             f"{len(ratios)} comparisons must all exceed 1"
                             + ("; speed-adjusted" if ratios["adjusted"].all() else "")))  # fmt: skip
    else:
        rows.append(_missing(claim, "latency ratio", "needs the strided variant and a latency table"))

    claim = "pooling helps most at small data fractions (negative pooling x fraction interaction)"
    if {"strided", reference} <= variants and runs["data_fraction"].nunique() > 1:
        sub = runs[runs["variant"].isin(["strided", reference])]
        result = fit_mixed(sub, "accuracy", reference=reference, alpha=alpha, lrt=False)
        coef = result.coefficients.set_index("term").loc["variant[strided]:log2_fraction"]
        # pooling - strided interaction is the negative of the strided - pooling coefficient
        est, low, high = -coef["estimate"], -coef["high"], -coef["low"]
        detail = "mixed model, accuracy in pp per doubling of data" + (
            f"; warnings: {'; '.join(result.warnings)}" if result.warnings else ""
        )
        rows.append(_row(claim, f"{reference} - strided accuracy x log2(fraction) (Wald)", est, low, high,
                         _verdict(low, high, direction=-1), detail))  # fmt: skip
    else:
        rows.append(
            _missing(claim, "variant x fraction interaction", "needs strided, the reference, 2+ fractions")
        )

    claim = "strided convolution behaves like max pooling under limited data"
    if {"strided", "maxpool"} <= variants:
        smallest = runs["data_fraction"].min()
        sub = runs[(runs["data_fraction"] == smallest) & runs["variant"].isin(["strided", "maxpool"])]
        c = paired_contrasts(sub, ["accuracy", "fpr"], reference="maxpool", **kw).set_index("metric")
        parts = []
        for m in ("accuracy", "fpr"):
            low, high = c.loc[m, "low"], c.loc[m, "high"]
            if np.isnan(low):
                parts.append(UNRESOLVED)
            elif -margin <= low and high <= margin:
                parts.append(SUPPORTED)
            elif low > 0 or high < 0:
                parts.append(CONTRADICTED)
            else:
                parts.append(UNRESOLVED)
        acc = c.loc["accuracy"]
        rows.append(_row(claim, f"paired accuracy difference strided - maxpool at fraction {smallest:g}",
                         acc["diff"], acc["low"], acc["high"], _combine(parts),
                         f"equivalence margin +-{margin:g} on accuracy and FPR; FPR difference "
                         f"{c.loc['fpr', 'diff']:.3f} [{c.loc['fpr', 'low']:.3f}, "
                         f"{c.loc['fpr', 'high']:.3f}]"))  # fmt: skip
    else:
        rows.append(
            _missing(claim, "paired difference at the smallest fraction", "needs strided and maxpool")
        )
    return pd.DataFrame(rows, columns=COLUMNS)
