"""What compression does to a trained model: paired changes against the uncompressed parent, with intervals.

Every compressed run is a copy of one trained *parent* (``parent_run_id``; level ``none`` is the parent
itself), so each compressed run pairs exactly with its parent, and seeds pair everything else. Every
statistic here is one of the shared procedures applied to the compression levels of one arm (variant)
in place of the variants, with the uncompressed level ``none`` as the reference:

* :func:`compression_changes`: level - none per arm, level, data fraction and pooled
  (:func:`~analysis.stats.contrasts.paired_contrasts`), Holm-adjusted across the whole table;
* :func:`compression_equivalence`: TOST that a level keeps the metric within +-margin, per arm and level,
  pooled over fractions (:func:`~analysis.stats.contrasts.contrast_test`), Holm-adjusted;
* :func:`compression_interaction`: does compression reorder the operators? ``(arm - reference) at the
  level - (arm - reference) uncompressed``, per seed, tested against 0, Holm-adjusted;
* :func:`compression_latency`: latency ratios level / none per arm (:func:`~analysis.stats.latency.
  latency_ratios`, speed-adjusted);
* :func:`compression_sizes`: serialized state-dict size (and gzip size, parameters, FLOPs) of each
  compressed run over its parent's, with per-seed intervals;
* :func:`prediction_flips`: the share of test decisions that differ from the parent's, with intervals,
  and per-seed McNemar tests (:func:`~analysis.stats.bias.mcnemar_tests`), Holm-adjusted.

Only runs at the base level of the inductive-bias factors (unpermuted, no shift, random init) enter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.design import INDUCTIVE_FACTORS, NO_COMPRESSION, base_levels, design_frame, ok_runs
from analysis.stats.bias import mcnemar_tests
from analysis.stats.contrasts import contrast_test, paired_contrasts, per_seed_contrast
from analysis.stats.hierarchical import prediction_matrix
from analysis.stats.hypothesis_tests import holm
from analysis.stats.intervals import resample_indices, seed_intervals
from analysis.stats.latency import latency_ratios
from downscalexr.seeding import numpy_rng

NONE = NO_COMPRESSION
CHANGE_COLUMNS = [
    "arm", "compression", "metric", "data_fraction", "n_seeds", "diff", "low", "high", "p_value", "p_holm",
    "dz", "prob_superior", "method",
]  # fmt: skip
TEST_COLUMNS = [
    "arm", "compression", "n_seeds", "estimate", "low", "high", "low_eq", "high_eq", "p_value", "p_holm",
    "method",
]  # fmt: skip
SIZE_MEASURES = {
    "state_dict_bytes": "size",
    "state_dict_gzip_bytes": "gzip size",
    "params": "parameters",
    "flops": "FLOPs",
}
SIZE_COLUMNS = ["arm", "compression", "measure", "n_seeds", "mean", "low", "high", "method"]
FLIP_COLUMNS = [
    "arm", "compression", "data_fraction", "n_seeds", "flip_share", "low", "high", "method", "n_tests",
    "n_significant", "b", "c",
]  # fmt: skip


def compression_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Ok runs of every arm and compression level at the base level of the inductive-bias factors.

    Returns :func:`analysis.design.design_frame` rows (``arm``, ``compression``, ``parent_run_id``);
    a compressed run whose parent is not among them (failed, or of another factor level) is left out.
    """
    d = design_frame(ok_runs(runs))
    base = base_levels(runs)
    keep = np.ones(len(d), dtype=bool)
    for factor in INDUCTIVE_FACTORS:
        keep &= (d[factor] == base[factor]).to_numpy()
    d = d[keep]
    parents = set(d.loc[d["compression"] == NONE, "run_id"])
    return d[d["parent_run_id"].isin(parents)]


def has_compression(runs: pd.DataFrame) -> bool:
    """Whether the study has ok compressed runs whose parents are ok (what the section analyses)."""
    if "compression" not in runs or not (runs["compression"].fillna(NONE) != NONE).any():
        return False
    d = compression_frame(runs)
    return bool((d["compression"] != NONE).any())


