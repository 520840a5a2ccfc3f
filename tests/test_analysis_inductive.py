"""Inductive-bias statistics, reliability diagrams and kernel summaries against planted effects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.weightstats import ttost_paired

from analysis import design, report
from analysis.simulation import simulate_inductive_study, simulate_study
from analysis.simulation.inductive import planted_kernel
from analysis.stats import calibration as reliability
from analysis.stats import kernels
from analysis.stats.contrasts import contrast_test, per_seed_contrast
from analysis.verdicts import hypotheses, rules
from downscalexr import schema
from downscalexr.metrics import expected_calibration_error as metrics_ece

FAST = {"n_boot": 1000, "seed": 0}
SMALL = {"variants": ("avgpool", "maxpool"), "fractions": (1.0,), "seeds": 10, "n_test": 1000}


def verdicts(runs: pd.DataFrame, **kw) -> dict[tuple[str, str], str]:
    _, hyp, _ = hypotheses.evaluate_hypotheses(runs, **FAST, **kw)
    return dict(zip(zip(hyp["hypothesis"], hyp["subject"], strict=True), hyp["verdict"], strict=True))


# ------------------------------------------------------------------ hypotheses against planted effects


def test_h1_supported_when_the_gap_vanishes_under_permutation():
    study = simulate_inductive_study(**SMALL, mlp_gap=(0.10, 0.0))
    tests, hyp, _ = hypotheses.evaluate_hypotheses(study["runs"], **FAST)
    h1 = tests[tests["hypothesis"] == "H1"].set_index(["subject", "part"])
    for arm in ("avgpool", "maxpool"):
        assert abs(h1.loc[(arm, "advantage, unpermuted"), "estimate"] - 0.10) < 0.015
        assert abs(h1.loc[(arm, "advantage, permuted"), "estimate"]) < 0.015
    assert verdicts(study["runs"])[("H1", "avgpool")] == rules.SUPPORTED
    assert verdicts(study["runs"])[("H1", "maxpool")] == rules.SUPPORTED


def test_h1_not_supported_when_the_gap_survives_permutation():
    study = simulate_inductive_study(**SMALL, mlp_gap=(0.10, 0.10))
    v = verdicts(study["runs"])
    assert v[("H1", "avgpool")] == v[("H1", "maxpool")] == rules.CONTRADICTED  # a gap where none should be


def test_h2_follows_the_planted_variant_effect():
    vanishes = simulate_inductive_study(**SMALL, effects={False: {"maxpool": -0.06}, True: {}})
    stays = simulate_inductive_study(**SMALL, effects={False: {"maxpool": -0.06}, True: {"maxpool": -0.06}})
    assert verdicts(vanishes["runs"])[("H2", "maxpool")] == rules.SUPPORTED
    assert verdicts(stays["runs"])[("H2", "maxpool")] == rules.CONTRADICTED


def test_h3_recovers_the_planted_drops():
    drops = {"mlp": 0.15, "avgpool": 0.03, "maxpool": 0.08}
    study = simulate_inductive_study(
        **SMALL, permute=(False,), location_shifts=(np.nan, 0.5), shift_drop=drops
    )
    tests, hyp, notes = hypotheses.evaluate_hypotheses(study["runs"], **FAST)
    rows = tests.set_index(["hypothesis", "subject", "part"])
    for arm, drop in drops.items():
        r = rows.loc[("H3", arm, "drop")]
        assert abs(r["estimate"] - drop) < 0.015 and r["low"] < r["estimate"] < r["high"]
    assert abs(rows.loc[("H3", "avgpool", "drop difference"), "estimate"] - (0.03 - 0.15)) < 0.015
    v = verdicts(study["runs"])
    assert v[("H3", "avgpool")] == v[("H3", "maxpool")] == rules.SUPPORTED
    assert v[("H3b", "maxpool")] == rules.SUPPORTED  # maxpool loses 5 pp more than avgpool
    assert any(n.startswith("H1 not tested") for n in notes)  # no permuted level


def test_h3b_equal_drops_are_not_called_different():
    study = simulate_inductive_study(
        **SMALL,
        permute=(False,),
        location_shifts=(np.nan, 0.5),
        shift_drop={"mlp": 0.15, "avgpool": 0.05, "maxpool": 0.05},
    )
    assert verdicts(study["runs"])[("H3b", "maxpool")] != rules.SUPPORTED


def test_h4_orders_pooling_against_subsampling():
    kw = {**SMALL, "variants": ("avgpool", "strided"), "include_mlp": False, "permute": (False,)}
    better = simulate_inductive_study(**kw, consistency={"avgpool": (0.95, 0.92), "strided": (0.85, 0.80)})
    worse = simulate_inductive_study(**kw, consistency={"avgpool": (0.85, 0.80), "strided": (0.95, 0.92)})
    tests, _, _ = hypotheses.evaluate_hypotheses(better["runs"], **FAST)
    h4 = tests[tests["hypothesis"] == "H4"].set_index("part")
    assert abs(h4.loc["circular", "estimate"] - 0.10) < 0.01 and abs(h4.loc["pad", "estimate"] - 0.12) < 0.01
    assert verdicts(better["runs"])[("H4", "avgpool vs strided")] == rules.SUPPORTED
    assert verdicts(worse["runs"])[("H4", "avgpool vs strided")] == rules.REVERSED


def test_h5_edge_initialisation():
    kw = {**SMALL, "include_mlp": False, "permute": (False,), "inits": ("random", "edge_frozen")}
    helps = simulate_inductive_study(**kw, init_effect={"edge_frozen": 0.05})
    neutral = simulate_inductive_study(**kw)
    assert verdicts(helps["runs"])[("H5", "avgpool")] == rules.SUPPORTED
    assert verdicts(neutral["runs"])[("H5", "avgpool")] == rules.CONTRADICTED  # 90 % interval in +-2 pp


def test_default_study_has_no_inductive_design_and_keeps_every_run():
    runs = simulate_study(seeds=3, fractions=(1.0,))["runs"]
    assert not design.has_inductive_design(runs)
    assert len(design.base_runs(runs)) == len(runs)
    tests, hyp, notes = hypotheses.evaluate_hypotheses(runs, **FAST)
    assert tests.empty and hyp.empty
    assert any("no MLP runs" in n for n in notes) and any(n.startswith("H5 not tested") for n in notes)


def test_base_runs_drop_mlp_and_non_base_levels():
    study = simulate_inductive_study(**{**SMALL, "seeds": 2}, location_shifts=(np.nan, 0.5))
    base = design.base_runs(study["runs"])
    assert (
        set(base["model"]) == {"lenet"} and not base["permute"].any() and base["location_shift"].isna().all()
    )
    assert len(base) == 2 * 2  # variants x seeds


def test_base_runs_keep_one_cnn_model_when_a_study_trains_several():
    # two architectures with opposite variant effects: pooling them would show no effect at all
    runs = simulate_study(seeds=3, fractions=(1.0,))["runs"]
    other = runs.assign(model="resnet8", run_id=runs["run_id"] + "-r")
    both = pd.concat([other, runs], ignore_index=True)
    assert design.primary_model(both) == "lenet"
    base = design.base_runs(both)
    assert set(base["model"]) == {"lenet"} and len(base) == len(runs)
    # a failed run does not change the choice; a model with more runs wins over the alphabetical tie-break
    with_failed = pd.concat([other, runs.assign(status="failed")], ignore_index=True)
    assert design.primary_model(with_failed) == "lenet"
    assert design.primary_model(pd.concat([other, runs.iloc[1:]], ignore_index=True)) == "resnet8"


# ------------------------------------------------------------------ known answers of the building blocks


def test_seed_values_pairs_within_seed_and_fraction():
    frame = pd.DataFrame(
        {
            "seed": [0, 0, 0, 0, 1, 1, 1],
            "data_fraction": [0.5, 1.0, 0.5, 1.0, 0.5, 1.0, 0.5],
            "arm": ["a", "a", "b", "b", "a", "a", "b"],
            "accuracy": [0.8, 0.9, 0.7, 0.6, 0.5, 0.6, 0.2],
        }
    )
    got = per_seed_contrast(frame, "accuracy", [(1, {"arm": "a"}), (-1, {"arm": "b"})])
    # seed 0: mean(0.1, 0.3) = 0.2; seed 1 has only fraction 0.5 in both arms: 0.3
    assert got.to_dict() == pytest.approx({0: 0.2, 1: 0.3})


def test_tost_p_value_matches_statsmodels():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.8, 0.01, 8), rng.normal(0.795, 0.01, 8)
    row = contrast_test(pd.Series(a - b), "equivalence", margin=0.02, n_boot=200)
    assert row["p_value"] == pytest.approx(ttost_paired(a, b, -0.02, 0.02)[0], rel=1e-9)
    assert row["low"] <= row["low_eq"] <= row["estimate"] <= row["high_eq"] <= row["high"]


def test_row_verdict_rules():
    base = {
        "kind": "difference",
        "direction": 1,
        "estimate": 0.05,
        "low": 0.01,
        "high": 0.09,
        "low_eq": 0.02,
        "high_eq": 0.08,
        "p_holm": 0.01,
    }
    assert hypotheses.row_verdict(base, 0.05, 0.02) == rules.SUPPORTED
    assert hypotheses.row_verdict({**base, "p_holm": 0.2}, 0.05, 0.02) == rules.UNRESOLVED
    wrong_side = {**base, "estimate": -0.05, "low": -0.09, "high": -0.01, "low_eq": -0.08, "high_eq": -0.02}
    assert hypotheses.row_verdict(wrong_side, 0.05, 0.02) == rules.REVERSED
    two_sided = {**wrong_side, "direction": 0}  # a two-sided claim is shown either way, never reversed
    assert hypotheses.row_verdict(two_sided, 0.05, 0.02) == rules.SUPPORTED
    tiny = {
        **base,
        "estimate": 0.0,
        "low": -0.02,
        "high": 0.02,
        "low_eq": -0.01,
        "high_eq": 0.01,
        "p_holm": 1.0,
    }
    assert hypotheses.row_verdict(tiny, 0.05, 0.02) == rules.CONTRADICTED  # no effect as large as the margin
    equiv = {**tiny, "kind": "equivalence", "direction": 0, "p_holm": 0.01}
    assert hypotheses.row_verdict(equiv, 0.05, 0.02) == rules.SUPPORTED
    shown_difference = {**base, "kind": "equivalence", "p_holm": 0.9}  # interval [1, 9] pp excludes 0
    assert hypotheses.row_verdict(shown_difference, 0.05, 0.02) == rules.CONTRADICTED
    assert hypotheses.row_verdict({**base, "kind": "estimate"}, 0.05, 0.02) == ""
    assert hypotheses.row_verdict({**base, "p_holm": np.nan}, 0.05, 0.02) == rules.UNRESOLVED


def test_equal_seeds_give_equal_tests():
    runs = simulate_inductive_study(**{**SMALL, "seeds": 12})["runs"]
    first, _, _ = hypotheses.evaluate_hypotheses(runs, n_boot=300, seed=4)
    again, _, _ = hypotheses.evaluate_hypotheses(runs, n_boot=300, seed=4)
    pd.testing.assert_frame_equal(first, again)
    assert (first["method"] == "bca").all()


# ------------------------------------------------------------------ reliability diagrams


def _runs(ids, variant="a"):
    return pd.DataFrame({"run_id": ids, "status": "ok", "variant": variant, "seed": range(len(ids))})


def test_reliability_binary_hand_example():
    preds = pd.DataFrame(
        {
            "run_id": "r",
            "example_id": range(6),
            "label": [0, 1, 0, 1, 1, 0],
            "class_index": 1,
            "score": [0.05, 0.15, 0.12, 0.95, 0.85, 0.91],
        }
    )
    curve = reliability.reliability_curve(preds, _runs(["r"]), n_bins=10, n_boot=100).set_index("bin")
    assert list(curve.index) == [0, 1, 8, 9]
    assert curve["count"].tolist() == [1, 2, 1, 2]
    assert curve["frequency"].tolist() == pytest.approx([0.0, 0.5, 1.0, 0.5])
    assert curve["confidence"].tolist() == pytest.approx([0.05, 0.135, 0.85, 0.93])
    assert curve["low"].isna().all()  # one run: no band
    ece = reliability.expected_calibration_error(curve)
    assert ece == pytest.approx(metrics_ece(preds["label"].to_numpy(), preds["score"].to_numpy(), 10))


def test_reliability_multiclass_uses_top_label():
    scores = [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1]]
    preds = pd.DataFrame(
        {
            "run_id": "r",
            "example_id": np.repeat([0, 1], 3),
            "label": 0,
            "class_index": np.tile([0, 1, 2], 2),
            "score": np.ravel(scores),
        }
    )
    curve = reliability.reliability_curve(preds, _runs(["r"]), n_bins=10, n_boot=100).set_index("bin")
    assert curve["confidence"].to_dict() == pytest.approx({6: 0.6, 7: 0.7})
    assert curve["frequency"].to_dict() == {6: 0.0, 7: 1.0}  # the 0.6 top label is class 1, not the label


def test_calibrated_scores_lie_on_the_diagonal_and_overconfident_ones_do_not():
    study = simulate_inductive_study(
        variants=("avgpool",),
        include_mlp=False,
        permute=(False,),
        fractions=(1.0,),
        seeds=8,
        n_test=1000,
        example_rho=0.3,
        seed=11,
    )
    runs, preds = study["runs"], study["predictions"]
    curve = reliability.reliability_curve(preds, runs, n_bins=10, n_boot=1000)
    curve = curve[curve["count"] >= 200]
    covered = (curve["low"] <= curve["confidence"]) & (curve["confidence"] <= curve["high"])
    assert covered.mean() >= 0.8 and len(curve) >= 8
    logit = np.log(preds["score"] / (1 - preds["score"]))
    over = preds.assign(score=1 / (1 + np.exp(-3 * logit)))  # 3x the logit: overconfident
    curve_over = reliability.reliability_curve(over, runs, n_bins=10, n_boot=1000)
    curve_over = curve_over[curve_over["count"] >= 200]
    hit = (curve_over["low"] <= curve_over["confidence"]) & (curve_over["confidence"] <= curve_over["high"])
    assert hit.mean() < 0.5
    assert reliability.expected_calibration_error(curve_over) > 3 * reliability.expected_calibration_error(
        curve
    )


# ------------------------------------------------------------------ kernels


def test_high_frequency_fraction_orders_planted_kernels():
    rng = np.random.default_rng(0)
    hf = {
        kind: kernels.high_frequency_fraction(np.array([planted_kernel(kind, 5, rng) for _ in range(40)]))
        for kind in ("lowpass", "random", "highpass")
    }
    assert hf["lowpass"] < 0.1 < hf["random"] < hf["highpass"]
    assert 0.7 < hf["random"] < 0.9  # white noise: the share of frequencies above the cutoff


def test_radial_power_is_flat_for_white_noise_and_falls_for_low_pass():
    rng = np.random.default_rng(1)
    _, white = kernels.radial_power(rng.normal(size=(4000, 5, 5)))
    assert np.allclose(white, 1.0, atol=0.1)
    _, low = kernels.radial_power(np.array([planted_kernel("lowpass", 5, rng) for _ in range(50)]))
    assert low[0] > 5 and low[-1] < 0.1 and np.all(np.diff(low[:4]) < 0)


def test_kernel_summaries_ignore_channel_order_sign_and_scale():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(6, 1, 5, 5))
    shuffled = -3.0 * w[rng.permutation(6)]

    def table(weights, run_id):
        o, i, r, c = np.meshgrid(*(np.arange(s) for s in weights.shape), indexing="ij")
        return pd.DataFrame(
            {
                "run_id": run_id,
                "layer": "conv1",
                "out_channel": o.ravel(),
                "in_channel": i.ravel(),
                "row": r.ravel(),
                "col": c.ravel(),
                "value": weights.ravel(),
            }
        )

    runs = pd.DataFrame(
        {"run_id": ["x", "y"], "status": "ok", "seed": [0, 1], "variant": ["a", "b"], "permute": False}
    )
    ks = kernels.kernel_summaries(pd.concat([table(w, "x"), table(shuffled, "y")]), runs)
    per_run = ks["per_run"].set_index("variant")
    assert per_run.loc["a", "high_frequency_fraction"] == pytest.approx(
        per_run.loc["b", "high_frequency_fraction"]
    )
    np.testing.assert_allclose(ks["mean_abs"][("a", False)], ks["mean_abs"][("b", False)])
    with pytest.raises(ValueError, match="do not fill"):
        kernels.kernel_stacks(table(w, "x").iloc[:-1])


# ------------------------------------------------------------------ the report end to end


def _write(root: Path, study: dict) -> Path:
    for name in ("runs", "epochs", "predictions", "latency", "kernels"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for run_id, part in study[name].groupby("run_id", sort=True):
            part.to_parquet(root / name / f"{run_id}.parquet", index=False)
    return root


@pytest.mark.slow
def test_report_writes_the_inductive_section(tmp_path):
    study = simulate_inductive_study(
        variants=("avgpool", "strided"),
        fractions=(1.0,),
        seeds=4,
        n_test=300,
        consistency={"avgpool": (0.95, 0.9), "strided": (0.85, 0.8)},
        kernel_kind={"strided": "highpass"},
    )
    out = tmp_path / "report"
    args = ["--results", str(_write(tmp_path / "results", study)), "--out", str(out), "--bootstrap", "200"]
    assert report.main([*args, "--quiet"]) == 0
    md = (out / "report.md").read_text()
    section = md[md.index("## Inductive bias") :]
    assert section.index("H1: The CNN's") < section.index("**Inductive-bias hypotheses and verdicts**")
    assert "+-2 percentage points" in section and "## Calibration" in md
    for name in (
        "inductive_hypotheses",
        "inductive_tests",
        "shift_consistency",
        "shift_consistency_contrasts",
        "kernels",
        "ece",
        "reliability",
    ):
        for ext in ("csv", "tex", "parquet"):
            assert (out / "tables" / f"{name}.{ext}").is_file(), (name, ext)
    for name in (
        "reliability",
        "inductive_tests",
        "kernels_mean_abs",
        "kernels_spectrum",
        "shift_consistency",
    ):
        assert (out / "figures" / f"{name}.png").is_file() and (out / "figures" / f"{name}.pdf").is_file()
    hyp = pd.read_csv(out / "tables" / "inductive_hypotheses.csv")
    assert set(hyp.loc[hyp["hypothesis"] == "H1", "verdict"]) <= {rules.SUPPORTED, rules.UNRESOLVED}
    metrics = pd.read_csv(out / "tables" / "metrics.csv")
    assert set(metrics["variant"]) == {"avgpool", "strided"}  # MLP and permuted runs stay out of it
    with pytest.raises(SystemExit) as exc:
        report.main([*args, "--margin", "1.5"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_default_study_report_has_calibration_but_no_inductive_section(tmp_path):
    study = simulate_study(seeds=3, fractions=(0.5, 1.0), n_test=100, latency_repeats=3)
    out = tmp_path / "report"
    root = _write(tmp_path / "results", {**study, "kernels": schema.empty("kernels")})
    assert report.main(["--results", str(root), "--out", str(out), "--bootstrap", "200", "--quiet"]) == 0
    md = (out / "report.md").read_text()
    assert "## Calibration" in md and "## Inductive bias" not in md
    assert (out / "figures" / "reliability.png").is_file()
