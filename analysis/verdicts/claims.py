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
from functools import cached_property

import numpy as np
import pandas as pd

from analysis.design import NO_COMPRESSION, POINT_NAMES, at_operating_point, ok_runs, reported_point
from analysis.stats.compression import (
    compression_equivalence,
    compression_latency,
    compression_sizes,
    has_compression,
)
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
    ``variants`` the variants with ok runs. Both hold uncompressed runs only; ``study_runs`` holds every
    run of the study, compressed levels included (the compression claims read it). ``multiclass`` marks
    a study with more than two classes (claims about one positive class are then not testable).
    """

    runs: pd.DataFrame
    all_runs: pd.DataFrame
    latency: pd.DataFrame | None
    reference: str
    n_boot: int
    alpha: float
    seed: int
    margin: float
    study_runs: pd.DataFrame | None = None
    compression_margin: float = 0.02
    multiclass: bool = False

    @property
    def variants(self) -> set[str]:
        return set(self.runs["variant"])

    @property
    def kw(self) -> dict:
        return {"n_boot": self.n_boot, "alpha": self.alpha, "seed": self.seed}

    # The compression statistics several claims share, computed once per evaluation (None: no
    # compressed runs). cached_property writes the instance's __dict__, which a frozen dataclass allows.
    @cached_property
    def compression_runs(self) -> pd.DataFrame | None:
        runs = self.study_runs
        return runs if runs is not None and has_compression(runs) else None

    @cached_property
    def compression_equivalence(self) -> pd.DataFrame:
        runs = self.compression_runs
        return (
            pd.DataFrame()
            if runs is None
            else compression_equivalence(runs, margin=self.compression_margin, **self.kw)
        )

    @cached_property
    def compression_sizes(self) -> pd.DataFrame:
        runs = self.compression_runs
        return pd.DataFrame() if runs is None else compression_sizes(runs, **self.kw)

    @cached_property
    def int8_latency(self) -> pd.DataFrame:
        """Latency ratios of the int8 levels (the only claims about latency; the bootstrap is costly)."""
        runs, latency = self.compression_runs, self.latency
        if runs is None or latency is None or latency.empty:
            return pd.DataFrame()
        level = runs["compression"].fillna(NO_COMPRESSION)
        runs = runs[(level == NO_COMPRESSION) | level.str.startswith("int8")]
        return compression_latency(latency, runs, **self.kw)


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


def _over_predicts(data: ClaimData, point: str) -> dict:
    """Max pooling has a higher FPR and PPR/prevalence than the reference at one operating point."""
    claim = (
        "max pooling over-predicts the positive class (higher FPR, PPR/prevalence above avgpool) "
        f"at {POINT_NAMES[point]}"
    )
    ref = data.reference
    test = f"paired FPR difference maxpool - {ref}, pooled over fractions"
    if ref == "maxpool" or not {"maxpool", ref} <= data.variants:  # the reference may be maxpool itself
        return _untestable(claim, test, f"needs variants maxpool and {ref}, two variants")
    if data.multiclass:
        return _untestable(claim, test, "a claim about one positive class: the study is multi-class")
    runs = at_operating_point(data.runs, point)
    if runs is None:
        return _untestable(
            claim,
            test,
            f"the study stored its threshold metrics at {POINT_NAMES[reported_point(data.runs)]} only",
        )
    runs = runs.assign(ppr_over_prevalence=runs["predicted_positive_rate"] / runs["prevalence"])
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
    return _row(claim, test, fpr["diff"], fpr["low"], fpr["high"], combine_verdicts(parts), detail)


def maxpool_over_predicts_at_fixed(data: ClaimData) -> dict:
    """The published claim at the threshold it was made at: 0.5."""
    return _over_predicts(data, "fixed")


def maxpool_over_predicts_at_chosen(data: ClaimData) -> dict:
    """The same claim at the threshold chosen on validation (a shifted 0.5 can create or hide it)."""
    return _over_predicts(data, "chosen")


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
    try:
        result = fit_mixed(sub, "accuracy", reference=ref, alpha=data.alpha, lrt=False)
    except ValueError as exc:  # e.g. every fraction at the floor: no variation to model
        return _untestable(claim, "variant x fraction interaction", str(exc))
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
    if set(sub["variant"]) != {"strided", "maxpool"}:
        missing = sorted({"strided", "maxpool"} - set(sub["variant"]))
        detail = f"no ok run of {', '.join(missing)} at the smallest fraction {smallest:g}"
        return _untestable(claim, "paired difference at the smallest fraction", detail)
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


COMPRESSION_SOURCE = "single-run chest X-ray pruning / quantization studies (issue 17)"
_NEEDS_LEVELS = "needs compressed runs (factors.compression in the study file, e.g. the compression study)"


def _compression_row(claim: str, test: str, estimate, low, high, verdict: str, detail: str) -> dict:
    return _row(claim, test, estimate, low, high, verdict, detail) | {"source": COMPRESSION_SOURCE}


def pruning_keeps_accuracy(data: ClaimData) -> dict:
    """Every pruning level's accuracy change against its parent lies above -margin, pooled over fractions."""
    claim = "pruning keeps or even improves accuracy"
    test = "paired accuracy change pruned - unpruned (pooled over fractions) above -margin"
    eq = data.compression_equivalence
    pruned = eq[eq["compression"].str.startswith("prune")] if len(eq) else eq
    if pruned.empty:
        return _untestable(claim, test, _NEEDS_LEVELS + " with a pruning level") | {
            "source": COMPRESSION_SOURCE
        }
    verdicts = [
        directional_verdict(r.low, r.high, direction=1, null=-data.compression_margin)
        for r in pruned.itertuples()
    ]
    worst = pruned.loc[pruned["low"].idxmin()]
    changes = "; ".join(f"{r.compression} on {r.arm} {100 * r.estimate:+.1f} pp" for r in pruned.itertuples())
    detail = (
        f"margin {100 * data.compression_margin:g} pp; every level x variant must lie above it; {changes}"
    )
    test += f"; lowest: {worst['compression']} on {worst['arm']}"
    verdict = combine_verdicts(verdicts)
    return _compression_row(claim, test, worst["estimate"], worst["low"], worst["high"], verdict, detail)


