"""Multi-class error analysis: confusion matrices, per-class recall, confused pairs, example difficulty.

Every run of a multi-class study scores the same test examples (``predictions``: one row per run x
example x class, ``score`` the probability of ``class_index``). A run's decision on an example is the
class of highest probability (ties to the lowest class index, as
:func:`downscalexr.metrics.multiclass_metrics` decides), so the counts here agree with the ``runs`` metrics.

* :func:`run_confusions`: every ok run's K x K confusion counts (rows: true class, columns: predicted).
* :func:`confusion_matrices`: counts pooled over the seeds of each group, normalised by row.
* :func:`per_class_recall`: each class's recall per group, mean over seeds with the one interval engine.
* :func:`confused_pairs`: the most-confused class pairs ``{a, b}`` and their confusion rate
  ``(n[a->b] + n[b->a]) / (n_a + n_b)`` (the share of the two classes' examples given the other class of
  the pair) per group, with intervals over seeds.
* :func:`confused_pair_contrasts`: those rates, variant - reference within each model, paired by seed.
* :func:`analysis.stats.difficulty.example_difficulty` (its own module): the share of runs that get each
  test example wrong.

Intervals come from :func:`analysis.stats.intervals.seed_intervals` (seeds sorted before resampling, so
row order never matters), contrasts and p-values from :func:`analysis.stats.contrasts.paired_contrasts`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.design import ok_runs
from analysis.stats.contrasts import paired_contrasts
from analysis.stats.hypothesis_tests import holm
from analysis.stats.intervals import INTERVAL_COLUMNS, resample_indices, seed_intervals
from downscalexr.seeding import numpy_rng

BY = ("variant", "data_fraction")
PAIR_COLUMNS = ["class_a", "class_b"]


def run_confusions(predictions: pd.DataFrame, runs: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Confusion counts of every ok run with predictions on the shared test set.

    Parameters
    ----------
    predictions : DataFrame
        The ``predictions`` table of a multi-class study (one row per run x example x class).
    runs : DataFrame
        The ``runs`` table (or a selection of it, with any extra design columns); only ok runs count.

    Returns
    -------
    tuple
        ``(meta, counts)``: the ok runs that have predictions, one row each sorted by ``run_id``, and
        their counts ``(n_runs, K, K)``, ``counts[r, i, j]`` = examples of true class ``i`` that run ``r``
        gave class ``j``.

    Raises
    ------
    ValueError
        If no ok run has predictions, the predictions are binary, a (run, example, class) appears twice or
        is missing, or runs disagree on the test set's labels.
    """
    meta, _, labels, predicted, k = decisions(predictions, runs)
    rows = np.repeat(np.arange(len(meta)), labels.size)
    flat = np.ravel_multi_index((rows, np.tile(labels, len(meta)), predicted.ravel()), (len(meta), k, k))
    counts = np.bincount(flat, minlength=len(meta) * k * k).reshape(len(meta), k, k)
    return meta, counts


