"""The claims of published single-run studies, each tested against the multi-seed data with a verdict.

Each claim is one small function in :data:`CLAIMS`, taking the :class:`ClaimData` of a study and
returning one row: the test statistic with its interval and a verdict in the vocabulary of
:mod:`analysis.verdicts.rules` (an interval on the claimed side supports a claim; one on the other side
reverses it; an equivalence claim is contradicted when a difference is shown). A claim the study cannot
test (a variant or table is missing) is *not resolved*, with the reason in ``detail``.
To add a claim, write its function and append it to :data:`CLAIMS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.design import ok_runs
from analysis.stats.contrasts import paired_contrasts
from analysis.stats.latency import latency_ratios
from analysis.stats.mixed import fit_mixed
from analysis.verdicts.rules import UNRESOLVED, combine_verdicts, directional_verdict, equivalence_verdict

SOURCE = "single-run study (issue 4)"
COLUMNS = ["claim", "source", "test", "estimate", "low", "high", "verdict", "detail"]


@dataclass(frozen=True)
class ClaimData:
    """What every claim function sees: the study's tables and the analysis settings.

    ``runs`` holds the ok runs only; ``all_runs`` every run (the latency table is joined to it);
    ``variants`` the variants with ok runs.
    """

    runs: pd.DataFrame
    all_runs: pd.DataFrame
    latency: pd.DataFrame | None
    reference: str
    n_boot: int
    alpha: float
    seed: int
    margin: float

    @property
    def variants(self) -> set[str]:
        return set(self.runs["variant"])

    @property
    def kw(self) -> dict:
        return {"n_boot": self.n_boot, "alpha": self.alpha, "seed": self.seed}


def _row(claim: str, test: str, estimate: float, low: float, high: float, verdict: str, detail: str) -> dict:
    return {
        "claim": claim,
        "source": SOURCE,
        "test": test,
        "estimate": float(estimate),
        "low": float(low),
        "high": float(high),
        "verdict": verdict,
        "detail": detail,
    }


def _untestable(claim: str, test: str, detail: str) -> dict:
    return _row(claim, test, np.nan, np.nan, np.nan, UNRESOLVED, detail)


def maxpool_over_predicts(data: ClaimData) -> dict:
    """Max pooling has a higher FPR and PPR/prevalence than the reference, pooled over fractions."""
    claim = "max pooling over-predicts the positive class (higher FPR, PPR/prevalence above avgpool)"
    ref = data.reference
    if ref == "maxpool" or not {"maxpool", ref} <= data.variants:  # the reference may be maxpool itself
        return _untestable(claim, "paired FPR difference", f"needs variants maxpool and {ref}, two variants")
    runs = data.runs.assign(
        ppr_over_prevalence=data.runs["predicted_positive_rate"] / data.runs["prevalence"]
    )
    pair = runs[runs["variant"].isin(["maxpool", ref])]
    c = paired_contrasts(pair, ["fpr", "ppr_over_prevalence"], reference=ref, **data.kw)
    pooled = c[c["data_fraction"].isna() | (c.groupby("metric")["metric"].transform("size") == 1)]
    pooled = pooled.set_index("metric")
    parts = [
        directional_verdict(pooled.loc[m, "low"], pooled.loc[m, "high"])
        for m in ("fpr", "ppr_over_prevalence")
    ]
    fpr = pooled.loc["fpr"]
    detail = "PPR/prevalence difference {:.3f} [{:.3f}, {:.3f}]".format(
        *pooled.loc["ppr_over_prevalence", ["diff", "low", "high"]]
    )
    test = f"paired FPR difference maxpool - {ref}, pooled over fractions"
    return _row(claim, test, fpr["diff"], fpr["low"], fpr["high"], combine_verdicts(parts), detail)


def avgpool_smallest_gap(data: ClaimData) -> dict:
    """Every other variant's generalization gap exceeds the reference's (pooled over fractions)."""
    claim = "average pooling has the smallest generalization gap"
    ref = data.reference
    others = sorted(data.variants - {ref})
    if ref not in data.variants or not others or not data.runs["train_accuracy"].notna().any():
        return _untestable(claim, "paired gap difference", "needs train_accuracy and at least two variants")
    runs = data.runs.assign(generalization_gap=data.runs["train_accuracy"] - data.runs["accuracy"])
    c = paired_contrasts(runs, "generalization_gap", reference=ref, **data.kw)
    pooled = c[c["data_fraction"].isna()] if c["data_fraction"].isna().any() else c
    per_variant = pooled.groupby("variant").first()
    worst = per_variant["diff"].idxmin()  # the variant closest to (or below) the reference's gap
    verdict = combine_verdicts(directional_verdict(r.low, r.high) for r in per_variant.itertuples())
    best = per_variant.loc[worst]
    return _row(
        claim,
        f"paired gap difference (variant - {ref}); smallest is {worst}",
        best["diff"],
        best["low"],
        best["high"],
        verdict,
        f"every other variant's gap must exceed {ref}'s; compared {', '.join(others)}",
    )


def strided_fastest(data: ClaimData) -> dict:
    """Every other variant's median latency exceeds strided convolution's (ratio > 1, log scale)."""
    claim = "strided convolution has the lowest CPU latency"
    latency = data.latency
    if "strided" not in data.variants or len(data.variants) < 2 or latency is None or latency.empty:
        return _untestable(claim, "latency ratio", "needs the strided variant and a latency table")
    ratios = latency_ratios(latency, data.all_runs, reference="strided", **data.kw)
    ratios = ratios[ratios["variant"] != "strided"]
    if ratios.empty:
        return _untestable(claim, "latency ratio", "no latency rows for the other variants")
    closest = ratios.loc[ratios["low"].idxmin()]
    verdict = combine_verdicts(
        directional_verdict(np.log(r.low), np.log(r.high)) for r in ratios.itertuples()
    )
    detail = (
        f"closest: {closest['variant']} at batch size {closest['batch_size']}; "
        f"{len(ratios)} comparisons must all exceed 1"
    )
    if ratios["adjusted"].all():
        detail += "; speed-adjusted"
    test = "ratio of median latency, other variant / strided (log scale)"
    return _row(claim, test, closest["ratio"], closest["low"], closest["high"], verdict, detail)


def pooling_helps_small_data(data: ClaimData) -> dict:
    """The reference's advantage over strided convolution shrinks with data (negative interaction)."""
    claim = "pooling helps most at small data fractions (negative pooling x fraction interaction)"
    ref = data.reference
    if ref == "strided" or not {"strided", ref} <= data.variants or data.runs["data_fraction"].nunique() < 2:
        return _untestable(
            claim, "variant x fraction interaction", "needs strided, the reference, 2+ fractions"
        )
    sub = data.runs[data.runs["variant"].isin(["strided", ref])]
    result = fit_mixed(sub, "accuracy", reference=ref, alpha=data.alpha, lrt=False)
    coef = result.coefficients.set_index("term").loc["variant[strided]:log2_fraction"]
    # pooling - strided interaction is the negative of the strided - pooling coefficient
    est, low, high = -coef["estimate"], -coef["high"], -coef["low"]
    detail = "mixed model, accuracy in pp per doubling of data"
    if result.warnings:
        detail += f"; warnings: {'; '.join(result.warnings)}"
    test = f"{ref} - strided accuracy x log2(fraction) (Wald)"
    return _row(claim, test, est, low, high, directional_verdict(low, high, direction=-1), detail)


