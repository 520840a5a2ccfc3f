"""The issue-18 report sections (training curves, error analysis, dilution, saliency) on simulated studies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis import report
from analysis.report.document import Settings, Study
from analysis.report.render import render_latex, render_markdown
from analysis.report.sections import dilution, errors, saliency, training_curves
from analysis.report.summary import dilution_findings
from analysis.report.write import write_outputs
from analysis.simulation import simulate_multiclass_study, simulate_saliency, simulate_study
from analysis.verdicts.dilution import evaluate_dilution

SETTINGS = Settings("avgpool", ("accuracy",), 200, 0.05, 0)
MODULES = {"training curves": training_curves, "errors": errors, "dilution": dilution, "saliency": saliency}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """Two models x three variants x two fractions x 5 seeds on a 4-class task, with saliency tables."""
    study = simulate_multiclass_study(
        models=("lenet", "resnet8"),
        fractions=(0.5, 1.0),
        seeds=5,
        n_test=120,
        effects={"lenet:maxpool": -0.08, "resnet8:maxpool": -0.01},
        n_failed=1,
        seed=21,
    )
    sal = simulate_saliency(study["runs"], localisation={"lenet:maxpool": 0.65}, n_images=5, seed=22)
    return {k: v for k, v in study.items() if k != "truth"} | {
        k: sal[k] for k in ("saliency", "saliency_maps")
    }


@pytest.fixture(scope="module")
def built(tables) -> dict:
    study = Study.of(tables, SETTINGS.reference)
    out = {}
    for name, module in MODULES.items():
        assert module.applies(study), name
        out[name] = module.build(study, SETTINGS)
    return out


def test_every_section_renders_markdown_latex_and_its_files(built, tmp_path):
    sections = [section for section, _ in built.values()]
    md = render_markdown("multi-class", ["a finding"], sections, ["provenance"])
    tex = render_latex("multi-class", ["a finding"], sections, ["provenance"], "png")
    target = tmp_path / "report"
    write_outputs(target, {"report.md": md, "report.tex": tex}, sections, {"tex"})
    for section in sections:
        assert f"## {section.title}" in md
        assert section.tables and section.figures, section.title
        for table in section.tables:
            assert f"tables/{table.name}.csv" in md
            latex = (target / "tables" / f"{table.name}.tex").read_text()
            assert latex.count("\\begin{table}") == latex.count("\\end{table}") == 1
            assert len(pd.read_csv(target / "tables" / f"{table.name}.csv")) == len(table.raw)
        for name, _, _ in section.figures:
            assert (target / "figures" / f"{name}.png").stat().st_size > 0
            assert f"figures/{name}.png" in tex
    figures = {p.stem for p in (target / "figures").glob("*.png")}
    arms = [f"{m}-{v}" for m in ("lenet", "resnet8") for v in ("avgpool", "maxpool", "strided")]
    assert {f"confusion_{a}" for a in arms} <= figures  # one confusion matrix per model/variant
    assert {"training_curves", "hardest_examples", "dilution", "saliency_maps", "saliency_bands"} <= figures


def test_dilution_section_reports_the_verdicts_of_the_test(built, tables):
    section, result = built["dilution"]
    tests, verdicts = evaluate_dilution(tables["runs"], reference="avgpool", n_boot=200, seed=0)
    pd.testing.assert_frame_equal(result["verdicts"], verdicts)
    shown = next(t for t in section.tables if t.name == "dilution_tests").display
    assert shown["verdict"].tolist() == tests["verdict"].tolist()
    study = Study.of(tables, "avgpool")
    line = dilution_findings(study, {"dilution": result}, SETTINGS)[0]
    overall = verdicts.set_index(["model", "variant"]).loc[("resnet8", "all"), "verdict"]
    assert line.startswith("Dilution") and f": {overall}." in line


def test_error_section_lists_the_most_confused_pairs_in_both_tables(built):
    section, result = built["errors"]
    pairs = set(zip(result["pairs"]["class_a"], result["pairs"]["class_b"], strict=True))
    contrasted = set(zip(result["contrasts"]["class_a"], result["contrasts"]["class_b"], strict=True))
    assert len(pairs) == errors.TOP_PAIRS and pairs == contrasted
    hardest = next(t for t in section.tables if t.name == "hardest_examples").display
    assert len(hardest) == errors.HARDEST and hardest["% of runs wrong"].is_monotonic_decreasing


def test_sections_do_not_apply_to_a_binary_single_model_study():
    binary = simulate_study(seeds=3, fractions=(0.5, 1.0), n_test=60, seed=4)
    study = Study.of({k: v for k, v in binary.items() if k != "truth"}, "avgpool")
    assert not errors.applies(study) and not dilution.applies(study) and not saliency.applies(study)
    assert training_curves.applies(study)  # epochs are stored by every study
    section, result = training_curves.build(study, SETTINGS)
    assert set(result["curves"]["axis"]) == {"epoch"}  # cells stored before steps were recorded


def _write(root: Path, tables: dict[str, pd.DataFrame]) -> Path:
    for name in ("runs", "epochs", "predictions", "latency", "kernels"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for run_id, part in tables[name].groupby("run_id", sort=True):
            part.to_parquet(root / name / f"{run_id}.parquet", index=False)
    return root


@pytest.mark.slow
def test_report_cli_on_a_two_model_multiclass_study(tables, tmp_path):
    results = _write(tmp_path / "results" / "mc", tables)
    out = tmp_path / "report"
    assert report.main(["--results", str(results), "--out", str(out), "--bootstrap", "200", "--quiet"]) == 0
    md = (out / "report.md").read_text()
    for title in ("Training curves", "Multi-class error analysis", "Dilution"):
        assert f"## {title}" in md
    assert "- Dilution (the operator effect on accuracy vs avgpool is smaller in resnet8" in md
    # the standard sections take one architecture: lenet's planted -8 pp, not the two models' average
    assert "the standard sections analyse lenet only" in md
    # FP/FN bias needs one positive class: no bias section, the over-prediction claims not resolved
    assert "## Decision bias" not in md and "over-calls the positive class" not in md
    claims_table = pd.read_csv(out / "tables" / "claims.csv")
    over = claims_table[claims_table["claim"].str.startswith("max pooling over-predicts")]
    assert len(over) == 2 and over["detail"].str.contains("multi-class").all()
    contrasts = pd.read_csv(out / "tables" / "contrasts.csv")
    pooled = contrasts[(contrasts["metric"] == "accuracy") & contrasts["data_fraction"].isna()]
    maxpool = pooled[pooled["variant"] == "maxpool"].iloc[0]
    assert maxpool["low"] < -0.08 < maxpool["high"] or maxpool["low"] < -8 < maxpool["high"]