def decisions(predictions: pd.DataFrame, runs: pd.DataFrame):
    """``(meta, example ids (N,), labels (N,), predicted (R, N), K)`` of the ok runs' argmax decisions.

    ``meta`` holds the ok runs with predictions (sorted by ``run_id``, the rows of ``predicted``); raises
    ``ValueError`` as :func:`run_confusions` does.
    """
    ok = ok_runs(runs)
    p = predictions[predictions["run_id"].isin(ok["run_id"])]
    if p.empty:
        raise ValueError("no predictions of ok runs: the error analysis needs the predictions table")
    classes = p["class_index"].to_numpy(dtype=np.int64)
    if classes.min() < 0 or p["label"].min() < 0:
        raise ValueError("class_index and label must be class numbers 0, 1, ..., K - 1")
    if np.unique(classes).size < 3:
        raise ValueError("the predictions are not multi-class (fewer than 3 class_index values)")
    k = int(max(classes.max(), p["label"].max())) + 1
    ri, run_ids = pd.factorize(p["run_id"], sort=True)  # codes into the sorted unique values
    ei, examples = pd.factorize(p["example_id"], sort=True)
    run_ids, examples = np.asarray(run_ids, dtype=str), np.asarray(examples, dtype=np.int64)
    shape = (run_ids.size, examples.size, k)
    flat = np.ravel_multi_index((ri, ei, classes), shape)
    seen = np.bincount(flat, minlength=np.prod(shape)).reshape(shape)
    if seen.max() > 1:
        raise ValueError("a (run_id, example_id, class_index) appears more than once in predictions")
    if seen.min() == 0:
        raise ValueError(
            "some run lacks a score for some test example or class: every run must score every class of "
            "every example of the shared test set"
        )
    scores = np.empty(seen.shape)
    scores[ri, ei, classes] = p["score"].to_numpy(dtype=float)
    label_grid = np.empty((run_ids.size, examples.size), dtype=np.int64)
    label_grid[ri, ei] = p["label"].to_numpy(dtype=np.int64)
    if (label_grid != label_grid[:1]).any():
        raise ValueError("runs disagree on the labels of the test examples: the test set must be shared")
    meta = ok.assign(run_id=ok["run_id"].astype(str)).set_index("run_id").loc[run_ids].reset_index()
    return meta, examples, label_grid[0], scores.argmax(axis=2), k  # argmax: ties go to the lowest class


def confusion_matrices(
    predictions: pd.DataFrame, runs: pd.DataFrame, *, by: Sequence[str] = BY
) -> pd.DataFrame:
    """K x K confusion counts pooled over the runs (seeds) of each group, normalised by row.

    Every run scores the same test set, so the pooled row-normalised rate is the mean over runs of each
    run's ``P(predicted j | true i)``.

    Returns
    -------
    DataFrame
        One row per group x true class x predicted class: ``*by, true_class, predicted_class, count,
        n_runs, rate`` (``rate`` = count / the row's total).

    Examples
    --------
    >>> preds = pd.DataFrame({"run_id": "r", "example_id": [0, 0, 0, 1, 1, 1, 2, 2, 2],
    ...     "label": [0, 0, 0, 1, 1, 1, 2, 2, 2], "class_index": [0, 1, 2] * 3,
    ...     "score": [.8, .1, .1, .7, .2, .1, .1, .1, .8]})
    >>> runs = pd.DataFrame({"run_id": ["r"], "status": "ok", "variant": "a", "data_fraction": 1.0})
    >>> confusion_matrices(preds, runs).query("true_class == 1")["count"].tolist()
    [1, 0, 0]
    """
    meta, counts = run_confusions(predictions, runs)
    k = counts.shape[1]
    rows = []
    for key, group in meta.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        pooled = counts[group.index.to_numpy()].sum(axis=0)
        totals = pooled.sum(axis=1, keepdims=True)
        rate = np.divide(pooled, totals, out=np.full(pooled.shape, np.nan), where=totals > 0)
        i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        frame = pd.DataFrame(
            {
                "true_class": i.ravel(),
                "predicted_class": j.ravel(),
                "count": pooled.ravel(),
                "rate": rate.ravel(),
            }
        )
        rows.append(frame.assign(**dict(zip(by, key, strict=True)), n_runs=len(group)))
    out = pd.concat(rows, ignore_index=True)
    return out[[*by, "true_class", "predicted_class", "count", "n_runs", "rate"]]


def _per_seed(
    meta: pd.DataFrame, values: np.ndarray, key_seed: str = "seed"
) -> tuple[np.ndarray, np.ndarray]:
    """Values (runs x items) averaged per seed: ``(sorted seeds, items x seeds)``."""
    seeds = np.sort(meta[key_seed].unique())
    pos = np.searchsorted(seeds, meta[key_seed].to_numpy())
    sums = np.zeros((seeds.size, values.shape[1]))
    np.add.at(sums, pos, values)
    per_seed = sums / np.bincount(pos, minlength=seeds.size)[:, None]
    return seeds, per_seed.T