def strided_like_maxpool(data: ClaimData) -> dict:
    """Strided convolution and max pooling are equivalent in accuracy and FPR at the smallest fraction."""
    claim = "strided convolution behaves like max pooling under limited data"
    if not {"strided", "maxpool"} <= data.variants:
        return _untestable(claim, "paired difference at the smallest fraction", "needs strided and maxpool")
    smallest = data.runs["data_fraction"].min()
    runs = data.runs
    sub = runs[(runs["data_fraction"] == smallest) & runs["variant"].isin(["strided", "maxpool"])]
    c = paired_contrasts(sub, ["accuracy", "fpr"], reference="maxpool", **data.kw).set_index("metric")
    parts = [
        equivalence_verdict(c.loc[m, "low"], c.loc[m, "high"], margin=data.margin)
        for m in ("accuracy", "fpr")
    ]
    acc, fpr = c.loc["accuracy"], c.loc["fpr"]
    detail = (
        f"equivalence margin +-{data.margin:g} on accuracy and FPR; FPR difference "
        f"{fpr['diff']:.3f} [{fpr['low']:.3f}, {fpr['high']:.3f}]"
    )
    test = f"paired accuracy difference strided - maxpool at fraction {smallest:g}"
    return _row(claim, test, acc["diff"], acc["low"], acc["high"], combine_verdicts(parts), detail)


CLAIMS: tuple[Callable[[ClaimData], dict], ...] = (
    maxpool_over_predicts,
    avgpool_smallest_gap,
    strided_fastest,
    pooling_helps_small_data,
    strided_like_maxpool,
)


def evaluate_claims(
    tables: dict[str, pd.DataFrame],
    *,
    reference: str = "avgpool",
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
    margin: float = 0.01,
) -> pd.DataFrame:
    """Test each claim of :data:`CLAIMS` and give a verdict.

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
    data = ClaimData(
        runs=ok_runs(tables["runs"], ["accuracy"]),
        all_runs=tables["runs"],
        latency=tables.get("latency"),
        reference=reference,
        n_boot=n_boot,
        alpha=alpha,
        seed=seed,
        margin=margin,
    )
    return pd.DataFrame([claim(data) for claim in CLAIMS], columns=COLUMNS)
