"""Inductive-bias hypotheses: MLP and permutation controls, location shift, shift consistency, edge init.

Each hypothesis is a :class:`Hypothesis` in :data:`HYPOTHESES`: its statement and one small function
that builds its *paired* contrasts from the study's :class:`HypothesisData`. A contrast is a linear
combination of design cells taken within one seed and one data fraction (every other design coordinate
is fixed by the contrast's selections), then averaged over the data fractions both sides share, so each
seed gives one value (:func:`analysis.stats.contrasts.per_seed_contrast`); its interval and test come
from :func:`analysis.stats.contrasts.contrast_test`. To add a hypothesis, write its function and append
it to :data:`HYPOTHESES`.

Verdicts use the vocabulary of :mod:`analysis.verdicts.rules` (``alpha`` is 1 - confidence level,
``margin`` the equivalence margin, e.g. 0.02 = 2 pp):

* **directional difference** (the contrast is > 0 or < 0): *supported* when the Holm-adjusted two-sided
  paired t-test p < alpha and the estimate lies on the claimed side; *reversed* when the (1 - alpha)
  interval lies entirely on the other side of 0; *contradicted* when the (1 - 2 alpha) interval lies
  inside (-margin, margin) (no effect as large as the margin); *not resolved* otherwise.
* **two-sided difference** (the contrast is not 0): as above without a side (so never reversed).
* **equivalence** (the contrast "disappears"): TOST with the margin: *supported* when the Holm-adjusted
  TOST p < alpha; *contradicted* when the (1 - alpha) interval excludes 0; *not resolved* otherwise.
* A hypothesis with several parts is combined by :func:`analysis.verdicts.rules.combine_verdicts`.
  Holm's correction runs over every test that can make a hypothesis supported (the family), so the
  chance of any false "supported" stays below alpha.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.design import CONSISTENCY_MODES, MLP_MODEL, base_levels, design_frame, ok_runs
from analysis.stats.contrasts import contrast_test, per_seed_contrast
from analysis.stats.hypothesis_tests import holm
from analysis.verdicts.rules import (
    UNRESOLVED,
    combine_verdicts,
    directional_verdict,
    equivalence_verdict,
)

EDGE_INITS = ("edge_frozen", "edge_trainable")
SUBSAMPLING = ("strided", "subsample")  # downsampling that drops pixels without low-pass filtering
POOLING = ("avgpool", "maxpool", "lppool", "softpool", "mixedpool")  # plus the blurpool family
DEFAULT_MARGIN = 0.02
TEST_COLUMNS = [
    "hypothesis",
    "subject",
    "part",
    "contrast",
    "metric",
    "kind",
    "direction",
    "in_family",
    "n_seeds",
    "estimate",
    "low",
    "high",
    "low_eq",
    "high_eq",
    "p_value",
    "p_holm",
    "method",
    "verdict",
]

Rows = list[dict]
Notes = list[str]


def is_pooling(variant: str) -> bool:
    """Whether ``variant`` averages/pools or low-pass filters before dropping pixels (H4's first group)."""
    return variant in POOLING or variant.startswith(("blurpool", "maxblurpool"))


def _variant(arm: str) -> str:
    return arm.split(":")[-1]


def _model(arm: str) -> str:
    return arm.split(":")[0] if ":" in arm else ""


@dataclass(frozen=True)
class HypothesisData:
    """The study as every hypothesis sees it: ok design rows, base levels and the analysis settings."""

    design: pd.DataFrame
    base: Mapping[str, object]
    metric: str
    reference: str
    margin: float
    alpha: float
    n_boot: int
    seed: int

    @property
    def arms(self) -> list[str]:
        """The CNN arms (variants, or ``model:variant`` with several CNN models), sorted."""
        return sorted(set(self.design.loc[~self.design["is_mlp"], "arm"]))

    @property
    def has_mlp(self) -> bool:
        return bool(self.design["is_mlp"].any())

    @property
    def permuted(self) -> bool:
        """Whether the study has both permuted and unpermuted runs."""
        return set(self.design["permute"]) == {False, True}

    @property
    def shifts(self) -> list[float]:
        """The location shifts, when the study also has unshifted runs (else none can be tested)."""
        levels = set(self.design["location_shift"])
        return sorted(levels - {0.0}) if 0.0 in levels else []

    def reference_arm(self, arm: str) -> str:
        return f"{arm.split(':')[0]}:{self.reference}" if ":" in arm else self.reference

    @property
    def compared_arms(self) -> list[str]:
        """The CNN arms other than the reference whose model also has the reference variant."""
        arms = self.arms
        return [a for a in arms if a != self.reference_arm(a) and self.reference_arm(a) in arms]

    def at(self, **over) -> dict:
        """A cell selection: the base level of every factor, with ``over`` replacing some."""
        return {**self.base, **over}

    def values(self, terms, column: str | None = None) -> pd.Series:
        """Per-seed values of a linear combination of cells (``[(coef, selection), ...]``)."""
        return per_seed_contrast(self.design, column or self.metric, terms)

    def diff(self, a: str, b: str, column: str | None = None, **over) -> pd.Series:
        """Per-seed difference of arm ``a`` minus arm ``b``, other factors at base unless ``over``."""
        return self.values([(1, self.at(arm=a, **over)), (-1, self.at(arm=b, **over))], column)

    def test(
        self,
        values: pd.Series,
        labels: tuple[str, str, str, str],
        kind: str,
        direction: int = 0,
        column: str | None = None,
    ) -> Rows:
        """One test row (empty when no seed has a value); ``labels`` = hypothesis, subject, part, contrast."""
        if not len(values.dropna()):
            return []
        hypothesis, subject, part, contrast = labels
        key = (self.seed, "inductive", hypothesis, subject, part)
        result = contrast_test(
            values, kind, margin=self.margin, alpha=self.alpha, n_boot=self.n_boot, rng_key=key
        )
        row = {"hypothesis": hypothesis, "subject": subject, "part": part, "contrast": contrast}
        row.update({"metric": column or self.metric, "kind": kind, "direction": int(direction)})
        return [{**row, "in_family": kind != "estimate", **result, "p_holm": np.nan, "verdict": ""}]


def mlp_advantage_vanishes(data: HypothesisData) -> tuple[Rows, Notes]:
    """H1: CNN - MLP > 0 unpermuted, equivalent to 0 permuted, and smaller under permutation."""
    if not data.has_mlp:
        return [], ["H1 not tested: the study has no MLP runs."]
    if not data.permuted:
        return [], ["H1 not tested: the study does not have both permuted and unpermuted runs."]
    rows = []
    for arm in data.arms:
        gap = {p: data.diff(arm, MLP_MODEL, permute=p) for p in (False, True)}
        rows += data.test(gap[False], ("H1", arm, "advantage, unpermuted", f"{arm} - MLP"), "difference", 1)
        rows += data.test(gap[True], ("H1", arm, "advantage, permuted", f"{arm} - MLP"), "equivalence")
        change = ("H1", arm, "change under permutation", "(permuted - unpermuted) advantage")
        rows += data.test((gap[True] - gap[False]).dropna(), change, "difference", -1)
    return rows, []


def variant_effect_vanishes(data: HypothesisData) -> tuple[Rows, Notes]:
    """H2: variant - reference differs unpermuted, is equivalent permuted, and shrinks toward 0."""
    if not data.permuted:
        return [], ["H2 not tested: the study does not have both permuted and unpermuted runs."]
    if not data.compared_arms:
        return [], [f"H2 not tested: needs the reference {data.reference} and another CNN variant."]
    rows = []
    for arm in data.compared_arms:
        eff = {p: data.diff(arm, data.reference_arm(arm), permute=p) for p in (False, True)}
        name = f"{arm} - {data.reference_arm(arm)}"
        rows += data.test(eff[False], ("H2", arm, "variant effect, unpermuted", name), "difference")
        rows += data.test(eff[True], ("H2", arm, "variant effect, permuted", name), "equivalence")
        toward_zero = -int(np.sign(eff[False].mean())) if len(eff[False]) else 0
        change = ("H2", arm, "change under permutation", "(permuted - unpermuted) effect")
        rows += data.test((eff[True] - eff[False]).dropna(), change, "difference", toward_zero)
    return rows, []


def _drop(data: HypothesisData, arm: str, shift: float) -> list:
    """Terms of an arm's accuracy lost under ``shift``: accuracy without shift - accuracy with it."""
    return [(1, data.at(arm=arm, location_shift=0.0)), (-1, data.at(arm=arm, location_shift=shift))]


def _minus(terms: list) -> list:
    return [(-coef, selection) for coef, selection in terms]


def _shift_label(data: HypothesisData, arm: str, shift: float) -> str:
    return arm if len(data.shifts) == 1 else f"{arm}, shift {shift:g}"


def cnn_loses_less_under_shift(data: HypothesisData) -> tuple[Rows, Notes]:
    """H3: every arm's drop under the location shift (descriptive), and CNN drop - MLP drop < 0."""
    if not data.shifts:
        return [], ["H3 not tested: the study does not have runs both with and without a location shift."]
    rows = []
    for shift in data.shifts:
        for arm in [*data.arms, *([MLP_MODEL] if data.has_mlp else [])]:
            labels = ("H3", _shift_label(data, arm, shift), "drop", "no shift - shift")
            rows += data.test(data.values(_drop(data, arm, shift)), labels, "estimate")
        for arm in data.arms if data.has_mlp else []:
            terms = _drop(data, arm, shift) + _minus(_drop(data, MLP_MODEL, shift))
            labels = ("H3", _shift_label(data, arm, shift), "drop difference", f"drop({arm}) - drop(MLP)")
            rows += data.test(data.values(terms), labels, "difference", -1)
    notes = (
        [] if data.has_mlp else ["H3 not tested: the study has no MLP runs (H3b compares the CNN variants)."]
    )
    return rows, notes


def variant_changes_shift_drop(data: HypothesisData) -> tuple[Rows, Notes]:
    """H3b: drop of a variant - drop of the reference differs from 0."""
    if not data.shifts:
        return [], ["H3b not tested: the study does not have runs both with and without a location shift."]
    rows = []
    for shift in data.shifts:
        for arm in data.compared_arms:
            ref = data.reference_arm(arm)
            terms = _drop(data, arm, shift) + _minus(_drop(data, ref, shift))
            labels = ("H3b", _shift_label(data, arm, shift), "drop difference", f"drop({arm}) - drop({ref})")
            rows += data.test(data.values(terms), labels, "difference")
    return rows, []


def pooling_more_shift_consistent(data: HypothesisData) -> tuple[Rows, Notes]:
    """H4: consistency of each pooling arm - consistency of each subsampling arm > 0, per shift mode."""
    pooling = [a for a in data.arms if is_pooling(_variant(a))]
    subsampling = [a for a in data.arms if _variant(a) in SUBSAMPLING]
    d = data.design
    rows, notes = [], []
    for mode, column in CONSISTENCY_MODES.items():
        measured = column in d and d.loc[~d["is_mlp"], column].notna().any()
        if not measured or not pooling or not subsampling:
            notes.append(
                f"H4 ({mode}) not tested: needs {column} measured for at least one pooling or "
                f"anti-aliased variant and one of {', '.join(SUBSAMPLING)}."
            )
            continue
        for p in pooling:
            for s in subsampling:
                if _model(p) == _model(s):
                    labels = ("H4", f"{p} vs {s}", mode, f"{p} - {s}")
                    rows += data.test(data.diff(p, s, column), labels, "difference", 1, column)
    return rows, notes


def edge_init_helps(data: HypothesisData) -> tuple[Rows, Notes]:
    """H5: edge-detector initialisation (frozen or trainable) - random initialisation > 0, per arm."""
    levels = set(data.design["init"])
    inits = [e for e in EDGE_INITS if e in levels]
    if not inits or "random" not in levels:
        return [], ["H5 not tested: the study does not have both random and edge-detector initialisations."]
    rows = []
    for arm in data.arms:
        for init in inits:
            terms = [(1, data.at(arm=arm, init=init)), (-1, data.at(arm=arm, init="random"))]
            rows += data.test(data.values(terms), ("H5", arm, init, f"{init} - random"), "difference", 1)
    return rows, []


@dataclass(frozen=True)
class Hypothesis:
    """One registered hypothesis: its key, its statement (shown before the numbers) and its test."""

    key: str
    statement: str
    test: Callable[[HypothesisData], tuple[Rows, Notes]]


HYPOTHESES: tuple[Hypothesis, ...] = (
    Hypothesis(
        "H1",
        "The CNN's accuracy advantage over the MLP disappears under pixel permutation (it is > 0 on "
        "unpermuted images, equivalent to 0 within the margin on permuted images, and shrinks).",
        mlp_advantage_vanishes,
    ),
    Hypothesis(
        "H2",
        "The downsampling-variant effect on accuracy disappears under pixel permutation (the variant "
        "differs from the reference on unpermuted images, is equivalent to it on permuted ones, and the "
        "difference shrinks).",
        variant_effect_vanishes,
    ),
    Hypothesis(
        "H3",
        "Under a train/test location shift, a CNN loses less accuracy than the MLP (drop = accuracy "
        "without shift - accuracy with shift; CNN drop - MLP drop < 0).",
        cnn_loses_less_under_shift,
    ),
    Hypothesis(
        "H3b",
        "The downsampling variant changes the accuracy lost under the location shift (drop of the "
        "variant - drop of the reference differs from 0).",
        variant_changes_shift_drop,
    ),
    Hypothesis(
        "H4",
        "Pooling and anti-aliased operators are more shift-consistent than strided subsampling "
        "(Zhang 2019): consistency(pooling) - consistency(subsampling) > 0, per shift mode.",
        pooling_more_shift_consistent,
    ),
    Hypothesis(
        "H5",
        "Initialising the first convolution with edge detectors (frozen or trainable) raises test "
        "accuracy over random initialisation, per variant.",
        edge_init_helps,
    ),
)
STATEMENTS = {h.key: h.statement for h in HYPOTHESES}


def row_verdict(row: Mapping, alpha: float, margin: float) -> str:
    """The verdict of one test row under the module's rules ("" for a descriptive row)."""
    if row["kind"] == "estimate":
        return ""
    if pd.isna(row["p_holm"]) or pd.isna(row["low"]):
        return UNRESOLVED
    significant = bool(row["p_holm"] < alpha)
    if row["kind"] == "equivalence":
        return equivalence_verdict(row["low"], row["high"], margin=margin, shown=significant)
    direction = row["direction"]
    shown = significant and (direction == 0 or np.sign(row["estimate"]) == direction)
    negligible = bool(-margin < row["low_eq"] and row["high_eq"] < margin)
    return directional_verdict(
        row["low"], row["high"], direction=direction, shown=shown, negligible=negligible
    )


def evaluate_hypotheses(
    runs: pd.DataFrame,
    *,
    reference: str = "avgpool",
    metric: str = "accuracy",
    margin: float = DEFAULT_MARGIN,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Test every hypothesis of :data:`HYPOTHESES` on the levels the study has; give each a verdict.

    Factors a hypothesis does not vary are held at their base level (:func:`analysis.design.base_levels`:
    unpermuted, no location shift, random init); data fractions are paired within a seed and averaged.

    Parameters
    ----------
    runs : DataFrame
        The ``runs`` table (any statuses; only ok runs are used).
    reference : str
        The variant H2, H3b are contrasted against.
    metric : str
        The accuracy metric of H1, H2, H3 and H5 (H4 uses the shift-consistency columns).
    margin : float
        Equivalence margin on the metric's scale (0.02 = 2 percentage points).
    n_boot, alpha, seed
        Bootstrap resamples (from 10 seeds on), 1 - confidence level, seed of every draw.

    Returns
    -------
    tuple
        ``(tests, hypotheses, notes)``: one row per test (columns :data:`TEST_COLUMNS`), one row per
        hypothesis x subject with the combined ``verdict`` and its ``claim``, and a sentence per
        hypothesis the study cannot test (naming the missing levels).
    """
    if not 0 < margin < 1:
        raise ValueError(f"margin {margin} must lie in (0, 1), e.g. 0.02 for 2 percentage points")
    data = HypothesisData(
        design=design_frame(ok_runs(runs, [metric])),
        base=base_levels(runs),
        metric=metric,
        reference=reference,
        margin=margin,
        alpha=alpha,
        n_boot=n_boot,
        seed=seed,
    )
    rows, notes = [], []
    for hypothesis in HYPOTHESES:
        new_rows, new_notes = hypothesis.test(data)
        rows += new_rows
        notes += new_notes
    tests = pd.DataFrame(rows, columns=TEST_COLUMNS)
    family = tests["in_family"].astype(bool).to_numpy()
    tests["p_holm"] = holm(np.where(family, tests["p_value"].to_numpy(dtype=float), np.nan))
    tests["verdict"] = [row_verdict(r, alpha, margin) for r in tests.to_dict("records")]
    verdicts = tests[family].groupby(["hypothesis", "subject"], sort=False)["verdict"]
    hyp = verdicts.agg(lambda v: combine_verdicts(list(v))).reset_index()
    hyp["claim"] = hyp["hypothesis"].map(STATEMENTS)
    return tests, hyp, notes
