"""Learning curves: metric vs training-set size, power-law fits, and examples needed to reach a target.

The power law ``error(n) = a * n**-b + c`` is fitted by profiling ``b`` over a fine grid: for a fixed
``b`` the model is linear in ``(a, c)``, so least squares is closed-form and every bootstrap replicate
is fitted at once (no iterative optimiser, no starting values, no failed fits).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.design import ok_runs
from analysis.stats.intervals import percentile_interval, resample_indices, seed_summary
from downscalexr.seeding import numpy_rng

B_GRID = np.linspace(0.01, 3.0, 600)  # exponents searched by the profile fit


def learning_curve(
    runs: pd.DataFrame, metric: str = "accuracy", *, n_boot: int = 10000, alpha: float = 0.05, seed: int = 0
) -> pd.DataFrame:
    """Mean ``metric`` per variant and training-set size with its interval over seeds (t / BCa).

    Returns
    -------
    DataFrame
        Columns ``variant, n_train, metric, n_seeds, mean, low, high, method``.
    """
    return seed_summary(runs, metric, by=("variant", "n_train"), n_boot=n_boot, alpha=alpha, seed=seed)


def fit_power_law(n: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares fit of ``error = a * n**-b + c`` for each column of ``error`` (sizes x curves).

    Returns
    -------
    tuple of ndarray
        ``(a, b, c)``, one value per curve.

    Examples
    --------
    >>> n = np.array([100.0, 200, 400, 800, 1600])
    >>> a, b, c = fit_power_law(n, (2.0 * n**-0.5 + 0.1)[:, None])
    >>> round(float(a[0]), 2), round(float(b[0]), 2), round(float(c[0]), 3)
    (2.0, 0.5, 0.1)
    """
    n = np.asarray(n, dtype=float)
    y = np.asarray(error, dtype=float).reshape(n.size, -1)  # (F, K)
    yc = y - y.mean(0, keepdims=True)
    cols = np.arange(y.shape[1])

    def explained(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # b (G, K) -> Sxy^2 / Sxx (the drop in residual sum of squares), Sxy, Sxx for the line in n^-b
        x = n[None, :, None] ** -b[:, None, :]  # (G, F, K)
        xc = x - x.mean(1, keepdims=True)
        sxy, sxx = (xc * yc[None]).sum(1), (xc**2).sum(1)
        return sxy**2 / sxx, sxy, sxx

    b0 = B_GRID[np.argmax(_explained_coarse(n, yc), axis=0)]
    step = B_GRID[1] - B_GRID[0]
    fine = np.clip(b0[None, :] + np.linspace(-step, step, 41)[:, None], B_GRID[0], B_GRID[-1])  # (41, K)
    gain, sxy, sxx = explained(fine)
    best = np.argmax(gain, axis=0)
    b = fine[best, cols]
    a = sxy[best, cols] / sxx[best, cols]
    c = y.mean(0) - a * (n[:, None] ** -b[None, :]).mean(0)
    return a, b, c


def _explained_coarse(n: np.ndarray, yc: np.ndarray) -> np.ndarray:
    """Sxy^2 / Sxx on the shared grid ``B_GRID`` for every centred curve (columns of ``yc``)."""
    x = n[None, :] ** -B_GRID[:, None]  # (G, F)
    xc = x - x.mean(1, keepdims=True)
    return (xc @ yc) ** 2 / (xc**2).sum(1)[:, None]


def _seed_curves(runs: pd.DataFrame, metric: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Error (1 - metric) as (n_train, seeds) per variant over the sizes and seeds every variant shares."""
    ok = ok_runs(runs, [metric])
    wide = ok.pivot_table(index=["variant", "n_train"], columns="seed", values=metric, aggfunc="mean")
    sizes = np.sort(ok["n_train"].unique())
    seeds = wide.columns[~wide.isna().any(axis=0)].to_numpy()
    if sizes.size < 3:
        raise ValueError(f"a power-law fit needs at least 3 training-set sizes, got {sizes.tolist()}")
    curves = {
        v: 1.0 - wide.loc[v].reindex(sizes)[seeds].to_numpy(dtype=float)
        for v in sorted(ok["variant"].unique())
    }
    return curves, sizes.astype(float), seeds


def power_law_fits(
    runs: pd.DataFrame, *, metric: str = "accuracy", n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> pd.DataFrame:
    """Fit ``1 - metric = a * n_train**-b + c`` to each variant's seed-mean curve, bootstrapping seeds.

    Seeds are resampled jointly across variants; each replicate's seed-mean curve is refitted.

    Returns
    -------
    DataFrame
        Columns ``variant, metric, n_seeds, a, a_low, a_high, b, b_low, b_high, c, c_low, c_high``.
    """
    curves, sizes, seeds = _seed_curves(runs, metric)
    idx = resample_indices(seeds.size, n_boot, numpy_rng(seed, "power_law_fits", metric))
    rows = []
    for v, err in curves.items():
        point = fit_power_law(sizes, err.mean(1)[:, None])
        boot = fit_power_law(sizes, err[:, idx].mean(2))  # (F, B) mean curves of the replicates
        row = {"variant": v, "metric": metric, "n_seeds": int(seeds.size)}
        for name, est, reps in zip("abc", point, boot, strict=True):
            low, high = percentile_interval(reps, alpha)
            row.update({name: float(est[0]), f"{name}_low": float(low), f"{name}_high": float(high)})
        rows.append(row)
    return pd.DataFrame(rows)


def _n_needed(a: np.ndarray, b: np.ndarray, c: np.ndarray, target_error: float) -> np.ndarray:
    """Solve ``a n^-b + c = target_error`` for n; inf when the curve never gets there."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n = (a / (target_error - c)) ** (1.0 / b)
    return np.where((target_error > c) & (a > 0), n, np.inf)


def examples_to_target(
    runs: pd.DataFrame,
    target: float,
    *,
    metric: str = "accuracy",
    reference: str = "avgpool",
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Training examples each variant needs to reach ``target`` (e.g. accuracy 0.85), from the power law.

    Returns
    -------
    DataFrame
        Columns ``variant, metric, target, n_needed, low, high, ratio_vs_reference, ratio_low, ratio_high,
        extrapolated``. ``n_needed`` is inf when the fitted curve levels off before the target;
        ``extrapolated`` is True when it lies outside the observed training-set sizes.

    Raises
    ------
    ValueError
        If ``target`` is not in (0, 1) or ``reference`` is not a variant.
    """
    if not 0 < target < 1:
        raise ValueError(f"target must be a metric value in (0, 1), got {target}")
    curves, sizes, seeds = _seed_curves(runs, metric)
    if reference not in curves:
        raise ValueError(f"reference {reference!r} is not a variant; choose from {sorted(curves)}")
    idx = resample_indices(seeds.size, n_boot, numpy_rng(seed, "examples_to_target", metric))
    point, boot = {}, {}
    for v, err in curves.items():
        point[v] = _n_needed(*fit_power_law(sizes, err.mean(1)[:, None]), 1.0 - target)[0]
        boot[v] = _n_needed(*fit_power_law(sizes, err[:, idx].mean(2)), 1.0 - target)
    rows = []
    for v in curves:
        low, high = percentile_interval(boot[v], alpha)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio_boot = boot[v] / boot[reference]
            ratio = point[v] / point[reference]
        # neither curve reaching the target in any replicate leaves the ratio undefined
        defined = np.isfinite(ratio_boot).any()
        r_low, r_high = percentile_interval(ratio_boot, alpha) if defined else (np.nan, np.nan)
        rows.append(
            {
                "variant": v,
                "metric": metric,
                "target": target,
                "n_needed": float(point[v]),
                "low": float(low),
                "high": float(high),
                "ratio_vs_reference": float(ratio),
                "ratio_low": float(r_low),
                "ratio_high": float(r_high),
                "extrapolated": bool(not sizes[0] <= point[v] <= sizes[-1]),
            }
        )
    return pd.DataFrame(rows)