def _chosen(counts: np.ndarray, top: int, pairs: Sequence[tuple[int, int]] | None) -> np.ndarray:
    """Positions of the given ``pairs`` (each ``(a, b)`` with ``a < b``), or of the ``top`` most confused."""
    if pairs is None:
        return most_confused(counts, top)
    k = counts.shape[1]
    table = pair_rates(counts[:1])[0]
    position = {(a, b): i for i, (a, b) in enumerate(table.itertuples(index=False))}
    wanted = [tuple(sorted((int(a), int(b)))) for a, b in pairs]
    bad = [p for p in wanted if p not in position]
    if bad or not wanted:
        raise ValueError(f"pairs must be distinct classes in 0..{k - 1}, e.g. [(0, 1)]; got {list(pairs)}")
    return np.array([position[p] for p in wanted])


def _grouped_intervals(
    meta: pd.DataFrame,
    values: np.ndarray,
    items: pd.DataFrame,
    by: Sequence[str],
    *,
    name: str,
    n_boot,
    alpha,
    seed,
) -> pd.DataFrame:
    """Per group: the interval over seeds of each item's per-run value (``values`` is runs x items)."""
    out = []
    for key, group in meta.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        seeds, per_seed = _per_seed(group, values[group.index.to_numpy()])

        def draw(n=seeds.size, key=key) -> np.ndarray:
            return resample_indices(n, n_boot, numpy_rng(seed, name, *key))

        # an item a seed cannot measure (no example of the class) is NaN and left out by the engine
        interval = seed_intervals(per_seed, alpha, resamples=draw)
        frame = pd.concat([items.reset_index(drop=True), interval], axis=1)
        out.append(frame.assign(**dict(zip(by, key, strict=True))))
    cols = [*by, *items.columns, *INTERVAL_COLUMNS]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def per_class_recall(
    predictions: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    by: Sequence[str] = BY,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Recall of every class per group: mean over seeds with its interval (the one interval engine).

    Returns
    -------
    DataFrame
        ``*by, class_index, n_seeds, mean, low, high, method``.
    """
    meta, counts = run_confusions(predictions, runs)
    totals = counts.sum(axis=2)
    recall = np.divide(
        np.diagonal(counts, axis1=1, axis2=2), totals, out=np.full(totals.shape, np.nan), where=totals > 0
    )
    items = pd.DataFrame({"class_index": np.arange(counts.shape[1])})
    return _grouped_intervals(
        meta, recall, items, by, name="per_class_recall", n_boot=n_boot, alpha=alpha, seed=seed
    )


def pair_rates(counts: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Every unordered class pair ``a < b`` and its confusion rate in every run.

    Returns
    -------
    tuple
        ``(pairs, rates)``: ``pairs`` has ``class_a, class_b``; ``rates`` is runs x pairs,
        ``(n[a->b] + n[b->a]) / (n_a + n_b)`` (NaN when neither class has an example).
    """
    k = counts.shape[1]
    a, b = np.triu_indices(k, 1)
    confused = counts[:, a, b] + counts[:, b, a]
    totals = counts.sum(axis=2)
    denom = totals[:, a] + totals[:, b]
    rates = np.divide(confused, denom, out=np.full(confused.shape, np.nan), where=denom > 0)
    return pd.DataFrame({"class_a": a, "class_b": b}), rates


def most_confused(counts: np.ndarray, top: int) -> np.ndarray:
    """Positions (into :func:`pair_rates`' pairs) of the ``top`` pairs with the highest pooled rate.

    The pooled rate is over every run of ``counts``; ties go to the lower class indices.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    pairs, _ = pair_rates(counts)
    pooled = pair_rates(counts.sum(axis=0, keepdims=True))[1][0]
    order = np.lexsort((pairs["class_b"], pairs["class_a"], -np.nan_to_num(pooled, nan=-1.0)))
    return order[:top]


def confused_pairs(
    predictions: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    top: int = 5,
    pairs: Sequence[tuple[int, int]] | None = None,
    by: Sequence[str] = BY,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """The ``top`` most-confused class pairs and their confusion rate per group, with intervals.

    The pairs are chosen once, by their rate pooled over every run passed (all groups), so every group
    reports the same pairs and their contrasts are like for like; ``pairs`` (``[(a, b), ...]``) fixes
    them instead. The choice uses the same test set as
    the estimates, which biases the chosen pairs' rates upwards slightly; contrasts between groups are
    not favoured by it (the choice does not look at the groups).

    Returns
    -------
    DataFrame
        ``*by, class_a, class_b, rate_ab, rate_ba, n_seeds, mean, low, high, method``: ``mean`` and its
        interval are the pair's rate over seeds; ``rate_ab`` (``rate_ba``) the pooled share of class ``a``
        (``b``) examples given the other class, the two directions of the confusion.
    """
    meta, counts = run_confusions(predictions, runs)
    table, rates = pair_rates(counts)
    chosen = _chosen(counts, top, pairs)
    out = _grouped_intervals(
        meta,
        rates[:, chosen],
        table.iloc[chosen],
        by,
        name="confused_pairs",
        n_boot=n_boot,
        alpha=alpha,
        seed=seed,
    )
    directions = []
    for _, group in meta.groupby(list(by), sort=True, dropna=False):
        pooled = counts[group.index.to_numpy()].sum(axis=0)
        share = pooled / np.maximum(pooled.sum(axis=1, keepdims=True), 1)
        a, b = table["class_a"].to_numpy()[chosen], table["class_b"].to_numpy()[chosen]
        directions.append(np.column_stack([share[a, b], share[b, a]]))
    directions = np.concatenate(directions)
    out.insert(len(by) + 2, "rate_ab", directions[:, 0])
    out.insert(len(by) + 3, "rate_ba", directions[:, 1])
    return out


def confused_pair_contrasts(
    predictions: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    top: int = 5,
    pairs: Sequence[tuple[int, int]] | None = None,
    reference: str = "avgpool",
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Confusion rate of the ``top`` most-confused pairs: variant - reference within each model.

    Paired by seed per data fraction and pooled over fractions (:func:`analysis.stats.contrasts.
    paired_contrasts`); the pairs are chosen as in :func:`confused_pairs` (or given as ``pairs``);
    ``p_holm`` is Holm-adjusted across every row returned (all models, pairs,
    variants and fractions). A model without the reference variant is left out.

    Returns
    -------
    DataFrame
        ``model, class_a, class_b`` then the columns of :func:`paired_contrasts` (``metric`` dropped).
    """
    meta, counts = run_confusions(predictions, runs)
    table, rates = pair_rates(counts)
    chosen = _chosen(counts, top, pairs)
    names = [f"pair_{a}_{b}" for a, b in table.iloc[chosen].itertuples(index=False)]
    frame = pd.concat([meta, pd.DataFrame(rates[:, chosen], columns=names)], axis=1)
    parts = []
    models = sorted(frame["model"].astype(str).unique()) if "model" in frame else [None]
    for model in models:
        rows = frame if model is None else frame[frame["model"].astype(str) == model]
        if reference not in set(rows["variant"]) or rows["variant"].nunique() < 2:
            continue
        pc = paired_contrasts(rows, names, reference=reference, n_boot=n_boot, alpha=alpha, seed=seed)
        parts.append(pc.assign(model=model))
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    ab = out["metric"].str.removeprefix("pair_").str.split("_", expand=True).astype(int)
    out = out.assign(class_a=ab[0], class_b=ab[1]).drop(columns="metric")
    out["p_holm"] = holm(out["p_value"].to_numpy(dtype=float))
    first = ["model", "class_a", "class_b"]
    return out[first + [c for c in out.columns if c not in first]]


def macro_f1(counts: np.ndarray) -> np.ndarray:
    """Macro F1 of each run from its K x K counts: mean over classes of ``2 tp / (2 tp + fp + fn)``.

    Examples
    --------
    >>> macro_f1(np.array([[[2, 0, 0], [1, 1, 0], [0, 0, 2]]])).round(4).tolist()
    [0.8222]
    """
    tp = np.diagonal(counts, axis1=1, axis2=2).astype(float)
    fp = counts.sum(axis=1) - tp
    fn = counts.sum(axis=2) - tp
    return (2 * tp / np.maximum(2 * tp + fp + fn, 1)).mean(axis=1)
