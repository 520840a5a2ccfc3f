"""The grid's command line as a new user meets it (issue 16 items 1-4): overrides, any subset of
variants, checks before the first cell, error messages that keep their lists, clean help."""

from __future__ import annotations

import re

import pandas as pd
import yaml
from test_folder import make_cxr

from experiments.grid import build_parser, main
from experiments.spec import STUDIES_DIR

ONE_CELL = ("--seed-list", "0", "--fractions", "1.0", "--n-jobs", "1", "--quiet")
SMOKE = yaml.safe_load((STUDIES_DIR / "smoke.yaml").read_text())


def test_overrides_reach_the_cells_and_spec_yaml_records_the_resolved_study(run_grid, tmp_path):
    out = tmp_path / "study"
    code, _, stderr = run_grid(
        "--study", "smoke", "--out", out, *ONE_CELL,
        "--set", "train.lr=1e-3", "--set", "data.n_val=30",
        "--variants", "blurpool,aps", "train.epochs=1",  # a bare override right after a list option
    )  # fmt: skip
    assert code == 0, stderr
    recorded = yaml.safe_load((out / "spec.yaml").read_text())
    assert recorded["train"]["lr"] == 0.001 and recorded["train"]["epochs"] == 1
    assert recorded["train"]["batch_size"] == SMOKE["train"]["batch_size"]  # merged, not replaced
    assert recorded["data"]["n_val"] == 30 and recorded["data"]["n_test"] == SMOKE["data"]["n_test"]
    assert recorded["variants"] == ["blurpool", "aps"] and recorded["reference"] == "avgpool"
    runs = pd.read_parquet(out / "runs")
    # a subset without the study's reference runs: only the report needs a reference
    assert sorted(runs["variant"]) == ["aps", "blurpool"] and (runs["status"] == "ok").all()
    assert (runs["lr"] == 0.001).all() and (runs["epochs_run"] == 1).all()


def test_variants_and_fractions_take_commas_as_well_as_spaces(run_grid, tmp_path):
    out = tmp_path / "study"
    lists = ("--variants", "maxpool,", "strided", "--fractions", "0.5,1.0")
    code, stdout, _ = run_grid("--study", "smoke", "--out", out, "--dry-run", *lists)
    assert code == 0
    assert "8 cells, 0 done, 8 to run" in stdout  # 2 variants x 2 seeds x 2 fractions


def _fails(run_grid, tmp_path, *argv) -> str:
    out = tmp_path / "study"
    code, _, stderr = run_grid("--study", "smoke", "--out", out, *ONE_CELL, *argv)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert not out.exists()  # checked before anything is written
    return stderr


def test_an_unknown_key_in_an_override_is_named_with_the_valid_ones(run_grid, tmp_path):
    err = _fails(run_grid, tmp_path, "--set", "train.lrr=0.1")
    assert "train: unknown key(s) lrr; valid keys are epochs, batch_size, lr" in err
    assert len(err.strip().splitlines()) == 1


def test_a_shorthand_and_an_override_disagreeing_are_refused(run_grid, tmp_path):
    err = _fails(run_grid, tmp_path, "--epochs", "3", "--set", "train.epochs=4")
    assert "train.epochs is set twice, to 3 and to 4" in err


def test_a_positional_word_that_is_not_an_override_is_refused(run_grid, tmp_path):
    err = _fails(run_grid, tmp_path, "default")
    assert "unexpected argument 'default'" in err and "--study" in err


def test_a_typo_in_model_options_exits_2_before_any_cell(run_grid, tmp_path):
    err = _fails(run_grid, tmp_path, "--set", "model_options.kernel_sise=3")
    assert "unknown model option 'kernel_sise'" in err
    listed = err.split("valid options of lenet:")[1]
    assert "kernel_size" in listed and "channels" in listed and "padding" in listed


def test_a_model_that_does_not_fit_the_images_exits_2_before_any_cell(run_grid, tmp_path):
    err = _fails(run_grid, tmp_path, "--set", "model_options.input_size=64")  # the data are 32 x 32
    assert "cannot run on the data's 1x32x32 images" in err


def test_every_registry_name_is_resolved_before_any_cell(run_grid, tmp_path):
    assert "unknown data set 'detectoin'" in _fails(run_grid, tmp_path, "--set", "dataset=detectoin")
    assert "unknown model 'lenett'" in _fails(run_grid, tmp_path, "--set", "model=lenett")
    assert "unknown reference variant 'avgpol'" in _fails(run_grid, tmp_path, "--set", "reference=avgpol")
    err = _fails(run_grid, tmp_path, "--set", "data.n_trian=10")
    assert "unknown option(s) n_trian" in err and "n_train" in err


def test_a_data_set_problem_prints_every_problem_line_up_to_a_cap(run_grid, tmp_path):
    counts = {"train": {"NORMAL": 12, "PNEUMONIA": 30}, "test": {"NORMAL": 4, "PNEUMONIA": 4}}
    root = make_cxr(tmp_path / "chest_xray", counts=counts)
    broken = sorted((root / "train" / "PNEUMONIA").glob("train-*.jpeg"))[:25]
    for path in broken:
        path.write_bytes(b"not a jpeg")
    study = tmp_path / "cxr.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "name": "cxr-broken",
                "dataset": "folder",
                "data": {"size": 32, "min_val": 4, "cache_dir": str(tmp_path / "cache"), "workers": 1},
                "model_options": {"channels": [4, 8], "kernel_size": 3},
                "variants": ["avgpool"],
                "seeds": [0, 1],
            }
        )
    )
    out = tmp_path / "out"
    code, _, err = run_grid("--study", study, "--data", root, "--out", out, "--n-jobs", "1", "--quiet")
    assert code == 2 and not out.exists()
    lines = err.strip().splitlines()
    assert "cannot load data set 'folder': 25 problem(s) in chest X-ray folder" in lines[0]
    named = [line for line in lines[1:] if "unreadable image" in line]
    assert len(named) == 20  # the cap
    assert {re.search(r"(train-\S+\.jpeg)", line).group(1) for line in named} <= {p.name for p in broken}
    assert lines[-1].strip() == "... and 5 more"


def test_help_shows_each_default_once_and_explains_overrides():
    text = build_parser().format_help()
    assert "(default: None)" not in text
    flat = " ".join(text.split())
    assert not re.search(r"\(default: [^)]*\) \(default:", flat)
    for phrase in (
        "--set KEY.PATH=VALUE",
        "train.lr=1e-3",
        "spaces or commas",
        "any subset",
        "spec.yaml records",
    ):
        assert phrase in flat, phrase


def test_main_reports_a_usage_error_for_a_malformed_override(capsys, tmp_path):
    assert main(["--study", "smoke", "--out", str(tmp_path / "s"), "--set", "train.lr"]) == 2
    assert "key.path=value" in capsys.readouterr().err
