"""Dilution: is the operator effect smaller in a residual model than in the LeNet?

For a variant ``v`` against the reference ``r``, the operator effect in model ``m`` on a seed is
``d_m = metric(m, v) - metric(m, r)``. Runs of one seed share their data subset and batch order across
models and variants, so four cells of a seed give one paired value of

* the **change** ``dR - dL`` (residual model minus LeNet: the interaction model x operator), and
* the **sum** ``dR + dL``;

``|dR| < |dL|`` exactly when the two have opposite signs (:mod:`analysis.verdicts.dilution`). Each is a
per-seed contrast with its interval and paired test
(:func:`analysis.stats.contrasts.contrast_test`: the one interval engine, the paired t-test), per data
fraction and pooled over fractions (each seed's mean over the fractions it has in all four cells).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.design import MLP_MODEL, at_base_levels
from analysis.stats.contrasts import contrast_test
from analysis.stats.hypothesis_tests import holm

BASE_MODEL = "lenet"
DILUTION_COLUMNS = [
    "metric",
    "model",
    "base_model",
    "variant",
    "reference",
    "data_fraction",
    "n_seeds",
    "effect_base",
    "effect_base_low",
    "effect_base_high",
    "effect_model",
    "effect_model_low",
    "effect_model_high",
    "magnitude_change",
    "change",
    "change_low",
    "change_high",
    "change_low_eq",
    "change_high_eq",
    "p_change",
    "sum",
    "sum_low",
    "sum_high",
    "p_sum",
    "p_value",
    "p_holm",
    "method",
]


def residual_models(runs: pd.DataFrame, base_model: str = BASE_MODEL) -> list[str]:
    """The CNN models of ``runs`` other than ``base_model`` (and the MLP), sorted."""
    models = set(runs.loc[runs["status"] == "ok", "model"].astype(str))
    return sorted(models - {base_model, MLP_MODEL})


def paired_effects(
    frame: pd.DataFrame, metric: str, model: str, base_model: str, variant: str, reference: str
) -> pd.DataFrame:
    """Per seed x data fraction: the operator effect in the base model (``dL``) and in ``model`` (``dR``).

    Only (seed, fraction) pairs with all four cells are kept, so every contrast of a dilution row uses
    the same seeds; a cell run twice on a seed (another factor level) is averaged.
    """
    wide = frame.pivot_table(
        index=["seed", "data_fraction"], columns=["model", "variant"], values=metric, aggfunc="mean"
    )
    cells = [(base_model, variant), (base_model, reference), (model, variant), (model, reference)]
    if any(c not in wide.columns for c in cells):
        return pd.DataFrame(columns=["dL", "dR"], dtype=float)
    out = pd.DataFrame(
        {"dL": wide[cells[0]] - wide[cells[1]], "dR": wide[cells[2]] - wide[cells[3]]}, index=wide.index
    )
    return out.dropna()


def dilution_row(effects: pd.DataFrame, *, n_boot: int, alpha: float, rng_key: tuple) -> dict:
    """The effects, change, sum and intersection-union p-value of one row of the family.

    Parameters
    ----------
    effects : DataFrame
        The row's per-seed ``dL`` and ``dR`` (one row per seed, :func:`paired_effects`).
    n_boot, alpha
        Bootstrap resamples (from 10 seeds on) and 1 - confidence level.
    rng_key : tuple
        ``(seed, *names)`` of the row's random streams.

    Returns
    -------
    dict
        The statistics columns of :data:`DILUTION_COLUMNS` (all but the key columns and ``p_holm``).
    """
    parts = {
        "effect_base": ("estimate", effects["dL"]),
        "effect_model": ("estimate", effects["dR"]),
        "change": ("difference", effects["dR"] - effects["dL"]),
        "sum": ("difference", effects["dR"] + effects["dL"]),
    }
    out = {}
    for name, (kind, values) in parts.items():
        # margin is read by equivalence tests only; these are differences and estimates
        res = contrast_test(values, kind, margin=0.0, alpha=alpha, n_boot=n_boot, rng_key=(*rng_key, name))
        out |= {name: res["estimate"], f"{name}_low": res["low"], f"{name}_high": res["high"]}
        if name == "change":
            out |= {"n_seeds": res["n_seeds"], "method": res["method"], "p_change": res["p_value"]}
            out |= {"change_low_eq": res["low_eq"], "change_high_eq": res["high_eq"]}
        if name == "sum":
            out["p_sum"] = res["p_value"]
    out["magnitude_change"] = abs(out["effect_model"]) - abs(out["effect_base"])
    out["p_value"] = intersection_union_p(out["change"], out["p_change"], out["sum"], out["p_sum"])
    return out


def intersection_union_p(change: float, p_change: float, total: float, p_total: float) -> float:
    """p-value of "change and sum differ from 0 with opposite signs": the larger p, or 1 if same sign.

    Examples
    --------
    >>> intersection_union_p(-0.03, 0.01, 0.05, 0.002), intersection_union_p(0.03, 0.01, 0.05, 0.002)
    (0.01, 1.0)
    """
    if np.isnan(p_change) or np.isnan(p_total):
        return np.nan
    if np.sign(change) * np.sign(total) >= 0:
        return 1.0
    return float(max(p_change, p_total))


def dilution_contrasts(
    runs: pd.DataFrame,
    *,
    metric: str = "accuracy",
    reference: str = "avgpool",
    base_model: str = BASE_MODEL,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """The dilution family: every residual model x variant, per data fraction and pooled over them.

    Parameters
    ----------
    runs : DataFrame
        The ``runs`` table; ok runs at the base level of every factor are used.
    metric : str
        The runs column compared.
    reference : str
        The variant every operator effect is measured against.
    base_model : str
        The model the residual models are compared with.
    n_boot, alpha, seed
        Bootstrap resamples (from 10 seeds on), 1 - confidence level, seed of every draw.

    Returns
    -------
    DataFrame
        Columns :data:`DILUTION_COLUMNS`: the operator effect in the base model (``effect_base``) and
        the residual one (``effect_model``) with intervals, ``magnitude_change`` = ``|effect_model| -
        |effect_base|`` (the point estimate of the hypothesis), the ``change`` ``dR - dL`` with its
        (1 - alpha) and (1 - 2 alpha) (``_eq``) intervals and paired t-test, the ``sum`` ``dR + dL`` with
        interval and test, ``p_value`` of the intersection-union test (both shown with opposite signs)
        and ``p_holm`` across every row. ``data_fraction`` is NaN for rows pooled over fractions. Empty
        when the study lacks the base model, a residual model or the reference in both.
    """
    rows_in = at_base_levels(runs)
    ok = rows_in[rows_in["status"] == "ok"]
    if metric not in ok.columns or not pd.api.types.is_numeric_dtype(ok[metric]):
        raise ValueError(f"metric {metric!r} is not a numeric column of runs")
    ok = ok[ok[metric].notna()]
    rows = []
    for model in residual_models(ok, base_model):
        both = ok[ok["model"].isin([model, base_model])]
        variants = sorted(set(both["variant"].astype(str)) - {reference})
        for v in variants:
            effects = paired_effects(both, metric, model, base_model, v, reference)
            if effects.empty:
                continue
            fractions = effects.index.get_level_values("data_fraction")
            scopes = [(float(f), effects.xs(f, level="data_fraction")) for f in sorted(set(fractions))]
            if len(scopes) > 1:  # pooled: each seed's mean over the fractions it has
                scopes.append((np.nan, effects.groupby(level="seed").mean()))
            for fraction, per_seed in scopes:
                key = {"metric": metric, "model": model, "base_model": base_model, "variant": v}
                key |= {"reference": reference, "data_fraction": fraction}
                rng_key = (seed, "dilution", metric, model, v, fraction)
                rows.append(key | dilution_row(per_seed, n_boot=n_boot, alpha=alpha, rng_key=rng_key))
    out = pd.DataFrame(rows, columns=DILUTION_COLUMNS)
    out["p_holm"] = holm(out["p_value"].to_numpy(dtype=float))
    return out
