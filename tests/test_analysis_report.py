"""The report CLI end to end on simulated studies with planted effects (run in-process via ``main(argv)``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from analysis import report
from analysis.report import write
from analysis.simulation import simulate_study


def write_study(root: Path, study: dict, tables=("runs", "epochs", "predictions", "latency")) -> Path:
    """Write simulated tables in the grid's layout: ``<root>/<table>/<run_id>.parquet``."""
    for name in tables:
        (root / name).mkdir(parents=True, exist_ok=True)
        for run_id, part in study[name].groupby("run_id", sort=True):
            part.to_parquet(root / name / f"{run_id}.parquet", index=False)
    return root


FAST = ["--bootstrap", "200", "--quiet"]
# a large maxpool accuracy loss and FPR excess, and a faster strided conv, so 5 seeds resolve them
PLANTED = {
    "variants": ("avgpool", "maxpool", "strided"),
    "fractions": (0.1, 0.3, 1.0),
    "seeds": 5,
    "n_test": 150,
    "effects": {"maxpool": -0.06},
    "fpr_shift": {"maxpool": 0.08},
    "latency_ms": {"avgpool": 2.0, "maxpool": 2.1, "strided": 1.4},
    "latency_repeats": 4,
    "latency_drift": 0.1,
    "seed": 3,
}


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    root = write_study(tmp_path_factory.mktemp("results") / "planted", simulate_study(**PLANTED))
    (root / "spec.yaml").write_text("name: planted\nseeds: 5\n")
    return root