def _int8_claim(data: ClaimData, level: str, claim: str) -> dict:
    """Accuracy within the margin, a smaller state dict and lower CPU latency, for every variant."""
    test = f"{level} - fp32 accuracy change within +-margin; size and latency ratios below 1"
    eq = data.compression_equivalence
    eq = eq[eq["compression"] == level] if len(eq) else eq
    if eq.empty:
        return _untestable(claim, test, f"{_NEEDS_LEVELS} with level {level}") | {
            "source": COMPRESSION_SOURCE
        }
    parts = [equivalence_verdict(r.low, r.high, margin=data.compression_margin) for r in eq.itertuples()]
    sizes = data.compression_sizes
    sizes = sizes[(sizes["compression"] == level) & (sizes["measure"] == "size")]
    parts += [directional_verdict(r.low, r.high, direction=-1, null=1.0) for r in sizes.itertuples()]
    detail = (
        f"margin {100 * data.compression_margin:g} pp; "
        f"size ratio {sizes['mean'].min():.2f} to {sizes['mean'].max():.2f}"
    )
    lr = data.int8_latency
    lr = lr[lr["compression"] == level] if len(lr) else lr
    if lr.empty:
        parts.append(UNRESOLVED)
        detail += "; no latency measured"
    else:
        parts += [directional_verdict(np.log(r.low), np.log(r.high), direction=-1) for r in lr.itertuples()]
        slow = lr.loc[lr["ratio"].idxmax()]
        detail += (
            f"; latency ratio {lr['ratio'].min():.2f} to {slow['ratio']:.2f} (slowest: {slow['arm']}, batch "
            f"{slow['batch_size']}, {slow['memory_format']})"
        )
    far = eq.loc[eq["estimate"].abs().idxmax()]
    test += f"; accuracy shown for {far['arm']}"
    return _compression_row(
        claim, test, far["estimate"], far["low"], far["high"], combine_verdicts(parts), detail
    )


def int8_static_keeps_accuracy(data: ClaimData) -> dict:
    """Static int8 keeps accuracy within the margin, shrinks the model and speeds up CPU inference."""
    claim = "int8 (static) keeps accuracy while shrinking the model and speeding up CPU inference"
    return _int8_claim(data, "int8_static", claim)


def int8_dynamic_keeps_accuracy(data: ClaimData) -> dict:
    """Dynamic int8 (linear layers only) keeps accuracy, shrinks the model and speeds up CPU inference."""
    claim = "int8 (dynamic) keeps accuracy while shrinking the model and speeding up CPU inference"
    return _int8_claim(data, "int8_dynamic", claim)


CLAIMS: tuple[Callable[[ClaimData], dict], ...] = (
    maxpool_over_predicts_at_fixed,
    maxpool_over_predicts_at_chosen,
    avgpool_smallest_gap,
    strided_fastest,
    pooling_helps_small_data,
    strided_like_maxpool,
    pruning_keeps_accuracy,
    int8_static_keeps_accuracy,
    int8_dynamic_keeps_accuracy,
)


def _is_multiclass(predictions: pd.DataFrame | None) -> bool:
    """More than two classes scored per example (binary studies store one score per example)."""
    return predictions is not None and not predictions.empty and predictions["class_index"].nunique() > 2


def evaluate_claims(
    tables: dict[str, pd.DataFrame],
    *,
    reference: str = "avgpool",
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
    margin: float = 0.01,
    compression_margin: float | None = None,
) -> pd.DataFrame:
    """Test each claim of :data:`CLAIMS` and give a verdict.

    Parameters
    ----------
    tables : dict of DataFrame
        ``runs`` (required) and ``latency`` (optional) tables of a study, and optionally ``study_runs``:
        every run with the compressed levels (default: ``runs``). The claims of single-run studies of
        operators read the uncompressed runs of ``runs`` only.
    reference : str
        The average-pooling baseline named in the claims.
    n_boot, alpha, seed
        Bootstrap resamples, 1 - confidence level and the seed of every random draw.
    margin : float
        Equivalence margin (metric scale) for "behaves like": the interval must lie within +-margin.
    compression_margin : float, optional
        Accuracy margin of the pruning and int8 claims (default ``margin``); the report passes its
        ``--margin``, so these claims and the Compression section's equivalence table agree.

    Returns
    -------
    DataFrame
        Columns ``claim, source, test, estimate, low, high, verdict, detail``; one row per claim.
    """
    runs = tables["runs"]
    if "compression" in runs:
        runs = runs[runs["compression"].fillna(NO_COMPRESSION) == NO_COMPRESSION]
    data = ClaimData(
        runs=ok_runs(runs, ["accuracy"]),
        all_runs=runs,
        latency=tables.get("latency"),
        reference=reference,
        n_boot=n_boot,
        alpha=alpha,
        seed=seed,
        margin=margin,
        study_runs=tables.get("study_runs", tables["runs"]),
        compression_margin=margin if compression_margin is None else compression_margin,
        multiclass=_is_multiclass(tables.get("predictions")),
    )
    return pd.DataFrame([claim(data) for claim in CLAIMS], columns=COLUMNS)
