"""Unit tests of the report's building blocks: loading a study, formatting tables, drawing figures."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.load import LoadError, load_study, parquet_files, read_provenance
from analysis.report import figures, render
from analysis.report import format as fmt
from analysis.simulation import simulate_inductive_study, simulate_study
from downscalexr import schema


def write_study(root: Path, study: dict, tables_=("runs", "epochs", "predictions", "latency")) -> Path:
    """Write simulated tables in the grid's layout: ``<root>/<table>/<run_id>.parquet``."""
    for name in tables_:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for run_id, part in study[name].groupby("run_id", sort=True):
            part.to_parquet(folder / f"{run_id}.parquet", index=False)
    return root


@pytest.fixture(scope="module")
def small():
    return simulate_study(seeds=3, fractions=(0.25, 1.0), n_test=60, latency_repeats=3, seed=5)


# ---------------------------------------------------------------- load


def test_load_reads_every_table_and_ignores_leftovers(tmp_path, small):
    root = write_study(tmp_path / "study", small)
    runs_dir = root / "runs"
    first = sorted(runs_dir.glob("*.parquet"))[0]
    # leftovers of an interrupted or rejected write must not be read
    (runs_dir / "quarantine").mkdir()
    (runs_dir / "quarantine" / "x.parquet").write_bytes(first.read_bytes())
    (runs_dir / ".partial.parquet").write_bytes(b"garbage")
    (runs_dir / "cell.parquet.tmp").write_bytes(b"garbage")
    loaded = load_study(root)
    assert set(loaded) == set(schema.TABLES)
    for name in loaded:
        assert len(loaded[name]) == len(small.get(name, ()))
    assert len(parquet_files(runs_dir)) == len(small["runs"])


def test_load_missing_directory_and_no_runs(tmp_path):
    with pytest.raises(LoadError, match="does not exist"):
        load_study(tmp_path / "nope")
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    with pytest.raises(LoadError, match="no runs"):
        load_study(tmp_path / "empty")


def test_load_names_the_file_on_schema_mismatch(tmp_path, small):
    root = write_study(tmp_path / "study", small, tables_=("runs",))
    bad = sorted((root / "runs").glob("*.parquet"))[1]
    pd.read_parquet(bad).drop(columns=["accuracy"]).to_parquet(bad, index=False)
    with pytest.raises(LoadError, match=bad.name) as info:
        load_study(root)
    assert "accuracy" in str(info.value)


def test_load_rejects_one_seed_and_all_failed(tmp_path, small):
    runs = small["runs"]
    one = {"runs": runs[runs["seed"] == runs["seed"].min()]}
    with pytest.raises(LoadError, match="at least 2"):
        load_study(write_study(tmp_path / "one", one, tables_=("runs",)))
    failed = {"runs": runs.assign(status="failed")}
    with pytest.raises(LoadError, match="no successful runs"):
        load_study(write_study(tmp_path / "failed", failed, tables_=("runs",)))


def test_load_absent_tables_are_empty_with_schema_columns(tmp_path, small):
    loaded = load_study(write_study(tmp_path / "study", small, tables_=("runs",)))
    assert loaded["latency"].empty and "seconds" in loaded["latency"].columns
    assert loaded["predictions"].empty and "score" in loaded["predictions"].columns


def test_read_provenance(tmp_path):
    (tmp_path / "spec.yaml").write_text("name: tiny\nseeds: 3\n")
    (tmp_path / "environment.json").write_text(json.dumps({"cpu": "x86"}))
    prov = read_provenance(tmp_path)
    assert prov == {
        "spec": {"name": "tiny", "seeds": 3},
        "spec_file": "spec.yaml",
        "environment": {"cpu": "x86"},
    }
    (tmp_path / "environment.json").write_text("{not json")
    with pytest.raises(LoadError, match="environment.json"):
        read_provenance(tmp_path)
    assert read_provenance(tmp_path / "absent") == {"spec": None, "spec_file": None, "environment": None}


