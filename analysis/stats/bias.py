"""False-positive / false-negative bias: measures with intervals, contrasts, and paired McNemar tests.

A variant is said to *over-call* (predict the positive class too often) only when an interval says so:
the interval of its difference to the reference in predicted-positive rate / prevalence, or in
false-positive rate, lies entirely above zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.design import ok_runs
from analysis.stats.contrasts import paired_contrasts
from analysis.stats.hierarchical import prediction_matrix
from analysis.stats.hypothesis_tests import mcnemar
from analysis.stats.intervals import seed_summary

BIAS_MEASURES = ("fpr", "fnr", "ppr_over_prevalence", "criterion_c", "dprime")
BIAS_COLUMNS = [
    "variant",
    "data_fraction",
    "measure",
    "mean",
    "low",
    "high",
    "diff_vs_reference",
    "diff_low",
    "diff_high",
    "over_calls",
]
MCNEMAR_COLUMNS = [
    "variant",
    "reference",
    "data_fraction",
    "seed",
    "b",
    "c",
    "statistic",
    "p_value",
    "method",
]


def mcnemar_tests(
    predictions: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    reference: str = "avgpool",
    threshold: float | None = 0.5,
) -> pd.DataFrame:
    """Per-example McNemar test of each variant against the reference on the same seed and fraction.

    ``b`` counts test examples the reference classifies correctly and the variant does not; ``c`` the
    reverse. ``threshold`` None uses each run's own threshold column.

    Returns
    -------
    DataFrame
        Columns ``variant, reference, data_fraction, seed, b, c, statistic, p_value, method``.

    Raises
    ------
    ValueError
        If ``reference`` has no runs with predictions.
    """
    meta, labels, predicted = prediction_matrix(predictions, runs, threshold)
    correct = predicted == labels[None, :]  # (R, N)
    variants = sorted(meta["variant"].unique())
    if reference not in variants:
        raise ValueError(f"reference {reference!r} has no runs with predictions; choose from {variants}")
    position = {(r.variant, r.data_fraction, r.seed): i for i, r in enumerate(meta.itertuples())}
    rows = []
    for (variant, fraction, seed_value), i in sorted(position.items()):
        j = position.get((reference, fraction, seed_value))
        if variant == reference or j is None:
            continue
        b = int(np.sum(correct[j] & ~correct[i]))
        c = int(np.sum(~correct[j] & correct[i]))
        statistic, p, method = mcnemar(b, c)
        rows.append(
            {
                "variant": variant,
                "reference": reference,
                "data_fraction": float(fraction),
                "seed": int(seed_value),
                "b": b,
                "c": c,
                "statistic": statistic,
                "p_value": p,
                "method": method,
            }
        )
    return pd.DataFrame(rows, columns=MCNEMAR_COLUMNS)


def bias_summary(
    runs: pd.DataFrame,
    *,
    reference: str = "avgpool",
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """FPR, FNR, predicted-positive rate / prevalence, criterion c and d' per variant and fraction.

    Levels use :func:`analysis.stats.intervals.seed_summary`; differences to the reference use
    :func:`analysis.stats.contrasts.paired_contrasts` (seeds resampled jointly). Rows with ``data_fraction``
    NaN pool the fractions (mean over fractions within a seed).

    Returns
    -------
    DataFrame
        Columns ``variant, data_fraction, measure, mean, low, high, diff_vs_reference, diff_low,
        diff_high, over_calls``. ``over_calls`` is True for every measure row of a variant and fraction
        whose ppr/prevalence or FPR difference interval lies entirely above 0.
    """
    ok = ok_runs(
        runs, ["fpr", "fnr", "predicted_positive_rate", "prevalence", "criterion_c", "dprime"]
    ).copy()
    ok["ppr_over_prevalence"] = ok["predicted_positive_rate"] / ok["prevalence"]
    levels = pd.concat([seed_summary(ok, m, n_boot=n_boot, alpha=alpha, seed=seed) for m in BIAS_MEASURES])
    pooled_input = ok.groupby(["variant", "seed"], as_index=False)[list(BIAS_MEASURES)].mean()
    pooled_input["data_fraction"] = np.nan
    pooled = pd.concat(
        [
            seed_summary(pooled_input, m, by=("variant",), n_boot=n_boot, alpha=alpha, seed=seed)
            for m in BIAS_MEASURES
        ]
    )
    pooled["data_fraction"] = np.nan
    levels = pd.concat([levels, pooled], ignore_index=True).rename(columns={"metric": "measure"})
    diffs = paired_contrasts(
        ok, list(BIAS_MEASURES), reference=reference, n_boot=n_boot, alpha=alpha, seed=seed
    )
    diffs = diffs.rename(
        columns={"metric": "measure", "diff": "diff_vs_reference", "low": "diff_low", "high": "diff_high"}
    )
    keys = ["variant", "data_fraction", "measure"]
    out = levels.merge(diffs[[*keys, "diff_vs_reference", "diff_low", "diff_high"]], on=keys, how="left")
    ref_rows = out["variant"] == reference
    out.loc[ref_rows, ["diff_vs_reference", "diff_low", "diff_high"]] = 0.0
    flag = out[out["measure"].isin(["ppr_over_prevalence", "fpr"])].assign(up=lambda d: d["diff_low"] > 0)
    flag = (
        flag.groupby(["variant", "data_fraction"], dropna=False)["up"]
        .any()
        .rename("over_calls")
        .reset_index()
    )
    out = out.merge(flag, on=["variant", "data_fraction"], how="left")
    out.loc[ref_rows.to_numpy(), "over_calls"] = False
    out["over_calls"] = out["over_calls"].fillna(False).astype(bool)
    return out[BIAS_COLUMNS].sort_values(
        ["measure", "variant", "data_fraction"], na_position="last", ignore_index=True
    )
