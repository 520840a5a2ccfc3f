"""Inductive-bias hypotheses: MLP and permutation controls, location shift, shift consistency, edge init.

Each hypothesis is a set of *paired* contrasts. A contrast is a linear combination of design cells taken
within one seed and one data fraction (every other design coordinate is fixed by the contrast's
selections), then averaged over the data fractions both sides share, so each seed gives one value. The
interval over those per-seed values is a Student-t interval below 10 seeds and an expanded BCa bootstrap
over seeds from 10 on, as in :func:`analysis.bootstrap.paired_contrasts`.

Verdict rules (``alpha`` is 1 - confidence level, ``margin`` the equivalence margin, e.g. 0.02 = 2 pp):

* **directional difference** (the claim says the contrast is > 0 or < 0): *supported* when the
  Holm-adjusted two-sided paired t-test p < alpha and the estimate lies on the claimed side; *not
  supported* when the (1 - alpha) interval lies entirely on the other side of 0, or the (1 - 2 alpha)
  interval lies inside (-margin, margin) (no effect as large as the margin); *inconclusive* otherwise.
* **two-sided difference** (the claim says the contrast is not 0): as above without the side.
* **equivalence** (the claim says the contrast "disappears"): TOST with the margin: *supported* when the
  Holm-adjusted TOST p < alpha (for one test: the (1 - 2 alpha) interval inside (-margin, margin));
  *not supported* when the (1 - alpha) interval excludes 0; *inconclusive* otherwise.
* A hypothesis with several parts is *supported* when every part is, *not supported* when any part is,
  and *inconclusive* otherwise. Holm's correction runs over every test of the section that can make a
  hypothesis supported (the family), so the chance of any false "supported" stays below alpha.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.design import CONSISTENCY_MODES as CONSISTENCY_MODES
from analysis.design import MLP_MODEL, base_levels, design_frame, ok_runs
from analysis.design import base_runs as base_runs
from analysis.design import has_inductive_design as has_inductive_design
from analysis.stats.contrasts import contrast_test, per_seed_contrast
from analysis.stats.hypothesis_tests import holm

seed_values = per_seed_contrast

EDGE_INITS = ("edge_frozen", "edge_trainable")
SUBSAMPLING = ("strided", "subsample")  # downsampling that drops pixels without low-pass filtering
POOLING = ("avgpool", "maxpool", "lppool", "softpool", "mixedpool")  # plus the blurpool family
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
DEFAULT_MARGIN = 0.02

HYPOTHESES = {
    "H1": "The CNN's accuracy advantage over the MLP disappears under pixel permutation (it is > 0 on "
    "unpermuted images, equivalent to 0 within the margin on permuted images, and shrinks).",
    "H2": "The downsampling-variant effect on accuracy disappears under pixel permutation (the variant "
    "differs from the reference on unpermuted images, is equivalent to it on permuted ones, and the "
    "difference shrinks).",
    "H3": "Under a train/test location shift, a CNN loses less accuracy than the MLP (drop = accuracy "
    "without shift - accuracy with shift; CNN drop - MLP drop < 0).",
    "H3b": "The downsampling variant changes the accuracy lost under the location shift (drop of the "
    "variant - drop of the reference differs from 0).",
    "H4": "Pooling and anti-aliased operators are more shift-consistent than strided subsampling "
    "(Zhang 2019): consistency(pooling) - consistency(subsampling) > 0, per shift mode.",
    "H5": "Initialising the first convolution with edge detectors (frozen or trainable) raises test "
    "accuracy over random initialisation, per variant.",
}
TEST_COLUMNS = [
    "hypothesis", "subject", "part", "contrast", "metric", "kind", "direction", "in_family", "n_seeds",
    "estimate", "low", "high", "low_eq", "high_eq", "p_value", "p_holm", "method", "verdict",
]  # fmt: skip


def is_pooling(variant: str) -> bool:
    """Whether ``variant`` averages/pools or low-pass filters before dropping pixels (H4's first group)."""
    return variant in POOLING or variant.startswith(("blurpool", "maxblurpool"))


def contrast_row(
    values: pd.Series,
    *,
    hypothesis: str,
    subject: str,
    part: str,
    contrast: str,
    metric: str,
    kind: str,
    direction: int = 0,
    margin: float = DEFAULT_MARGIN,
    alpha: float = 0.05,
    n_boot: int = 10000,
    seed: int = 0,
) -> dict:
    """One test row: estimate, (1 - alpha) and (1 - 2 alpha) intervals and the p-value of ``kind``.

    ``kind`` is ``"difference"`` (paired t-test against 0), ``"equivalence"`` (TOST with ``margin``) or
    ``"estimate"`` (descriptive: interval only, not in the Holm family).
    """
    test = contrast_test(values, kind, margin=margin, alpha=alpha, n_boot=n_boot,
                         rng_key=(seed, "inductive", hypothesis, subject, part))  # fmt: skip
    return {
        "hypothesis": hypothesis, "subject": subject, "part": part, "contrast": contrast, "metric": metric,
        "kind": kind, "direction": int(direction), "in_family": kind != "estimate", **test,
        "p_holm": np.nan, "verdict": "",
    }  # fmt: skip


def row_verdict(row: Mapping, alpha: float, margin: float) -> str:
    """The verdict of one test row under the module's rules (see the module docstring)."""
    if row["kind"] == "estimate":
        return ""
    if pd.isna(row["p_holm"]) or pd.isna(row["low"]):
        return INCONCLUSIVE
    if row["kind"] == "equivalence":
        if row["p_holm"] < alpha:
            return SUPPORTED
        return NOT_SUPPORTED if row["low"] > 0 or row["high"] < 0 else INCONCLUSIVE
    direction = row["direction"]
    if row["p_holm"] < alpha and (direction == 0 or np.sign(row["estimate"]) == direction):
        return SUPPORTED
    opposite = (direction > 0 and row["high"] < 0) or (direction < 0 and row["low"] > 0)
    negligible = -margin < row["low_eq"] and row["high_eq"] < margin
    return NOT_SUPPORTED if opposite or negligible else INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """Every part supported -> supported; any part not supported -> not supported; else inconclusive."""
    verdicts = [v for v in verdicts if v]
    if verdicts and all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return NOT_SUPPORTED if NOT_SUPPORTED in verdicts else INCONCLUSIVE


def _reference_arm(arm: str, reference: str) -> str:
    return f"{arm.split(':')[0]}:{reference}" if ":" in arm else reference


def _model(arm: str) -> str:
    return arm.split(":")[0] if ":" in arm else ""


def _variant(arm: str) -> str:
    return arm.split(":")[-1]


def inductive_tests(
    runs: pd.DataFrame,
    *,
    reference: str = "avgpool",
    metric: str = "accuracy",
    margin: float = DEFAULT_MARGIN,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Test H1-H5 (see :data:`HYPOTHESES`) on the levels the study has; give each a verdict.

    Factors a hypothesis does not vary are held at their base level (:func:`base_levels`: unpermuted,
    no location shift, random init); data fractions are paired within a seed and averaged.

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
        hypothesis x subject with the combined ``verdict``, and a sentence per hypothesis the study
        cannot test (naming the missing levels).
    """
    if not 0 < margin < 1:
        raise ValueError(f"margin {margin} must lie in (0, 1), e.g. 0.02 for 2 percentage points")
    d = design_frame(ok_runs(runs, [metric]))
    base = base_levels(runs)
    arms = sorted(set(d.loc[~d["is_mlp"], "arm"]))
    kw = {"margin": margin, "alpha": alpha, "n_boot": n_boot, "seed": seed}
    rows: list[dict] = []
    notes: list[str] = []

    def at(**over) -> dict:
        return {**base, **over}

    def diff(a: str, b: str, column: str = metric, **over) -> pd.Series:
        return seed_values(d, column, [(1, at(arm=a, **over)), (-1, at(arm=b, **over))])

    def add(values: pd.Series, hypothesis: str, subject: str, part: str, contrast: str, kind: str,
            direction: int = 0, column: str = metric) -> None:  # fmt: skip
        if len(values.dropna()):
            rows.append(contrast_row(values, hypothesis=hypothesis, subject=subject, part=part,
                                     contrast=contrast, metric=column, kind=kind, direction=direction,
                                     **kw))  # fmt: skip

    permuted = set(d["permute"]) == {False, True}
    has_mlp = bool(d["is_mlp"].any())
    if not has_mlp:
        notes.append("H1 not tested: the study has no MLP runs.")
    elif not permuted:
        notes.append("H1 not tested: the study does not have both permuted and unpermuted runs.")
    else:
        for arm in arms:
            gap = {p: diff(arm, MLP_MODEL, permute=p) for p in (False, True)}
            add(gap[False], "H1", arm, "advantage, unpermuted", f"{arm} - MLP", "difference", 1)
            add(gap[True], "H1", arm, "advantage, permuted", f"{arm} - MLP", "equivalence")
            add((gap[True] - gap[False]).dropna(), "H1", arm, "change under permutation",
                "(permuted - unpermuted) advantage", "difference", -1)  # fmt: skip
    refs = {arm: _reference_arm(arm, reference) for arm in arms}
    others = [a for a in arms if a != refs[a] and refs[a] in arms]
    if not permuted:
        notes.append("H2 not tested: the study does not have both permuted and unpermuted runs.")
    elif not others:
        notes.append(f"H2 not tested: needs the reference {reference} and another CNN variant.")
    else:
        for arm in others:
            eff = {p: diff(arm, refs[arm], permute=p) for p in (False, True)}
            name = f"{arm} - {refs[arm]}"
            add(eff[False], "H2", arm, "variant effect, unpermuted", name, "difference")
            add(eff[True], "H2", arm, "variant effect, permuted", name, "equivalence")
            toward_zero = -int(np.sign(eff[False].mean())) if len(eff[False]) else 0
            add((eff[True] - eff[False]).dropna(), "H2", arm, "change under permutation",
                "(permuted - unpermuted) effect", "difference", toward_zero)  # fmt: skip
    shifts = sorted(set(d["location_shift"]) - {0.0})
    if not shifts or 0.0 not in set(d["location_shift"]):
        notes.append(
            "H3 and H3b not tested: the study does not have runs both with and without a location shift."
        )
    for s in shifts if 0.0 in set(d["location_shift"]) else []:
        label = (lambda a: a) if len(shifts) == 1 else (lambda a, s=s: f"{a}, shift {s:g}")  # noqa: E731

        def drop(arm: str, s: float = s) -> list:
            return [(1, at(arm=arm, location_shift=0.0)), (-1, at(arm=arm, location_shift=s))]

        for arm in [*arms, *([MLP_MODEL] if has_mlp else [])]:
            add(seed_values(d, metric, drop(arm)), "H3", label(arm), "drop", "no shift - shift", "estimate")
        if has_mlp:
            for arm in arms:
                add(seed_values(d, metric, drop(arm) + [(-c, sel) for c, sel in drop(MLP_MODEL)]), "H3",
                    label(arm), "drop difference", f"drop({arm}) - drop(MLP)", "difference", -1)  # fmt: skip
        for arm in others:
            values = seed_values(d, metric, drop(arm) + [(-c, sel) for c, sel in drop(refs[arm])])
            add(
                values, "H3b", label(arm), "drop difference", f"drop({arm}) - drop({refs[arm]})", "difference"
            )
    if shifts and 0.0 in set(d["location_shift"]) and not has_mlp:
        notes.append("H3 not tested: the study has no MLP runs (H3b compares the CNN variants).")
    pooling = [a for a in arms if is_pooling(_variant(a))]
    subsampling = [a for a in arms if _variant(a) in SUBSAMPLING]
    for mode, column in CONSISTENCY_MODES.items():
        measured = column in d and d.loc[~d["is_mlp"], column].notna().any()
        if not measured or not pooling or not subsampling:
            notes.append(f"H4 ({mode}) not tested: needs {column} measured for at least one pooling or "
                         f"anti-aliased variant and one of {', '.join(SUBSAMPLING)}.")  # fmt: skip
            continue
        for p in pooling:
            for s in subsampling:
                if _model(p) != _model(s):
                    continue
                add(diff(p, s, column), "H4", f"{p} vs {s}", mode,
                    f"{p} - {s}", "difference", 1, column)  # fmt: skip
    inits = [e for e in EDGE_INITS if e in set(d["init"])]
    if not inits or "random" not in set(d["init"]):
        notes.append("H5 not tested: the study does not have both random and edge-detector initialisations.")
    for arm in arms if "random" in set(d["init"]) else []:
        for e in inits:
            add(seed_values(d, metric, [(1, at(arm=arm, init=e)), (-1, at(arm=arm, init="random"))]), "H5",
                arm, e, f"{e} - random", "difference", 1)  # fmt: skip
    tests = pd.DataFrame(rows, columns=TEST_COLUMNS)
    family = tests["in_family"].astype(bool).to_numpy()
    tests["p_holm"] = holm(np.where(family, tests["p_value"].to_numpy(dtype=float), np.nan))
    tests["verdict"] = [row_verdict(r, alpha, margin) for r in tests.to_dict("records")]
    hyp = (
        tests[family]
        .groupby(["hypothesis", "subject"], sort=False)["verdict"]
        .agg(lambda v: combine(list(v)))
        .reset_index()
    )
    hyp["claim"] = hyp["hypothesis"].map(HYPOTHESES)
    return tests, hyp, notes
