"""Issue 13, items 2, 7, 11, 12 and the help text: study names are names, repeated levels are refused,
built-in names are not hidden by the working directory, ``1e-3`` is a number."""

from __future__ import annotations

import pytest
import yaml

from experiments.grid import build_parser
from experiments.spec import STUDIES_DIR, SpecError, StudySpec, from_dict, load_spec, read_yaml


@pytest.mark.parametrize("name", ["/some/dir", "../../x", "..", "a/b", ".hidden", "", "a\\b", "x" * 101])
def test_a_study_name_that_is_not_a_plain_name_is_refused(name):
    with pytest.raises(SpecError, match="not a plain name"):
        from_dict(StudySpec, {"name": name})


@pytest.mark.parametrize("name", ["smoke", "smoke-factors", "my_study.v2", "Edges5"])
def test_plain_names_are_accepted(name):
    assert from_dict(StudySpec, {"name": name}).name == name


@pytest.mark.parametrize("name", ["/victim", "../victim", "nested/../../victim"])
def test_a_yaml_name_cannot_send_results_outside_the_results_root(run_grid, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    raw = yaml.safe_load((STUDIES_DIR / "smoke.yaml").read_text())
    raw["name"] = str(victim) if name == "/victim" else name
    path = tmp_path / "escape.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, _, stderr = run_grid("--study", path, "--n-jobs", "1")
    assert code == 2 and "not a plain name" in stderr and len(stderr.strip().splitlines()) == 1
    assert [p.name for p in victim.iterdir()] == ["thesis.tex"]
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("argv", "axis"),
    [
        (("--fractions", "1.0", "1.0"), "fractions"),
        (("--variants", "avgpool", "avgpool"), "variants"),
        (("--seed-list", "0,1,1"), "seeds"),
    ],
)
def test_repeated_levels_exit_2_like_repeated_seeds(run_grid, tmp_path, argv, axis):
    out = tmp_path / "study"
    code, _, stderr = run_grid("--study", "smoke", "--out", out, *argv)
    assert code == 2 and f"{axis} repeat" in stderr
    assert not out.exists()


def test_repeated_variants_of_one_model_family_are_refused():
    with pytest.raises(SpecError, match="repeat"):
        from_dict(StudySpec, {"name": "x", "models": [{"name": "lenet", "variants": ["maxpool", "maxpool"]}]})


def test_a_file_or_folder_named_like_a_built_in_study_does_not_hide_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke").mkdir()  # "Is a directory: 'smoke'" before the fix
    (tmp_path / "default").write_text("name: not-the-built-in\n")
    assert load_spec("smoke") == load_spec(STUDIES_DIR / "smoke.yaml")
    assert load_spec("default").name == "default"
    own = yaml.safe_load((STUDIES_DIR / "smoke.yaml").read_text()) | {"name": "mine", "seeds": [5]}
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(own))
    assert load_spec("./smoke.yaml").seeds == (5,)  # a path means the file
    assert load_spec("smoke.yaml").seeds == (5,)
    with pytest.raises(SpecError, match="folder"):
        load_spec("./smoke")


def test_an_unknown_bare_name_lists_the_built_in_studies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match="unknown study 'nope'.*smoke"):
        load_spec("nope")


@pytest.mark.parametrize(("text", "value"), [("1e-3", 1e-3), ("1E5", 1e5), ("25e-5", 25e-5), ("3e+2", 300.0)])
def test_scientific_notation_without_a_dot_is_a_number(tmp_path, text, value):
    raw = yaml.safe_load((STUDIES_DIR / "smoke.yaml").read_text())
    body = yaml.safe_dump(raw).replace("lr: 0.003", f"lr: {text}")
    assert f"lr: {text}" in body
    path = tmp_path / "sci.yaml"
    path.write_text(body)
    assert yaml.safe_load(body)["train"]["lr"] == text  # what YAML 1.1 alone gives: a string
    assert load_spec(path).train.lr == value


def test_yaml_reading_is_otherwise_the_safe_loaders():
    text = "a: 12e\nb: 1_000\nc: '1e-3'\nd: 0.5\ne: abc\nf: 2024-01-01\ng: [1, x]\n"
    assert read_yaml(text) == yaml.safe_load(text)
    assert read_yaml("a: -25e-5\nb: +1e2\n") == {"a": -25e-5, "b": 100.0}
    with pytest.raises(yaml.YAMLError):
        read_yaml("!!python/object/apply:os.system ['true']")


def test_help_says_how_reruns_retries_exit_codes_and_names_work():
    text = build_parser().format_help()
    for phrase in (
        "--no-retry-failed",
        "retries the cells stored as `failed`",
        "`diverged` cells are results",
        "--force recomputes every cell",
        "runner.lock",
        "./smoke.yaml",
        "1e-3",
        "130 / 143",
        "3 environment",
    ):
        assert phrase in text, phrase
