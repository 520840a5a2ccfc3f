"""The report's command line (issue 16 items 1 and 3, issue 13 item 1 and mixed studies): it writes only
into its own output directories, refuses mixed studies, takes --set, and picks the study's reference."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_analysis_report import write_study

from analysis import report
from analysis.load import LoadError, load_study
from analysis.report import write
from analysis.report.selection import Selection, choose_reference, parse_selection, select_runs
from analysis.simulation import simulate_study
from downscalexr.overrides import OverrideError

FAST = ["--bootstrap", "100", "--format", "md", "--metrics", "accuracy", "--quiet"]
STORED_SPEC = {
    "name": "small",
    "variants": ["strided", "avgpool", "maxpool"],  # the study's order, not the alphabet's
    "reference": "avgpool",
    "train": {"lr": 0.001, "epochs": 2},
}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    tables = simulate_study(seeds=4, fractions=(0.5, 1.0), n_test=40, seed=5)
    root = write_study(tmp_path_factory.mktemp("results") / "small", tables)
    (root / "spec.yaml").write_text(yaml.safe_dump(STORED_SPEC))
    return root


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# --- the output directory (issue 13 item 1) ---------------------------------------------------------


def _publish(target: Path, text: str) -> None:
    write.write_outputs(target, {"report.md": text}, [], {"md"})


def test_a_new_report_is_marked_and_replaces_only_its_own_earlier_report(tmp_path):
    target = tmp_path / "rep"
    _publish(target, "first\n")
    assert (target / write.MARKER).is_file() and (target / "report.md").read_text() == "first\n"
    _publish(target, "second\n")
    assert (target / "report.md").read_text() == "second\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no staging or old copy left


@pytest.mark.parametrize(
    "contents",
    [
        {"report.tex": "my thesis", "figures/plot.pdf": "figure"},  # named like a report's files
        {"runs/abc.parquet": "results", "spec.yaml": "name: x"},  # a results directory
    ],
)
def test_a_directory_without_the_marker_is_refused_and_left_untouched(tmp_path, contents):
    target = tmp_path / "theirs"
    for name, text in contents.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text)
    with pytest.raises(write.OutputError, match=f"--out {target} holds files a report did not write"):
        _publish(target, "report\n")
    assert {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()} == set(contents)
    assert all((target / n).read_text() == t for n, t in contents.items())


def test_staging_folders_of_a_killed_report_are_removed_and_nothing_else(tmp_path):
    target = tmp_path / "rep"
    leftover = tmp_path / ".rep.0a1b2c3d.tmp"
    (leftover / "figures").mkdir(parents=True)
    mine = tmp_path / ".rep-notes"
    mine.mkdir()
    _publish(target, "report\n")
    assert not leftover.exists() and mine.is_dir()


def test_study_cannot_point_the_default_output_at_a_results_directory(small, tmp_path, monkeypatch, capsys):
    results = tmp_path / "results" / "smoke"
    shutil.copytree(small, results)
    before = sorted(str(p.relative_to(results)) for p in results.rglob("*"))
    (tmp_path / "reports").mkdir()
    monkeypatch.chdir(tmp_path / "reports")
    assert report.main(["--study", "../results/smoke", *FAST]) == 2
    assert "not a study name" in _error(capsys)
    monkeypatch.chdir(tmp_path)
    assert report.main(["--results", str(results), "--out", str(results), *FAST]) == 2
    assert "holds files a report did not write" in _error(capsys)
    assert sorted(str(p.relative_to(results)) for p in results.rglob("*")) == before


# --- mixed studies (issue 13) -----------------------------------------------------------------------


def test_a_design_cell_stored_twice_is_refused(small, tmp_path, capsys):
    mixed = shutil.copytree(small, tmp_path / "mixed")
    first = sorted((mixed / "runs").glob("*.parquet"))[0]
    twin = pd.read_parquet(first).assign(run_id="zz-other-spec", lr=0.001)
    twin.to_parquet(mixed / "runs" / "zz-other-spec.parquet", index=False)
    with pytest.raises(LoadError, match=r"1 design cell\(s\) more than once.*stored 2 times.*zz-other-spec"):
        load_study(mixed)
    assert report.main(["--results", str(mixed), "--out", str(tmp_path / "o"), *FAST]) == 2
    assert "runs of two specifications" in _error(capsys)


def test_runs_of_two_training_settings_are_refused(small, tmp_path):
    mixed = shutil.copytree(small, tmp_path / "mixed")
    path = sorted((mixed / "runs").glob("*.parquet"))[-1]
    pd.read_parquet(path).assign(lr=0.01).to_parquet(path, index=False)
    with pytest.raises(LoadError, match=r"mixes runs of 2 learning rates \(0.001, 0.01\)"):
        load_study(mixed)


# --- --set and the reference (issue 16 items 1 and 3) -------------------------------------------------


@pytest.mark.slow
def test_a_subset_without_the_studys_reference_is_compared_against_its_first_variant(small, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--results", str(small), "--out", str(out), *FAST[:-1]]
    code = report.main([*argv, "--set", "variants=[maxpool, strided]", "seeds=[0, 1, 2]"])
    assert code == 0
    err = capsys.readouterr().err
    said = "Reference variant: strided (the first variant: the study's reference 'avgpool' has no successful"
    assert said in err
    md = (out / "report.md").read_text()
    assert said in md and "Runs analysed: only variants maxpool, strided; seeds 0, 1, 2" in md
    assert "Seeds (3): 0, 1, 2" in md
    contrasts = pd.read_csv(out / "tables" / "contrasts.csv")
    assert set(contrasts["variant"]) == {"maxpool"}  # maxpool minus strided; avgpool not analysed


def test_the_studys_own_reference_is_the_default_and_the_command_line_wins(small):
    runs = load_study(small)["runs"]
    assert choose_reference(runs, STORED_SPEC, None)[0] == "avgpool"
    assert choose_reference(runs, STORED_SPEC | {"reference": "maxpool"}, None)[0] == "maxpool"
    assert choose_reference(runs, STORED_SPEC, "strided") == (
        "strided",
        "strided (chosen on the command line)",
    )
    assert choose_reference(runs, None, None)[0] == "avgpool"  # no spec: the alphabet's first
    ref, why = choose_reference(runs, {"reference": "blurpool"}, None)
    assert ref == "avgpool" and "the study's reference 'blurpool' has no successful runs" in why


def test_selection_keeps_the_chosen_levels_in_every_table(small):
    tables = load_study(small)
    picked = select_runs(tables, Selection(levels={"variants": ("maxpool",), "fractions": (1.0,)}))
    assert set(picked["runs"]["variant"]) == {"maxpool"} and set(picked["runs"]["data_fraction"]) == {1.0}
    for name, table in picked.items():
        assert set(table["run_id"]) <= set(picked["runs"]["run_id"]), name
    assert len(picked["predictions"]) == 40 * len(picked["runs"])
    with pytest.raises(LoadError, match="--set seeds: 9 not in the study; it has 0, 1, 2, 3"):
        select_runs(tables, Selection(levels={"seeds": (9,)}))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train.lr=0.1", "the report cannot change train.lr, it describes how the stored runs were made"),
        ("bogus=1", "unknown key; the report's --set takes reference, variants, seeds, fractions"),
        ("seeds=[a]", "expected a list such as seeds=[0, 1, 2]"),
        ("reference=[x]", "expected a variant name"),
    ],
)
def test_report_overrides_are_checked(text, message):
    with pytest.raises(OverrideError, match=message.replace("[", r"\[")):
        parse_selection([text], STORED_SPEC)


def test_bad_report_overrides_exit_2_in_one_line(small, tmp_path, capsys):
    base = ["--results", str(small), "--out", str(tmp_path / "o"), *FAST]
    for extra, expected in (
        (["--set", "train.lr=0.1"], "rerun the grid with --set train.lr"),
        (["--set", "seeds=[0]"], "fewer than 2 seeds"),
        (["--reference", "maxpool", "--set", "reference=strided"], "disagree"),
        (["notanoverride"], "unexpected argument 'notanoverride'"),
    ):
        assert report.main([*base, *extra]) == 2, extra
        assert expected in _error(capsys)
    assert not (tmp_path / "o").exists()


def test_report_help_shows_set_and_each_default_once(capsys):
    with pytest.raises(SystemExit):
        report.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--set KEY=VALUE" in text and "the study's reference" in text
    assert "(default: None)" not in text
    assert ".downscalexr-report" in text.replace("- ", "-")  # argparse wraps lines at hyphens