# ---------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("args", "percent", "expected"),
    [
        ((0.91234, 0.8951, 0.9287), True, "91.2 [89.5, 92.9]"),  # width 3.4 pp -> 1 decimal
        ((-0.031, -0.0404, -0.0218), True, "-3.1 [-4.0, -2.2]"),
        ((0.5, 0.4999, 0.5003), True, "50.000 [49.990, 50.030]"),  # width 0.04 pp -> 3 decimals
        ((123.4, 80.0, 170.0), False, "123 [80, 170]"),  # width 90 -> no decimals
        ((1.0, 1.0, 1.0), False, "1.000 [1.000, 1.000]"),  # zero width: fixed 3 decimals
        ((float("nan"), 0.1, 0.2), False, "n/a"),
        ((0.25, float("nan"), float("nan")), True, "25.0"),
    ],
)
def test_format_interval_known_answers(args, percent, expected):
    assert fmt.format_interval(*args, percent=percent) == expected


def test_format_p_and_values():
    assert fmt.format_p(0.00001) == "<0.001"
    assert fmt.format_p(0.0456) == "0.046"
    assert fmt.format_p(None) == "n/a"
    assert fmt.format_value(0.01234) == "0.0123"
    assert fmt.format_value(-0.0001, decimals=2) == "0.00"  # no "-0.00"


def test_latex_escape_every_special_character():
    text = render.latex_escape(r"a_b 5% x&y #1 $2 {c} ~d ^e \f")
    assert text == (r"a\_b 5\% x\&y \#1 \$2 \{c\} \textasciitilde{}d \textasciicircum{}e \textbackslash{}f")
    assert render.latex_escape("-3.1 [-4.0, 2.2] well-known") == "$-$3.1 [$-$4.0, 2.2] well-known"


def test_to_latex_is_a_booktabs_table_with_caption_and_label():
    frame = pd.DataFrame({"data_fraction": ["0.5"], "n_seeds": [10], "accuracy (pp)": ["91.2 [89.5, 92.9]"]})
    tex = render.to_latex(frame, caption="Accuracy & 95% CI", label="tab:acc", note="Holm_corrected")
    assert tex.index("\\toprule") < tex.index("\\midrule") < tex.index("\\bottomrule")
    assert "\\caption{Accuracy \\& 95\\% CI}" in tex and "\\label{tab:acc}" in tex
    assert "data\\_fraction & n\\_seeds & accuracy (pp) \\\\" in tex
    assert "\\begin{tabular}{lrl}" in tex
    assert "Holm\\_corrected" in tex
    assert "\\documentclass" not in tex  # standalone piece for \input, not a document
    with pytest.raises(ValueError, match="label"):
        render.to_latex(frame, caption="x", label="tab acc")


def test_to_markdown_pipe_table():
    frame = pd.DataFrame({"claim": ["a | b"], "value": [0.123456], "n": [3], "missing": [None]})
    lines = render.to_markdown(frame).splitlines()
    assert lines[0] == "| claim | value | n | missing |"
    assert lines[1] == "| --- | --- | --- | --- |"
    assert lines[2] == "| a \\| b | 0.123 | 3 | n/a |"


# ---------------------------------------------------------------- figures


