"""Grad-CAM outcomes per variant: localisation and deletion-curve faithfulness, contrasts, mean maps.

The runner explains a fixed subset of test images in every run (the same ``example_id`` in every seed
and variant) and stores, per run x image, the ``saliency`` table (``localisation``: share of the map's
mass inside the ground-truth mask, NaN without one; ``mask_fraction``: its chance level, the share of
the image inside the mask; ``deletion_area``: area under the deletion curve, lower = more faithful) and
the ``saliency_maps`` table (each map on a coarse grid, with the mask's share per grid cell).

* :func:`saliency_outcomes`: per ok run, the mean of each outcome over its explained images.
* :func:`saliency_summary`: per group (variant x data fraction), each outcome's mean over seeds with
  the one interval engine; ``localisation_gain`` = localisation - mask_fraction (above chance).
* :func:`saliency_contrasts`: each outcome, variant - reference within each model, paired by seed
  (:func:`analysis.stats.contrasts.paired_contrasts`), Holm across every row.
* :func:`mean_maps`: per group, image and grid cell, the mean map over seeds with a pointwise t band
  (:func:`analysis.stats.intervals.t_band`), and the mask.

The images are the same in every run, so a run's mean over them is paired across variants and seeds;
the intervals are over seeds (the image sample is fixed, as the test set is).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.design import ok_runs
from analysis.stats.contrasts import paired_contrasts
from analysis.stats.hypothesis_tests import holm
from analysis.stats.intervals import INTERVAL_COLUMNS, resample_indices, seed_intervals, t_band
from downscalexr.seeding import numpy_rng

BY = ("variant", "data_fraction")
OUTCOMES = ("localisation", "localisation_gain", "deletion_area")
# the direction in which each outcome is better (for the report's words)
BETTER = {"localisation": "higher", "localisation_gain": "higher", "deletion_area": "lower"}


def saliency_outcomes(saliency: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per ok run with saliency rows: the mean of each outcome over its explained images.

    Images whose localisation is undefined (no mask, an empty mask, a map without mass) are left out of
    ``localisation`` and ``localisation_gain`` (the gain is taken per image, against that image's
    ``mask_fraction``); ``n_images`` counts the images, ``n_localised`` those with a localisation.

    Returns
    -------
    DataFrame
        The ok runs' rows of ``runs`` (sorted by ``run_id``) with ``n_images, n_localised`` and
        :data:`OUTCOMES` added.
    """
    ok = ok_runs(runs)
    rows = saliency[saliency["run_id"].isin(ok["run_id"])]
    if rows.empty:
        raise ValueError("no saliency rows of ok runs: enable `saliency` in the study and rerun the grid")
    gain = rows["localisation"] - rows["mask_fraction"]
    per_image = pd.DataFrame(
        {
            "run_id": rows["run_id"].astype(str).to_numpy(),
            "localisation": rows["localisation"].to_numpy(dtype=float),
            "localisation_gain": gain.to_numpy(dtype=float),
            "deletion_area": rows["deletion_area"].to_numpy(dtype=float),
        }
    )
    grouped = per_image.groupby("run_id", sort=True)
    per_run = grouped[list(OUTCOMES)].mean()  # NaN images are skipped
    per_run["n_images"] = grouped.size()
    per_run["n_localised"] = grouped["localisation"].count()
    meta = ok.assign(run_id=ok["run_id"].astype(str)).set_index("run_id")
    joined = meta.join(per_run, how="inner").reset_index()
    return joined.sort_values("run_id", ignore_index=True)


