"""The compression statistics, section, figure and claims on simulated studies with planted effects.

The simulated study plants, per variant and level, the expected accuracy change of a compressed model
against its parent, the latency and size ratios; :mod:`analysis.simulation.compression` states why the
planted values are the exact expectations. Coverage checks use 99 % intervals, so that the handful of
intervals checked together all cover with probability about 95 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import report
from analysis.design import base_runs, design_frame, has_inductive_design
from analysis.report.document import Settings, Study
from analysis.report.figures.compression import compression_tradeoff_plot
from analysis.report.sections import build_sections
from analysis.simulation import LevelPlan, simulate_compression_study
from analysis.stats.compression import (
    compression_changes,
    compression_equivalence,
    compression_interaction,
    compression_latency,
    compression_sizes,
    has_compression,
    prediction_flips,
)
from analysis.verdicts import VERDICTS, evaluate_claims
from analysis.verdicts.rules import CONTRADICTED, SUPPORTED, UNRESOLVED

LEVELS = {
    "prune_l1_50": LevelPlan(change=0.0, latency_ratio=1.0, size_ratio=1.0),
    "int8_static": LevelPlan(
        change={"avgpool": -0.01, "maxpool": -0.05},
        latency_ratio={"avgpool": 0.5, "maxpool": 0.6},
        size_ratio=0.25,
        unsupported=("strided",),
    ),
}
PLAN = {
    "variants": ("avgpool", "maxpool", "strided"),
    "seeds": 10,
    "fractions": (0.5, 1.0),
    "n_test": 300,
    "latency_repeats": 6,
    "latency_drift": 0.1,
    "seed": 5,
}
KW = {"n_boot": 2000, "alpha": 0.01, "seed": 0}


@pytest.fixture(scope="module")
def planted() -> dict:
    tables = simulate_compression_study(LEVELS, **PLAN)
    assert tables["truth"]["compression_clipped"] == 0, "a clipped flip rate makes the truth inexact"
    return tables


def covers(low: float, truth: float, high: float) -> bool:
    return bool(low - 1e-12 <= truth <= high + 1e-12)


def test_accuracy_changes_cover_the_planted_changes(planted):
    truth = planted["truth"]["compression"]
    ch = compression_changes(planted["runs"], "accuracy", **KW)
    pooled = ch[ch["data_fraction"].isna()]
    assert len(pooled) == 5  # avgpool, maxpool x 2 levels; strided x pruning only
    for r in pooled.itertuples():
        assert covers(r.low, truth[r.compression]["change"][r.arm], r.high), r
    per_fraction = ch[ch["data_fraction"].notna()]
    assert set(per_fraction["data_fraction"]) == {0.5, 1.0}
    big = pooled[(pooled["arm"] == "maxpool") & (pooled["compression"] == "int8_static")].iloc[0]
    assert big["high"] < 0 and big["p_holm"] < 0.01


def test_the_reordering_interaction_is_recovered(planted):
    truth = planted["truth"]["compression"]
    it = compression_interaction(planted["runs"], reference="avgpool", **KW)
    assert {(r.arm, r.compression) for r in it.itertuples()} == {
        ("maxpool", "int8_static"),
        ("maxpool", "prune_l1_50"),
        ("strided", "prune_l1_50"),
    }
    for r in it.itertuples():
        assert covers(r.low, truth[r.compression]["interaction"][r.arm], r.high), r
    reorder = it[it["compression"] == "int8_static"].iloc[0]
    assert reorder["high"] < 0  # -4 pp planted: maxpool loses more to int8 than avgpool


SHIFTS = {("avgpool", "int8_static"): 0.3, ("maxpool", "int8_static"): -0.2}


def test_criterion_and_auroc_shifts_cover_planted_shifts(planted):
    # every compressed run's criterion c (and AUROC, a tenth of it) is its own parent's plus a planted
    # shift per variant and level plus small run noise; the parents vary far more across seeds than
    # that noise, so only parent-matched pairs recover the shifts with tight intervals
    runs = planted["runs"].copy()
    rng = np.random.default_rng(11)
    by_id = runs.set_index("run_id")
    level = ((runs["compression"] != "none") & (runs["status"] == "ok")).to_numpy()
    keys = zip(runs.loc[level, "variant"], runs.loc[level, "compression"], strict=True)
    shift = np.array([SHIFTS.get(key, 0.0) for key in keys])
    for metric, scale in (("criterion_c", 1.0), ("auroc", 0.1)):
        parent = by_id.loc[runs.loc[level, "parent_run_id"], metric].to_numpy()
        runs.loc[level, metric] = parent + scale * shift + rng.normal(0.0, 0.02 * scale, int(level.sum()))
        ch = compression_changes(runs, metric, **KW)
        pooled = ch[ch["data_fraction"].isna()]
        assert len(pooled) == 5
        for r in pooled.itertuples():
            assert covers(r.low, scale * SHIFTS.get((r.arm, r.compression), 0.0), r.high), (metric, r)
        up = pooled[(pooled["arm"] == "avgpool") & (pooled["compression"] == "int8_static")].iloc[0]
        down = pooled[(pooled["arm"] == "maxpool") & (pooled["compression"] == "int8_static")].iloc[0]
        assert up["low"] > 0 and down["high"] < 0 and max(up["p_holm"], down["p_holm"]) < 0.01, metric


def test_equivalence_is_shown_for_no_change_and_contradicted_for_a_large_loss(planted):
    eq = compression_equivalence(planted["runs"], margin=0.02, n_boot=2000, seed=0).set_index(
        ["arm", "compression"]
    )
    for arm in ("avgpool", "maxpool", "strided"):
        row = eq.loc[(arm, "prune_l1_50")]
        assert -0.02 < row["low_eq"] and row["high_eq"] < 0.02 and row["p_holm"] < 0.05
    loss = eq.loc[("maxpool", "int8_static")]
    assert loss["high"] < -0.02 and loss["p_value"] > 0.5


def test_latency_ratios_cover_the_planted_ratios(planted):
    truth = planted["truth"]["compression"]
    lr = compression_latency(planted["latency"], planted["runs"], **KW)
    compressed = lr[lr["compression"] != "none"]
    assert set(compressed["batch_size"]) == {1, 32}
    assert not ((lr["arm"] == "strided") & (lr["compression"] == "int8_static")).any()
    for r in compressed.itertuples():
        assert covers(r.low, truth[r.compression]["latency_ratio"][r.arm], r.high), r
    assert (lr.loc[lr["compression"] == "none", "ratio"] == 1.0).all()


def test_size_ratios_are_the_planted_ones(planted):
    sz = compression_sizes(planted["runs"], **KW)
    size = sz[sz["measure"] == "size"].set_index(["arm", "compression"])["mean"]
    assert np.allclose(size.loc[("avgpool", "int8_static")], 0.25, atol=1e-4)
    assert np.allclose(size.loc[("strided", "prune_l1_50")], 1.0)
    gzip = sz[sz["measure"] == "gzip size"]
    assert ((gzip["low"] <= gzip["mean"]) & (gzip["mean"] <= gzip["high"])).all()


def test_flipped_decisions_cover_the_expected_share(planted):
    truth = planted["truth"]["compression"]
    fl = prediction_flips(planted["predictions"], planted["runs"], **KW)
    pooled = fl[fl["data_fraction"].isna()]
    for r in pooled.itertuples():
        assert covers(r.low, truth[r.compression]["flip_share"][r.arm], r.high), r
        assert r.n_tests == 20 and r.b + r.c > 0


def test_compressed_runs_never_reach_the_standard_design(planted):
    runs = planted["runs"]
    assert has_compression(runs)
    assert set(base_runs(runs)["compression"]) == {"none"}
    assert not has_inductive_design(runs)
    old = runs.drop(columns=["compression", "parent_run_id"])  # a study stored before compression
    d = design_frame(old)
    assert set(d["compression"]) == {"none"} and (d["parent_run_id"] == d["run_id"]).all()
    assert not has_compression(runs[runs["compression"] == "none"])


def _sections(tables: dict) -> dict:
    study = Study.of({k: v for k, v in tables.items() if isinstance(v, pd.DataFrame)}, "avgpool")
    settings = Settings("avgpool", ("accuracy", "auroc"), 200, 0.05, 0)
    sections, _ = build_sections(study, settings)
    return {section.title: section for section in sections}


def test_standard_sections_are_unchanged_by_compressed_runs():
    tables = simulate_compression_study(LEVELS, **{**PLAN, "seeds": 5, "n_test": 120})
    parents = tables["runs"]["compression"] == "none"
    ids = set(tables["runs"].loc[parents, "run_id"])
    uncompressed = {k: v[v["run_id"].isin(ids)] for k, v in tables.items() if isinstance(v, pd.DataFrame)}
    with_levels, without = _sections(tables), _sections(uncompressed)
    assert "Compression" in with_levels and "Compression" not in without
    assert set(with_levels) - {"Compression"} == set(without)
    for title, section in without.items():
        mine = with_levels[title]
        assert [t.name for t in mine.tables] == [t.name for t in section.tables], title
        for a, b in zip(mine.tables, section.tables, strict=True):
            if a.name == "claims":  # the compression claims are added rows; the others are the same
                a_raw, b_raw = a.raw.iloc[: len(b.raw) - 3], b.raw.iloc[: len(b.raw) - 3]
                pd.testing.assert_frame_equal(a_raw, b_raw)
                continue
            pd.testing.assert_frame_equal(a.raw.reset_index(drop=True), b.raw.reset_index(drop=True))
        if title != "Claims of single-run studies":
            assert mine.text == section.text, title


def test_claims_give_pruning_and_int8_verdicts(planted):
    tables = {k: planted[k] for k in ("runs", "latency")}
    cl = evaluate_claims(tables, n_boot=500, seed=0, margin=0.02).set_index("claim")
    assert set(cl["verdict"]) <= set(VERDICTS)
    assert cl.loc["pruning keeps or even improves accuracy", "verdict"] == SUPPORTED
    static = cl.loc["int8 (static) keeps accuracy while shrinking the model and speeding up CPU inference"]
    assert static["verdict"] == CONTRADICTED  # maxpool loses 5 pp: shown to differ
    dynamic = cl.loc["int8 (dynamic) keeps accuracy while shrinking the model and speeding up CPU inference"]
    assert dynamic["verdict"] == UNRESOLVED and "int8_dynamic" in dynamic["detail"]
    # the operator claims still see the uncompressed runs only
    alone = evaluate_claims({"runs": planted["runs"][planted["runs"]["compression"] == "none"]}, n_boot=500)
    pd.testing.assert_frame_equal(
        cl.reset_index().iloc[:2][["estimate", "low", "high"]], alone.iloc[:2][["estimate", "low", "high"]]
    )


def test_compression_claims_take_their_own_margin(planted):
    tables = {k: planted[k] for k in ("runs", "latency")}
    cl = evaluate_claims(tables, n_boot=200, seed=0, margin=0.01, compression_margin=0.03).set_index("claim")
    assert "margin 3 pp" in cl.loc["pruning keeps or even improves accuracy", "detail"]
    behaves = cl.loc[cl.index.str.contains("behaves like"), "detail"]
    assert len(behaves) == 1 and "+-0.01 " in behaves.iloc[0]


def test_the_tradeoff_figure_draws_into_given_axes():
    from matplotlib.figure import Figure

    frame = pd.DataFrame(
        {
            "arm": ["avgpool", "avgpool"],
            "compression": ["none", "int8_static"],
            "mean": [0.9, 0.88],
            "low": [0.88, 0.86],
            "high": [0.92, 0.9],
            "size_kb": [480.0, 130.0],
            "latency_ms": [0.8, np.nan],
        }
    )
    fig, axes = compression_tradeoff_plot(frame)
    assert len(axes) == 2 and len(axes[1].lines) >= 1
    own = Figure()
    given = own.subplots(1, 2)
    fig2, axes2 = compression_tradeoff_plot(frame, ax=given, palette={"avgpool": (0, 0, 1)})
    assert fig2 is own and list(axes2) == list(given)
    with pytest.raises(ValueError, match="at least one"):
        compression_tradeoff_plot(frame.iloc[:0])


def write_study(root: Path, study: dict) -> Path:
    for name in ("runs", "epochs", "predictions", "latency"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for run_id, part in study[name].groupby("run_id", sort=True):
            part.to_parquet(root / name / f"{run_id}.parquet", index=False)
    return root


@pytest.mark.slow
def test_the_report_has_a_compression_section(planted, tmp_path):
    root = write_study(tmp_path / "planted", planted)
    out = tmp_path / "report"
    assert (
        report.main(
            ["--results", str(root), "--out", str(out), "--bootstrap", "200", "--alpha", "0.01", "--quiet"]
        )
        == 0
    )
    text = (out / "report.md").read_text()
    assert "## Compression" in text and "unsupported for strided" in text
    names = {p.stem for p in (out / "tables").glob("*.csv")}
    expected = {"changes", "equivalence", "interaction", "latency", "sizes", "flips", "bias"}
    assert {f"compression_{n}" for n in expected} <= names
    assert (out / "figures" / "compression_tradeoff.png").is_file()
    claims = pd.read_csv(out / "tables" / "claims.csv")
    assert claims["claim"].str.contains("pruning keeps").any()
    # the section's table carries the planted effect (99 % interval): maxpool loses 5 pp to int8_static
    changes = pd.read_csv(out / "tables" / "compression_changes.csv")
    pooled = changes[changes["data_fraction"].isna() & (changes["metric"] == "accuracy")]
    big = pooled[(pooled["arm"] == "maxpool") & (pooled["compression"] == "int8_static")].iloc[0]
    assert (
        big["low"] <= planted["truth"]["compression"]["int8_static"]["change"]["maxpool"] <= big["high"] < 0
    )
