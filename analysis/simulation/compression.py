"""A simulated compression study: the runs of :func:`simulate_study` and compressed copies of each.

Each ok run of the base study is a *parent*; every level adds one run per parent (its own ``run_id``,
``parent_run_id`` the parent's, ``compression`` the level), as the grid stores them. A level changes
the parent's test decisions example by example: a wrong decision flips to right with probability
``flip_rate`` and a right one flips to wrong with probability
``r = ((1 - acc) * flip_rate - change) / acc``, where ``acc`` is the parent's accuracy. So the expected
accuracy change of every compressed run, given its parent, is exactly the planted ``change``, and its
expected share of flipped decisions is ``acc * r + (1 - acc) * flip_rate`` (reported in the truth,
averaged over the parents of a variant). A flipped decision's score is ``1 - score`` (threshold 0.5).

Latency: every timed repeat of the parent is multiplied by the planted ratio and a log-normal factor
(median 1, ``latency_noise``), keeping the parent's reference-workload timing, so the true ratio of
medians is the planted one. Sizes: the parent's serialized state dict is ``4 * params + 5000`` bytes;
a level's is that times ``size_ratio``; gzip bytes vary by a few per cent from run to run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.simulation.study import simulate_study
from analysis.simulation.tables import conform_tables, predictions_table, run_id, score_metrics
from downscalexr import schema
from downscalexr.seeding import numpy_rng


@dataclass(frozen=True)
class LevelPlan:
    """What one simulated compression level plants.

    Parameters
    ----------
    change : float or dict variant -> float
        Expected accuracy change (absolute) of a compressed run against its parent; a dict plants a
        different change per variant (the interaction with the operator); missing variants get 0.
    latency_ratio : float or dict variant -> float
        True ratio of median latency, compressed / parent (missing variants: 1).
    size_ratio : float
        Serialized state-dict bytes, compressed / parent.
    unsupported : tuple of str
        Variants on which the level is stored ``unsupported`` (no predictions, no latency).
    """

    change: float | Mapping[str, float] = 0.0
    latency_ratio: float | Mapping[str, float] = 1.0
    size_ratio: float = 1.0
    unsupported: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.size_ratio <= 2:
            raise ValueError(f"size_ratio must lie in (0, 2], got {self.size_ratio}")
        object.__setattr__(self, "unsupported", tuple(self.unsupported))

    def of(self, name: str, variant: str) -> float:
        """The planted ``change`` or ``latency_ratio`` of one variant."""
        value = getattr(self, name)
        default = 1.0 if name == "latency_ratio" else 0.0
        return float(value.get(variant, default)) if isinstance(value, Mapping) else float(value)


DEFAULT_LEVELS = {
    "prune_l1_50": LevelPlan(change=0.0, latency_ratio=1.0, size_ratio=1.0),
    "int8_static": LevelPlan(change=-0.02, latency_ratio=0.5, size_ratio=0.25),
}


def simulate_compression_study(
    levels: Mapping[str, LevelPlan | Mapping] | None = None,
    *,
    flip_rate: float = 0.2,
    latency_noise: float = 0.05,
    **plan,
) -> dict:
    """The tables of a study whose every run has compressed copies with planted effects.

    Parameters
    ----------
    levels : dict level -> LevelPlan (or its keyword dict)
        The levels and what each plants (default :data:`DEFAULT_LEVELS`).
    flip_rate : float
        Probability that a wrong decision of the parent flips to right, in [0, 1).
    latency_noise : float
        Log-scale SD of the extra noise of every compressed timing repeat.
    **plan
        The fields of :class:`~analysis.simulation.study.StudyPlan` for the parents.

    Returns
    -------
    dict
        ``runs``, ``epochs``, ``predictions``, ``latency`` (schema-conformed; parents first) and
        ``truth``: the base study's truth plus ``compression`` = ``{level: {"change": {variant: ...},
        "interaction": {variant: change - reference's change}, "latency_ratio": {variant: ...},
        "size_ratio": ..., "flip_share": {variant: expected share}}}`` (supported variants only) and
        ``compression_clipped`` (flip probabilities clipped to [0, 1]; the truth is exact when 0).

    Examples
    --------
    >>> tables = simulate_compression_study(seeds=3, fractions=(1.0,), variants=("avgpool", "maxpool"))
    >>> sorted(tables["runs"]["compression"].unique())
    ['int8_static', 'none', 'prune_l1_50']
    >>> tables["truth"]["compression"]["int8_static"]["change"]["maxpool"]
    -0.02
    """
    if not 0 <= flip_rate < 1:
        raise ValueError(f"flip_rate must lie in [0, 1), got {flip_rate}")
    plans = {
        k: v if isinstance(v, LevelPlan) else LevelPlan(**v) for k, v in (levels or DEFAULT_LEVELS).items()
    }
    if "none" in plans:
        raise ValueError("level 'none' is the parent itself; name the compressed levels only")
    base = simulate_study(**plan)
    rng = numpy_rng(int(plan.get("seed", 0)), "simulate_compression_study")
    parents = _as_parents(base["runs"])
    ok = parents[parents["status"] == "ok"].reset_index(drop=True)
    preds = base["predictions"]
    labels = preds.drop_duplicates("example_id").sort_values("example_id")["label"].to_numpy()
    scores = preds.pivot(index="run_id", columns="example_id", values="score").loc[ok["run_id"]].to_numpy()
    tables = {"runs": [parents], "predictions": [preds], "latency": [base["latency"]]}
    truth, clipped = {}, 0
    for name, level in plans.items():
        part, level_truth, n_clipped = _level(name, level, ok, labels, scores, flip_rate, rng)
        part["latency"] = _latency(base["latency"], part["runs"], level, latency_noise, rng)
        for key in tables:
            tables[key].append(part[key])
        truth[name], clipped = level_truth, clipped + n_clipped
    reference = base["truth"]["reference"]
    for t in truth.values():
        t["interaction"] = {v: c - t["change"][reference] for v, c in t["change"].items()}
    out = {k: pd.concat([f for f in v if len(f)], ignore_index=True) for k, v in tables.items()}
    out["epochs"] = base["epochs"]
    truth_all = {**base["truth"], "compression": truth, "compression_clipped": clipped}
    return {**conform_tables(out), "truth": truth_all}


def _as_parents(runs: pd.DataFrame) -> pd.DataFrame:
    """The base study's runs as uncompressed parents, with their state-dict sizes."""
    sizes = 4 * runs["params"].to_numpy() + 5000
    return runs.assign(
        compression="none",
        parent_run_id=runs["run_id"],
        state_dict_bytes=sizes,
        state_dict_gzip_bytes=np.rint(0.92 * sizes).astype(int),
        nonzero_params=runs["params"],
        sparsity=0.0,
    )