def saliency_summary(
    saliency: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    by: Sequence[str] = BY,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Each outcome's mean over seeds per group, with its interval (the one interval engine).

    Returns
    -------
    DataFrame
        ``*by, outcome, n_images, n_seeds, mean, low, high, method`` (``n_images``: explained images per
        run, the largest in the group). An outcome no run of a group has (localisation on real data
        without masks) gets ``n_seeds`` 0 and method ``none``.
    """
    per_run = saliency_outcomes(saliency, runs)
    out = []
    for key, group in per_run.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        values = group.groupby("seed", sort=True)[list(OUTCOMES)].mean()  # seeds sorted, rows x seeds below

        def draw(n=values.shape[0], key=key) -> np.ndarray:
            return resample_indices(n, n_boot, numpy_rng(seed, "saliency_summary", *key))

        interval = seed_intervals(values.to_numpy(dtype=float).T, alpha, resamples=draw)
        frame = interval.assign(outcome=list(OUTCOMES), n_images=int(group["n_images"].max()))
        out.append(frame.assign(**dict(zip(by, key, strict=True))))
    cols = [*by, "outcome", "n_images", *INTERVAL_COLUMNS]
    return pd.concat(out, ignore_index=True)[cols]


def saliency_contrasts(
    saliency: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    reference: str = "avgpool",
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Localisation and deletion area, variant - reference within each model, per fraction and pooled.

    Paired by seed. The gain over chance is left out: the explained images (so their masks) are the same
    in every run, so its contrasts differ from the localisation's only through images whose localisation
    is missing in some runs.

    Returns
    -------
    DataFrame
        ``model, outcome`` then the columns of :func:`analysis.stats.contrasts.paired_contrasts`
        (``metric`` dropped); ``p_holm`` is Holm-adjusted across every row (all models, outcomes,
        variants and fractions). Outcomes without values (no masks) and models without the reference
        are left out.
    """
    per_run = saliency_outcomes(saliency, runs)
    outcomes = [o for o in ("localisation", "deletion_area") if per_run[o].notna().any()]
    models = sorted(per_run["model"].astype(str).unique()) if "model" in per_run else [None]
    parts = []
    for model in models:
        rows = per_run if model is None else per_run[per_run["model"].astype(str) == model]
        if reference not in set(rows["variant"]) or rows["variant"].nunique() < 2:
            continue
        pc = paired_contrasts(rows, outcomes, reference=reference, n_boot=n_boot, alpha=alpha, seed=seed)
        parts.append(pc.rename(columns={"metric": "outcome"}).assign(model=model))
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    out["p_holm"] = holm(out["p_value"].to_numpy(dtype=float))
    first = ["model", "outcome"]
    return out[first + [c for c in out.columns if c not in first]]


def mean_maps(
    maps: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    by: Sequence[str] = ("variant",),
    per_image: bool = True,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Mean Grad-CAM map over seeds per group (and image), with a pointwise t band over seeds.

    Parameters
    ----------
    maps : DataFrame
        The ``saliency_maps`` table (``run_id, example_id, row, col, cam, mask``).
    runs : DataFrame
        The ``runs`` table (with the ``by`` columns); only ok runs count.
    by : sequence of str
        Grouping columns of ``runs``.
    per_image : bool
        One map per image (True), or each run's maps first averaged over its images (False).
    alpha : float
        1 - confidence level of the band.

    Returns
    -------
    DataFrame
        ``*by, example_id, row, col, n_seeds, mean, low, high, mask``; ``example_id`` is -1 for maps
        averaged over images; ``mask`` is the mean mask share of the cell (NaN without masks).
    """
    ok = ok_runs(runs)
    rows = maps[maps["run_id"].isin(ok["run_id"])]
    if rows.empty:
        raise ValueError("no saliency maps of ok runs: enable `saliency` in the study and rerun the grid")
    meta = ok.assign(run_id=ok["run_id"].astype(str))[["run_id", "seed", *by]]
    frame = rows.assign(run_id=rows["run_id"].astype(str)).merge(meta, on="run_id")
    if not per_image:
        frame = frame.groupby(["run_id", "seed", *by, "row", "col"], sort=True, dropna=False)[["cam", "mask"]]
        frame = frame.mean().reset_index().assign(example_id=-1)
    key_cols = [*by, "example_id"]
    per_seed = frame.groupby([*key_cols, "seed", "row", "col"], sort=True, dropna=False)[
        ["cam", "mask"]
    ].mean()
    out = []
    for key, group in per_seed.groupby(level=list(range(len(key_cols))), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        cam = group["cam"].unstack(["row", "col"])  # seeds x grid cells
        complete = cam.dropna()  # a seed missing a cell (a partial map) leaves that seed out
        mean, half = t_band(complete.to_numpy(dtype=float), alpha, axis=0)
        mask = group["mask"].groupby(level=["row", "col"]).mean().reindex(cam.columns)
        part = pd.DataFrame(
            {
                "row": cam.columns.get_level_values("row"),
                "col": cam.columns.get_level_values("col"),
                "n_seeds": len(complete),
                "mean": mean,
                "low": mean - half,
                "high": mean + half,
                "mask": mask.to_numpy(dtype=float),
            }
        )
        out.append(part.assign(**dict(zip(key_cols, key, strict=True))))
    cols = [*key_cols, "row", "col", "n_seeds", "mean", "low", "high", "mask"]
    return pd.concat(out, ignore_index=True)[cols]