@pytest.fixture(scope="module")
def built(study_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "planted"
    assert report.main(["--results", str(study_dir), "--out", str(out), *FAST]) == 0
    return out


@pytest.mark.slow
def test_report_writes_every_file(built):
    assert (built / "report.md").is_file() and (built / "report.tex").is_file()
    names = {p.stem for p in (built / "tables").glob("*.csv")}
    assert {
        "metrics",
        "contrasts",
        "mixed_coefficients",
        "mixed_tests",
        "bias",
        "hierarchical",
        "mcnemar",
        "learning_curve",
        "latency",
        "power",
        "claims",
    } <= names
    for name in names:
        for ext in ("tex", "parquet"):
            assert (built / "tables" / f"{name}.{ext}").is_file()
    pngs = {p.stem for p in (built / "figures").glob("*.png")}
    assert {
        "contrasts",
        "bias",
        "confusion",
        "roc_pr",
        "learning_curves",
        "generalization_gap",
        "latency_ratio",
        "tradeoff",
    } <= pngs
    assert pngs == {p.stem for p in (built / "figures").glob("*.pdf")}
    leftovers = [p.name for p in built.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the temporary folder was renamed into place


@pytest.mark.slow
def test_report_recovers_the_planted_effects(built):
    contrasts = pd.read_parquet(built / "tables" / "contrasts.parquet")
    pooled = contrasts[contrasts["data_fraction"].isna()].set_index(["metric", "variant"])
    assert pooled.loc[("accuracy", "maxpool"), "high"] < 0  # planted accuracy loss, resolved
    bias = pd.read_parquet(built / "tables" / "bias.parquet")
    over = bias[bias["data_fraction"].isna()].groupby("variant")["over_calls"].any()
    assert over["maxpool"] and not over["avgpool"]
    lat = pd.read_parquet(built / "tables" / "latency.parquet")
    assert (lat.loc[lat["variant"] == "strided", "high"] < 1).all()
    md = (built / "report.md").read_text()
    assert "maxpool over-calls the positive class" in md
    assert "Fastest at batch size 1: strided" in md
    # planted machine drift: the latency medians are speed-adjusted, and raw figures stay beside them
    assert lat["adjusted"].all() and (lat["slope"] > 0).all()
    assert "Speed-adjusted" in md and "Precision of the raw medians" in md and "raw median ms" in md


@pytest.mark.slow
def test_report_md_has_summary_first_then_sections_then_provenance(built):
    md = (built / "report.md").read_text()
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Summary of findings" and headings[-1] == "## Provenance"
    for title in (
        "Paired contrasts",
        "Mixed-effects models",
        "Decision bias",
        "hierarchical bootstrap",
        "Learning curves",
        "CPU latency",
        "Statistical power",
        "Claims",
    ):
        assert any(title in h for h in headings), title
    provenance = md[md.index("## Provenance") :]
    for fact in ("git commit", "spec.yaml", "Seeds (5): 0, 1, 2, 3, 4", "Resamples: 200", "Holm", "BCa"):
        assert fact in provenance, fact
    assert "![" in md and "figures/contrasts.png" in md


@pytest.mark.slow
def test_same_seed_gives_byte_identical_tables(study_dir, built, tmp_path):
    again = tmp_path / "again"
    md_only = ["--format", "md", *FAST]  # CSV/Parquet tables are written in every format
    assert report.main(["--results", str(study_dir), "--out", str(again), *md_only]) == 0
    for path in sorted((built / "tables").glob("*.*")):
        if path.suffix in (".csv", ".parquet"):
            assert path.read_bytes() == (again / "tables" / path.name).read_bytes(), path.name
    other = tmp_path / "other"
    assert report.main(["--results", str(study_dir), "--out", str(other), "--seed", "1", *md_only]) == 0
    # at 5 seeds the seed summaries use t-intervals; the hierarchical bootstrap is random
    a = pd.read_csv(built / "tables" / "hierarchical.csv")
    b = pd.read_csv(other / "tables" / "hierarchical.csv")
    assert not a[["low", "high"]].equals(b[["low", "high"]])


def _exit_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_exit_2_on_missing_results(tmp_path, capsys):
    assert report.main(["--results", str(tmp_path / "absent"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "does not exist" in _exit_line(capsys)
    assert not (tmp_path / "o").exists()


def test_exit_2_on_one_seed_schema_mismatch_and_bad_reference(tmp_path, capsys):
    tables = simulate_study(seeds=2, fractions=(0.5, 1.0), n_test=40, seed=0)
    runs = tables["runs"]
    one = write_study(tmp_path / "one", {"runs": runs[runs["seed"] == 0]}, ("runs",))
    assert report.main(["--results", str(one), "--out", str(tmp_path / "o1"), "--quiet"]) == 2
    assert "seed" in _exit_line(capsys)
    bad = write_study(tmp_path / "bad", tables, ("runs",))
    broken = sorted((bad / "runs").glob("*.parquet"))[0]
    pd.read_parquet(broken).drop(columns=["seed"]).to_parquet(broken, index=False)
    assert report.main(["--results", str(bad), "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    assert broken.name in _exit_line(capsys)
    good = write_study(tmp_path / "good", tables, ("runs",))
    args = ["--results", str(good), "--out", str(tmp_path / "o3"), "--reference", "blurpool", "--quiet"]
    assert report.main(args) == 2
    assert "avgpool" in _exit_line(capsys)  # lists the valid choices


def test_an_output_directory_holding_other_files_is_refused_not_replaced(study_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("not written by the report\n")
    args = ["--results", str(study_dir), "--out", str(out), "--format", "md", *FAST]
    assert report.main(args) == 2
    assert "notes.txt" in _exit_line(capsys)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "not written by the report\n"
    (tmp_path / "file").write_text("x")
    assert report.main([*args[:2], "--out", str(tmp_path / "file"), *args[4:]]) == 2
    assert "is a file" in _exit_line(capsys)


def test_invalid_flags_exit_2(tmp_path, capsys):
    for flags in (
        ["--format", "md,docx"],
        ["--metrics", "accurracy"],
        ["--alpha", "1.5"],
        ["--bootstrap", "5"],
    ):
        with pytest.raises(SystemExit) as info:
            report.main(["--results", str(tmp_path), *flags])
        assert info.value.code == 2
    assert "choose" in capsys.readouterr().err


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        report.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--study",
        "--results",
        "--out",
        "--reference",
        "--metrics",
        "--bootstrap",
        "--alpha",
        "--seed",
        "--format",
        "--quiet",
    ):
        assert flag in text


@pytest.mark.slow
def test_no_latency_skips_the_section_and_md_only_format(tmp_path):
    tables = simulate_study(seeds=3, fractions=(0.25, 0.5, 1.0), n_test=60, seed=2)
    root = write_study(tmp_path / "nolat", tables, ("runs", "epochs", "predictions"))
    out = tmp_path / "out"
    assert report.main(["--results", str(root), "--out", str(out), "--format", "md", *FAST]) == 0
    md = (out / "report.md").read_text()
    assert "no latency measurements" in md
    assert not (out / "tables" / "latency.csv").exists()
    assert not (out / "report.tex").exists() and not list((out / "tables").glob("*.tex"))
    assert not list((out / "figures").glob("*.pdf")) and list((out / "figures").glob("*.png"))


def test_failed_report_leaves_the_previous_one_untouched(study_dir, tmp_path, monkeypatch):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.md").write_text("previous report\n")
    (out / write.MARKER).write_text("written by a report\n")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(write, "to_latex", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        report.main(["--results", str(study_dir), "--out", str(out), "--bootstrap", "100", "--quiet"])
    assert (out / "report.md").read_text() == "previous report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]  # no temporary folder left behind


@pytest.mark.latex
def test_report_tex_compiles_with_pdflatex(built, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is missing: report.tex was NOT compiled (install TeX Live to run this check)")
    work = shutil.copytree(built, tmp_path / "tex")
    for _ in range(2):  # the second pass resolves references
        done = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-3000:]
    assert (work / "report.pdf").stat().st_size > 0


@pytest.mark.slow
def test_study_name_reads_results_and_writes_reports_by_default(study_dir, tmp_path, monkeypatch):
    shutil.copytree(study_dir, tmp_path / "results" / "mini")
    monkeypatch.chdir(tmp_path)
    assert report.main(["--study", "mini", "--format", "md", "--metrics", "accuracy", *FAST]) == 0
    md = (tmp_path / "reports" / "mini" / "report.md").read_text()
    assert md.startswith("# DownScaleXR report: study mini")
    assert report.main(["--study", "absent", "--quiet"]) == 2  # results/absent does not exist