def _by_arm(d: pd.DataFrame):
    """Per arm with compressed runs: its rows with ``variant`` set to the compression level."""
    for arm, part in d.groupby("arm", sort=True):
        if part["compression"].nunique() > 1:
            yield arm, part.assign(variant=part["compression"])


def compression_changes(
    runs: pd.DataFrame,
    metrics: str | Sequence[str] = ("accuracy", "auroc"),
    *,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired change level - none per arm, level and data fraction (and pooled over fractions).

    Within an arm the levels take the place of the variants in
    :func:`~analysis.stats.contrasts.paired_contrasts` (reference ``none``): per-seed differences, the
    paired t interval with its own p (not testable below 3 seeds or without variation). ``p_holm``
    adjusts across every row returned (every arm, level, metric and fraction: the section's family).

    Returns
    -------
    DataFrame
        Columns :data:`CHANGE_COLUMNS`; ``data_fraction`` NaN is the row pooled over fractions.
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    frames = []
    for arm, part in _by_arm(compression_frame(runs)):
        usable = [m for m in metrics if part[m].notna().any()]
        if not usable:
            continue
        c = paired_contrasts(part, usable, reference=NONE, n_boot=n_boot, alpha=alpha, seed=seed)
        frames.append(c.rename(columns={"variant": "compression"}).assign(arm=arm))
    if not frames:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out["p_holm"] = holm(out["p_value"].to_numpy(dtype=float))
    return out[CHANGE_COLUMNS]


def _pooled_change(d: pd.DataFrame, metric: str, arm: str, level: str) -> pd.Series:
    """Per-seed ``level - none`` of one arm, matched within a fraction and averaged over fractions."""
    terms = [(1.0, {"arm": arm, "compression": level}), (-1.0, {"arm": arm, "compression": NONE})]
    return per_seed_contrast(d, metric, terms)


def _tests(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=TEST_COLUMNS)
    out["p_holm"] = holm(out["p_value"].to_numpy(dtype=float))
    return out


def compression_equivalence(
    runs: pd.DataFrame,
    *,
    metric: str = "accuracy",
    margin: float = 0.02,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Does a level keep ``metric`` within +-``margin`` of its parent? TOST per arm and level.

    A seed's value is the mean over data fractions of level - none. ``low``/``high`` is the (1 - alpha)
    interval, ``low_eq``/``high_eq`` the (1 - 2 alpha) one (TOST at ``alpha`` shows equivalence exactly
    when it lies within the margin), ``p_value`` the TOST p-value, ``p_holm`` adjusted across the rows.

    Returns
    -------
    DataFrame
        Columns :data:`TEST_COLUMNS`, one row per arm and compressed level with a paired seed.
    """
    d = compression_frame(runs)
    rows = []
    for arm, part in _by_arm(d):
        for level in sorted(set(part["compression"]) - {NONE}):
            values = _pooled_change(d, metric, arm, level)
            if values.dropna().empty:
                continue
            key = (seed, "compression_equivalence", metric, arm, level)
            result = contrast_test(
                values, "equivalence", margin=margin, alpha=alpha, n_boot=n_boot, rng_key=key
            )
            rows.append({"arm": arm, "compression": level, **result})
    return _tests(rows)


def compression_interaction(
    runs: pd.DataFrame,
    *,
    reference: str = "avgpool",
    metric: str = "accuracy",
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Does compression reorder the operators? ``(arm - reference)`` compressed minus uncompressed.

    Per seed (matched within a data fraction, averaged over fractions):
    ``(arm_L - reference_L) - (arm_none - reference_none)`` for every level ``L`` that both arms have;
    tested against 0 with the paired t-test, Holm-adjusted across the rows. ``arm`` is the compared
    arm and ``estimate`` how much the level changes its difference to the reference.
    """
    d = compression_frame(runs)
    arms = sorted(set(d["arm"]))
    if reference not in arms:
        return pd.DataFrame(columns=TEST_COLUMNS)
    rows = []
    for level in sorted(set(d["compression"]) - {NONE}):
        for arm in arms:
            if arm == reference:
                continue
            terms = [
                (1.0, {"arm": arm, "compression": level}),
                (-1.0, {"arm": reference, "compression": level}),
                (-1.0, {"arm": arm, "compression": NONE}),
                (1.0, {"arm": reference, "compression": NONE}),
            ]
            values = per_seed_contrast(d, metric, terms)
            if values.dropna().empty:
                continue
            key = (seed, "compression_interaction", metric, arm, level)
            result = contrast_test(
                values, "difference", margin=np.nan, alpha=alpha, n_boot=n_boot, rng_key=key
            )
            rows.append({"arm": arm, "compression": level, **result})
    return _tests(rows)


def compression_latency(
    latency: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Median latency of every level over the uncompressed model's, per arm, batch size and format.

    :func:`~analysis.stats.latency.latency_ratios` with the levels of one arm in place of the variants
    and ``none`` as the reference: seeds resampled jointly, then timing repeats; speed-adjusted where
    every repeat has its reference timing and each level has enough runs.

    Returns
    -------
    DataFrame
        The columns of ``latency_ratios`` with ``variant`` renamed ``compression`` and an ``arm`` column
        first; the ``none`` rows (ratio 1) are kept, holding the fp32 medians.
    """
    frames = []
    for arm, part in _by_arm(compression_frame(runs)):
        mine = latency[latency["run_id"].isin(part["run_id"])]
        if mine.empty or not mine["run_id"].isin(part.loc[part["compression"] == NONE, "run_id"]).any():
            continue
        lr = latency_ratios(mine, part, reference=NONE, n_boot=n_boot, alpha=alpha, seed=seed)
        frames.append(lr.rename(columns={"variant": "compression"}).assign(arm=arm))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    return out[["arm", *[c for c in out.columns if c != "arm"]]]


def _parent_pairs(d: pd.DataFrame) -> pd.DataFrame:
    """Every compressed run beside its parent's row (columns of the parent suffixed ``_parent``)."""
    parents = d[d["compression"] == NONE].add_suffix("_parent")
    children = d[d["compression"] != NONE]
    return children.merge(parents, left_on="parent_run_id", right_on="run_id_parent", how="inner")


def compression_sizes(
    runs: pd.DataFrame, *, n_boot: int = 10000, alpha: float = 0.05, seed: int = 0
) -> pd.DataFrame:
    """Size of every compressed run over its parent's, per arm and level, with per-seed intervals.

    Measures: the serialized state dict (``size``: what the model costs to store, packed int8 weights
    included), its gzip-compressed bytes (where unstructured zeros show), parameters and dense FLOPs.
    A seed's value is the mean ratio over its data fractions.

    Returns
    -------
    DataFrame
        Columns :data:`SIZE_COLUMNS`; ``mean`` is the mean ratio (below 1: smaller than fp32).
    """
    pairs = _parent_pairs(compression_frame(runs))
    rows = []
    for (arm, level), group in pairs.groupby(["arm", "compression"], sort=True):
        for column, measure in SIZE_MEASURES.items():
            parent = group[f"{column}_parent"].astype(float)
            ratio = group[column].astype(float) / parent.where(parent > 0)
            ratio = ratio.where(group[column].astype(float) > 0)  # -1 / NaN: not recorded
            per_seed = ratio.groupby(group["seed"]).mean().dropna().sort_index()
            if per_seed.empty:
                continue
            rng = numpy_rng(seed, "compression_sizes", arm, level, column)

            def draw(n=per_seed.size, rng=rng) -> np.ndarray:
                return resample_indices(n, n_boot, rng)

            interval = seed_intervals(per_seed.to_numpy(), alpha, resamples=draw).iloc[0]
            rows.append({"arm": arm, "compression": level, "measure": measure, **interval.to_dict()})
    return pd.DataFrame(rows, columns=SIZE_COLUMNS)


def prediction_flips(
    predictions: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Share of test decisions a compressed model changes against its parent, and McNemar per seed.

    Decisions are at each run's own threshold (``threshold`` column; argmax for multi-class tasks). A
    seed's flip share is the share of test examples whose decision differs from the parent's;
    intervals over seeds per arm, level and fraction (and pooled over fractions). McNemar's test of
    each compressed run against its parent (``b``: the parent right and the level wrong, ``c``: the
    reverse) is Holm-adjusted across every test of the table; ``n_significant`` counts the seeds whose
    adjusted p-value is below ``alpha``.

    Returns
    -------
    DataFrame
        Columns :data:`FLIP_COLUMNS`; ``data_fraction`` NaN is the row pooled over fractions.
    """
    d = compression_frame(runs)
    flips, tests = [], []
    for arm, part in _by_arm(d):
        have = part[part["run_id"].isin(predictions["run_id"])]
        if have["compression"].nunique() < 2:
            continue
        flips.append(_flip_shares(predictions, have).assign(arm=arm))
        mc = mcnemar_tests(predictions, have, reference=NONE, threshold=None)
        tests.append(mc.rename(columns={"variant": "compression"}).assign(arm=arm))
    if not flips:
        return pd.DataFrame(columns=FLIP_COLUMNS)
    flips_all, tests_all = pd.concat(flips, ignore_index=True), pd.concat(tests, ignore_index=True)
    tests_all["p_holm"] = holm(tests_all["p_value"].to_numpy(dtype=float))
    return _flip_summary(flips_all, tests_all, n_boot, alpha, seed)


def _flip_shares(predictions: pd.DataFrame, part: pd.DataFrame) -> pd.DataFrame:
    """One row per compressed run: its seed, fraction, level and share of decisions unlike its parent's."""
    meta, _, predicted = prediction_matrix(predictions, part)
    row_of = {rid: i for i, rid in enumerate(meta["run_id"])}
    rows = []
    for r in meta[meta["variant"] != NONE].itertuples():
        j = row_of.get(r.parent_run_id)
        if j is None:
            continue
        share = float(np.mean(predicted[row_of[r.run_id]] != predicted[j]))
        rows.append(
            {"compression": r.variant, "seed": r.seed, "data_fraction": r.data_fraction, "share": share}
        )
    return pd.DataFrame(rows, columns=["compression", "seed", "data_fraction", "share"])


def _flip_summary(
    flips: pd.DataFrame, tests: pd.DataFrame, n_boot: int, alpha: float, seed: int
) -> pd.DataFrame:
    """Per arm, level and fraction (and pooled): the mean flip share with its interval, and the tests."""
    pooled = flips.groupby(["arm", "compression", "seed"], as_index=False)["share"].mean()
    both = pd.concat([flips, pooled.assign(data_fraction=np.nan)], ignore_index=True)
    rows = []
    for (arm, level, fraction), group in both.groupby(
        ["arm", "compression", "data_fraction"], dropna=False, sort=True
    ):
        per_seed = group.groupby("seed")["share"].mean().sort_index().to_numpy()
        rng = numpy_rng(
            seed, "prediction_flips", arm, level, "pooled" if pd.isna(fraction) else float(fraction)
        )

        def draw(n=per_seed.size, rng=rng) -> np.ndarray:
            return resample_indices(n, n_boot, rng)

        interval = seed_intervals(per_seed, alpha, resamples=draw).iloc[0]
        mine = tests[(tests["arm"] == arm) & (tests["compression"] == level)]
        if not pd.isna(fraction):
            mine = mine[mine["data_fraction"] == fraction]
        rows.append(
            {
                "arm": arm,
                "compression": level,
                "data_fraction": fraction,
                "n_seeds": interval["n_seeds"],
                "flip_share": interval["mean"],
                "low": interval["low"],
                "high": interval["high"],
                "method": interval["method"],
                "n_tests": len(mine),
                "n_significant": int((mine["p_holm"] < alpha).sum()),
                "b": int(mine["b"].sum()),
                "c": int(mine["c"].sum()),
            }
        )
    return pd.DataFrame(rows, columns=FLIP_COLUMNS)