def _overlapping_text(fig: Figure) -> list[tuple[str, str]]:
    """Pairs of tick labels on one axis, or of titles and legends, whose boxes intersect once drawn."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()

    def boxes(artists):
        return [(str(a), a.get_window_extent(renderer)) for a in artists if a.get_visible()]

    groups = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):  # major and minor labels together (log axes label minor ticks)
            groups.append(boxes(t for t in axis.get_ticklabels(which="both") if t.get_text()))
    top = [ax.title for ax in fig.axes if ax.get_title()] + list(fig.legends)
    if fig._suptitle is not None:
        top.append(fig._suptitle)
    groups.append(boxes(top))
    return [
        (ta, tb)
        for group in groups
        for (ta, a), (tb, b) in itertools.combinations(group, 2)
        if a.overlaps(b) and a.width > 0 and b.width > 0
    ]


def _summary(variants=("avgpool", "maxpool"), fractions=(0.25, 1.0), **extra):
    rows = [
        {
            "variant": v,
            "data_fraction": f,
            "mean": 0.8 + 0.05 * i,
            "low": 0.78 + 0.05 * i,
            "high": 0.82 + 0.05 * i,
        }
        for i, (v, f) in enumerate(itertools.product(variants, fractions))
    ]
    return pd.DataFrame(rows).assign(**extra)


def test_every_figure_returns_fig_and_axes_without_overlapping_ticks(small):
    runs, preds = small["runs"], small["predictions"]
    contrasts = pd.DataFrame(
        [
            {
                "metric": m,
                "variant": "maxpool",
                "reference": "avgpool",
                "data_fraction": f,
                "diff": -0.02,
                "low": -0.03,
                "high": -0.01,
            }
            for m in ("accuracy", "auroc")
            for f in (0.25, 1.0, np.nan)
        ]
    )
    bias = pd.concat([_summary(measure=m) for m in ("fpr", "fnr")], ignore_index=True)
    fractions = (0.05, 0.1, 0.25, 0.5, 1.0)  # the default design: 200 .. 4000 examples on a log axis
    curve = _summary(fractions=fractions).rename(columns={"data_fraction": "n_train"})
    curve["n_train"] *= 4000
    trade = _summary(fractions=(1.0,)).assign(
        median_ms=[2.0, 2.2], params=[6.1e4, 6.1e4], throughput=[900.0, 800.0]
    )
    ratios = pd.DataFrame(
        {
            "variant": ["avgpool", "maxpool"] * 2,
            "reference": "avgpool",
            "batch_size": [1, 1, 32, 32],
            "memory_format": "contiguous",
            "median_ms": 1.0,
            "ratio": [1.0, 1.05, 1.0, 1.04],
            "low": [1.0, 1.02, 1.0, 1.01],
            "high": [1.0, 1.08, 1.0, 1.07],
        }
    )
    made = [
        figures.learning_curves(curve, metric="accuracy", reference="avgpool"),
        figures.forest_plot(contrasts),
        figures.bias_plot(bias, reference="avgpool"),
        figures.confusion_matrices(runs, reference="avgpool"),
        figures.roc_pr_curves(preds, runs, reference="avgpool"),
        figures.tradeoff_plot(trade),
        figures.generalization_gap_plot(_summary()),
        figures.latency_ratio_plot(ratios),
    ]
    for fig, ax in made:
        assert isinstance(fig, Figure)
        for axis in np.atleast_1d(ax):
            assert axis.get_xlabel()  # every panel says what its x axis is
        assert _overlapping_text(fig) == []


def test_roc_band_contains_mean_and_is_monotone(small):
    fig, (ax_roc, _) = figures.roc_pr_curves(small["predictions"], small["runs"])
    for line in ax_roc.get_lines()[:-1]:  # the last line is the chance diagonal
        y = line.get_ydata()
        assert np.all(np.diff(y) >= -1e-12) and 0 <= y.min() and y.max() <= 1


def test_tradeoff_plot_needs_a_cost_column():
    with pytest.raises(ValueError, match="median_ms"):
        figures.tradeoff_plot(_summary(fractions=(1.0,)))


def test_figures_draw_into_the_callers_axes_in_the_callers_colours(small):
    palette = {"avgpool": (0.0, 0.0, 1.0), "maxpool": (1.0, 0.0, 0.0), "unused": (0.5, 0.5, 0.5)}
    fig = Figure()
    ax = fig.subplots()
    curve = _summary(fractions=(0.05, 1.0)).rename(columns={"data_fraction": "n_train"})
    curve["n_train"] *= 4000
    got_fig, got_ax = figures.learning_curves(curve, metric="accuracy", ax=ax, palette=palette)
    assert got_fig is fig and got_ax is ax
    colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
    assert colours == {"avgpool": palette["avgpool"], "maxpool": palette["maxpool"]}
    with pytest.raises(ValueError, match="maxpool"):  # a variant without a colour is named
        figures.learning_curves(curve, metric="accuracy", palette={"avgpool": (0.0, 0.0, 1.0)})
    with pytest.raises(ValueError, match="2 axes"):  # ROC and PR need two panels
        figures.roc_pr_curves(small["predictions"], small["runs"], ax=ax)


def test_one_palette_per_study_puts_the_reference_first_and_covers_every_arm(small):
    from analysis.report.document import Study

    study = Study.of(small, "maxpool")
    assert list(study.palette)[0] == "maxpool"
    assert set(study.palette) == set(small["runs"]["variant"])
    other = Study.of(small, "maxpool")
    assert study.palette == other.palette  # the same study always gets the same colours
    inductive = simulate_inductive_study(variants=("avgpool", "strided"), fractions=(1.0,), seeds=2)
    assert list(Study.of(inductive, "avgpool").palette) == ["avgpool", "mlp", "strided"]  # arms, not "none"