def _level(name: str, level: LevelPlan, ok: pd.DataFrame, labels, scores, flip_rate: float, rng):
    """One level's runs and predictions: every ok parent's decisions flipped at the planted rates."""
    predicted = (scores >= 0.5).astype(int)
    correct = predicted == labels[None, :]
    acc = correct.mean(axis=1)
    change = np.array([level.of("change", v) for v in ok["variant"]])
    to_wrong = ((1 - acc) * flip_rate - change) / acc
    clipped = int(np.sum((to_wrong < 0) | (to_wrong > 1)))
    to_wrong = np.clip(to_wrong, 0.0, 1.0)
    u = rng.random(scores.shape)
    flip = np.where(correct, u < to_wrong[:, None], u < flip_rate)
    new_scores = np.where(flip, 1.0 - scores, scores)
    unsupported = ok["variant"].isin(level.unsupported).to_numpy()
    ids = np.array([run_id(rid, name) for rid in ok["run_id"]])
    runs = ok.assign(run_id=ids, compression=name, parent_run_id=ok["run_id"])
    metrics = score_metrics(labels, new_scores, 0.5)
    for column, values in metrics.items():
        runs[column] = np.where(unsupported, np.nan, values)
    sizes = np.rint(ok["state_dict_bytes"].to_numpy() * level.size_ratio)
    gzip = np.rint(sizes * rng.uniform(0.88, 0.96, len(ok)))
    runs = runs.assign(
        status=np.where(unsupported, "unsupported", "ok"),
        error=np.where(unsupported, "simulated: no quantized kernel for this operator", ""),
        state_dict_bytes=sizes.astype(int),
        state_dict_gzip_bytes=gzip.astype(int),
    )
    expected_flips = acc * to_wrong + (1 - acc) * flip_rate
    variants = sorted(set(ok["variant"]) - set(level.unsupported))
    truth = {
        "change": {v: level.of("change", v) for v in variants},
        "latency_ratio": {v: level.of("latency_ratio", v) for v in variants},
        "size_ratio": level.size_ratio,
        "flip_share": {v: float(expected_flips[(ok["variant"] == v).to_numpy()].mean()) for v in variants},
    }
    keep = ~unsupported
    preds = predictions_table(ids[keep], labels, new_scores[keep])
    return {"runs": runs, "predictions": preds}, truth, clipped


def _latency(
    parent_latency: pd.DataFrame, runs: pd.DataFrame, level: LevelPlan, noise: float, rng
) -> pd.DataFrame:
    """The parents' timing rows scaled by the planted ratio, with extra repeat noise, for supported runs."""
    ok = runs[runs["status"] == "ok"]
    rows = parent_latency.merge(
        ok[["parent_run_id", "run_id", "variant"]].rename(columns={"run_id": "level_id"}),
        left_on="run_id",
        right_on="parent_run_id",
    )
    ratio = np.array([level.of("latency_ratio", v) for v in rows["variant"]])
    seconds = rows["seconds"].to_numpy() * ratio * np.exp(rng.normal(0.0, noise, len(rows)))
    out = rows.assign(run_id=rows["level_id"], seconds=seconds)
    return out[list(schema.LATENCY)]
