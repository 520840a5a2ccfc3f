"""Inductive-bias factors of a study: spec parsing, cell expansion, stable run ids, the data each cell
sees, edge-detector initialisation, the kernels table, and a tiny factor grid end to end."""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from downscalexr import schema
from downscalexr.data.base import ImageSplits
from downscalexr.data.registry import dataset_options, load_dataset, permute_splits
from downscalexr.data.synthetic import apply_permutation, pixel_permutation
from downscalexr.models import count_params, create_model
from downscalexr.models.edge_init import apply_init, edge_filter_bank, edge_orientations
from downscalexr.train import TrainConfig, fit
from experiments._worker import data_for
from experiments.cell import Cell, cells_of, data_options, run_cell, run_id
from experiments.grid import UsageError, check_same_design
from experiments.spec import STUDIES_DIR, FactorSpec, SpecError, StudySpec, from_dict, load_spec
from experiments.store import StudyPaths, finished_run_ids, is_finished, read_study, write_cell

# The built-in smoke-factors study: 3-class edges at 16 px, a 4/8-channel LeNet and the MLP matched to
# it: (1 variant x 2 inits + MLP) x 2 permutations x 2 location shifts = 12 cells, well under a second each.
TINY = yaml.safe_load((STUDIES_DIR / "smoke-factors.yaml").read_text()) | {"name": "factors"}
N_TINY = 12


def tiny(**changes) -> StudySpec:
    return from_dict(StudySpec, TINY | changes)


def write_tiny(directory: Path, **changes) -> Path:
    path = directory / "factors.yaml"
    path.write_text(yaml.safe_dump(TINY | changes, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def factor_study(tmp_path_factory, kept_process_state) -> Path:
    """The tiny factor study, run once in-process."""
    from experiments.grid import main

    root = tmp_path_factory.mktemp("factors")
    with kept_process_state():
        code = main(
            ["--study", str(write_tiny(root)), "--out", str(root / "study"), "--n-jobs", "1", "--quiet"]
        )
    assert code == 0
    return root / "study"


# --- specification ------------------------------------------------------------------------------------


def test_factor_levels_parse_from_yaml_with_null_and_scalars(tmp_path):
    spec = load_spec(write_tiny(tmp_path, factors={"permute": True, "location_shift": None}))
    assert spec.factors == FactorSpec(permute=(True,), location_shift=(None,), init=("random",))
    assert tiny().factors.location_shift == (None, 0.5)
    assert StudySpec(name="x").factors == FactorSpec()


@pytest.mark.parametrize(
    ("factors", "words"),
    [
        ({"init": ["edge"]}, ["factors.init", "'edge'", "random", "edge_frozen", "edge_trainable"]),
        ({"permute": ["yes"]}, ["permute", "true or false"]),
        ({"location_shift": [1.5]}, ["factors.location_shift", "1.5", "(0, 1)"]),
        ({"colour": [1]}, ["colour", "permute", "location_shift", "init"]),
        ({"init": []}, ["factors.init", "at least one"]),
        ({"permute": [True, True]}, ["factors.permute", "repeats"]),
    ],
)
def test_bad_factors_are_rejected_naming_the_key_and_valid_values(factors, words):
    with pytest.raises(SpecError) as err:
        tiny(factors=factors)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_location_shift_factor_only_for_the_edges_data_set():
    with pytest.raises(SpecError, match="only valid for the edges data set, not 'detection'"):
        from_dict(
            StudySpec, {"name": "x", "dataset": "detection", "factors": {"location_shift": [None, 0.5]}}
        )
    with pytest.raises(SpecError, match="either in data or in factors"):
        tiny(data=TINY["data"] | {"location_shift": 0.5})


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"model": "lenet_gap"}, ["models", "model/model_options", "not both"]),
        ({"models": [{"name": "mlp", "variants": ["avgpool"]}]}, ["mlp", "[none]", "avgpool"]),
        ({"models": [{"name": "lenet"}, {"name": "lenet"}]}, ["once", "lenet"]),
        ({"variants": ["none"]}, ["'none'", "reserved"]),
    ],
)
def test_bad_model_lists_are_rejected(changes, words):
    with pytest.raises(SpecError) as err:
        tiny(**changes)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_unknown_model_in_the_list_exits_2(run_grid, tmp_path):
    path = write_tiny(tmp_path, models=[{"name": "lenet"}, {"name": "resnet"}])
    code, _, stderr = run_grid("--study", path, "--out", tmp_path / "out", "--dry-run")
    assert code == 2 and "unknown model 'resnet'" in stderr and "mlp" in stderr


def test_mlp_inherits_the_matched_cnn_options_and_matches_its_count():
    spec = tiny()
    mlp = spec.model_spec("mlp")
    assert mlp.variants == ("none",) and mlp.options == {
        "channels": [4, 8],
        "kernel_size": 3,
        "match": "lenet",
    }
    shape = {"in_channels": 1, "input_size": 16, "num_outputs": 3}
    cnn = create_model("lenet", downsample="maxpool", **shape, **spec.model_spec("lenet").options)
    net = create_model("mlp", downsample="maxpool", **shape, **mlp.options)
    assert abs(count_params(net) / count_params(cnn) - 1) <= 0.05


# --- cells --------------------------------------------------------------------------------------------


def test_cells_cross_every_factor_and_collapse_init_for_the_mlp():
    cells = cells_of(tiny())
    assert len(cells) == N_TINY and len(set(cells)) == N_TINY
    mlp = [c for c in cells if c.model == "mlp"]
    assert len(mlp) == 4 and {(c.variant, c.init) for c in mlp} == {("none", "random")}
    assert {(c.permute, c.location_shift) for c in mlp} == {
        (False, None),
        (False, 0.5),
        (True, None),
        (True, 0.5),
    }
    three = tiny(variants=["avgpool", "maxpool", "strided"], factors={"init": list(schema.INIT_CHOICES)})
    assert len(cells_of(three)) == 3 * 3 + 1  # lenet variants x inits, plus one MLP cell


def test_built_in_factor_studies_expand_to_their_designs():
    ib = cells_of(load_spec("inductive-bias"))
    # (LeNet and GAP-head LeNet variants + MLP) x permute x shift x fractions x seeds
    assert len(ib) == (3 + 3 + 1) * 2 * 2 * 2 * 5
    assert {c.model for c in ib} == {"lenet", "lenet_gap", "mlp"}
    assert {c.variant for c in ib if c.model == "mlp"} == {"none"}
    assert len(cells_of(load_spec("edge-init"))) == 3 * 3 * 3 * 5
    edges = cells_of(load_spec("edges"))  # the shift set in data is recorded on each cell
    assert {c.location_shift for c in edges} == {0.5}


def test_cells_run_longest_fraction_first_with_each_seed_spread_over_the_grid():
    spec = tiny(seeds=[0, 1, 2], fractions=[0.5, 1.0])
    cells = cells_of(spec)
    fractions = [c.data_fraction for c in cells]
    assert fractions == sorted(fractions, reverse=True)  # longest cells first
    for f in (0.5, 1.0):  # within a fraction, the cells sharing one data set are adjacent
        keys = [(c.seed, c.permute, c.location_shift) for c in cells if c.data_fraction == f]
        blocks = [k for i, k in enumerate(keys) if i == 0 or k != keys[i - 1]]
        assert len(blocks) == len(set(keys)) == 3 * 2 * 2
    # a seed's cells are not back to back: they span more than half the grid
    seed0 = [i for i, c in enumerate(cells) if c.seed == 0]
    assert seed0[-1] - seed0[0] > len(cells) // 2


@pytest.mark.parametrize(
    "study", sorted(p.stem for p in (Path(__file__).parents[1] / "experiments" / "studies").glob("*.yaml"))
)
def test_the_worker_data_cache_holds_every_data_set_of_a_built_in_study(study):
    from downscalexr.data.registry import seed_dependent
    from experiments._worker import _cached_data
    from experiments.spec import load_spec

    spec = load_spec(study)
    keys = {
        (c.seed if seed_dependent(spec.dataset) else -1, repr(sorted(data_options(spec, c).items())))
        for c in cells_of(spec)
    }
    assert len(keys) <= _cached_data.cache_info().maxsize  # so no order of cells reloads data


def test_dry_run_shows_the_factor_levels(run_grid, tmp_path):
    code, stdout, _ = run_grid("--study", write_tiny(tmp_path), "--out", tmp_path / "out", "--dry-run")
    assert code == 0 and f"{N_TINY} cells, 0 done" in stdout
    lines = [line for line in stdout.splitlines() if line.startswith("todo")]
    assert sum("permute" in line for line in lines) == N_TINY // 2
    assert sum("location_shift=0.5" in line for line in lines) == N_TINY // 2
    assert sum("init=edge_frozen" in line for line in lines) == 4
    assert sum(" none " in line and "mlp" in line for line in lines) == 4


# --- run ids ------------------------------------------------------------------------------------------


def _extended(cls, **field_defaults):
    """A subclass of dataclass ``cls`` with extra fields that have defaults (a later version's class)."""
    return dataclasses.make_dataclass(
        cls.__name__, [(k, type(v), dataclasses.field(default=v)) for k, v in field_defaults.items()],
        bases=(cls,), frozen=True,
    )  # fmt: skip


def test_adding_a_field_with_a_default_keeps_run_ids():
    spec, cell = tiny(), cells_of(tiny())[0]
    ExtCell, ExtSpec, ExtTrain = (_extended(c, extra=3) for c in (Cell, StudySpec, TrainConfig))
    ext_cell = ExtCell(**dataclasses.asdict(cell))
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    ext_spec = ExtSpec(**fields | {"train": ExtTrain(**dataclasses.asdict(spec.train))})
    assert run_id(ext_spec, ext_cell) == run_id(spec, cell)
    assert run_id(ext_spec, dataclasses.replace(ext_cell, extra=4)) != run_id(spec, cell)
    changed = dataclasses.replace(ext_spec, train=dataclasses.replace(ext_spec.train, extra=4))
    assert run_id(changed, ext_cell) != run_id(spec, cell)


def test_changing_any_cell_or_run_field_changes_the_run_id():
    spec, cell = tiny(), cells_of(tiny())[0]
    other = {"study": "other", "dataset": "detection", "model": "mlp", "variant": "avgpool", "seed": 9,
             "data_fraction": 0.5, "transform": "flip", "permute": True, "location_shift": 0.25,
             "init": "edge_trainable", "augment": "flip"}  # fmt: skip
    assert set(other) == {f.name for f in dataclasses.fields(Cell)}
    ids = {run_id(spec, cell)} | {run_id(spec, dataclasses.replace(cell, **{k: v})) for k, v in other.items()}
    lenet = {"name": "lenet", "options": {"channels": [4, 6], "kernel_size": 3}}
    specs = [
        tiny(train=TINY["train"] | {"lr": 0.01}),
        tiny(data=TINY["data"] | {"n_train": 91}),
        tiny(test_seed=8),
        tiny(consistency=TINY["consistency"] | {"n_images": 21}),
        tiny(models=[lenet, TINY["models"][1]]),
    ]
    ids |= {run_id(s, cell) for s in specs}
    assert len(ids) == 1 + len(other) + len(specs)


def test_axes_and_other_models_do_not_change_run_ids():
    spec, cell = tiny(), cells_of(tiny())[0]
    wider = tiny(
        seeds=[0, 5],
        variants=["maxpool", "avgpool"],
        factors=TINY["factors"] | {"init": ["random", "edge_frozen", "edge_trainable"]},
        models=TINY["models"][:1],
        description="changed",
    )
    assert run_id(wider, cell) == run_id(spec, cell)


# --- the data each cell sees --------------------------------------------------------------------------


def test_permuted_cells_see_the_one_study_permutation_and_others_do_not():
    spec = tiny(seeds=[0, 1])
    plain, perm0, perm1 = (
        data_for(spec, Cell("factors", "edges", "lenet", "maxpool", seed, 1.0, permute=permute))
        for seed, permute in ((0, False), (0, True), (1, True))
    )
    perm = pixel_permutation(16, spec.test_seed)[0]
    for split in ("train", "val", "test"):
        x = getattr(plain, f"x_{split}")
        assert torch.equal(getattr(perm0, f"x_{split}"), apply_permutation(x, perm))
        assert not torch.equal(getattr(perm0, f"x_{split}"), x)
    direct = load_dataset("edges", seed=0, test_seed=spec.test_seed, **TINY["data"])
    assert torch.equal(plain.x_test, direct.x_test)  # the unpermuted cell sees the generator's images
    assert torch.equal(perm1.x_test, perm0.x_test)  # same test set, same permutation, other seed


def test_real_data_are_permuted_after_loading():
    assert {"permute", "permutation_seed"} <= set(dataset_options("folder")) & set(dataset_options("npz"))
    g = torch.Generator().manual_seed(0)
    x = [torch.rand(n, 1, 6, 6, generator=g) for n in (4, 3, 2)]
    splits = ImageSplits(x[0], torch.zeros(4, dtype=torch.long), x[1], torch.zeros(3, dtype=torch.long),
                         x[2], torch.zeros(2, dtype=torch.long), class_names=("a", "b"))  # fmt: skip
    out = permute_splits(splits, seed=5)
    inverse = pixel_permutation(6, 5)[1]
    assert torch.equal(apply_permutation(out.x_test, inverse), x[2])
    assert out.info == {"permute": True, "permutation_seed": 5}
    wide = dataclasses.replace(splits, x_test=torch.rand(2, 1, 6, 8, generator=g))
    with pytest.raises(ValueError, match="square images of one size, got 6x6, 6x8"):
        permute_splits(wide, seed=5)


def test_location_shift_level_overrides_the_data_option():
    spec = tiny()
    shifted = Cell("factors", "edges", "lenet", "maxpool", 0, 1.0, location_shift=0.5)
    assert data_options(spec, shifted)["location_shift"] == 0.5
    info = data_for(spec, shifted).info
    assert info["location_shift"] == 0.5 and list(info["train_region"]) == [0.0, 0.5]
    none = data_for(spec, dataclasses.replace(shifted, location_shift=None)).info
    assert none["location_shift"] is None and none["train_region"] is None


# --- edge-detector initialisation ---------------------------------------------------------------------


def _step_edge(size: int, degrees: float) -> np.ndarray:
    """A size x size step edge through the centre along ``degrees`` (0 = horizontal, rows grow down)."""
    t = math.radians(degrees)
    y, x = np.meshgrid(np.arange(size) - (size - 1) / 2, np.arange(size) - (size - 1) / 2, indexing="ij")
    side = -math.sin(t) * x + math.cos(t) * y
    return np.where(np.abs(side) < 1e-9, 0.5, side > 0)  # pixels on the line: half way


@pytest.mark.parametrize(("n", "k"), [(8, 3), (12, 5), (7, 7)])
def test_each_edge_filter_prefers_its_own_orientation(n, k):
    bank = edge_filter_bank(n, 1, k).double().numpy()[:, 0]
    angles, _ = edge_orientations(n)
    assert sorted(set(angles)) == list(np.arange(math.ceil(n / 2)) * 180 / math.ceil(n / 2))
    for f, theta in zip(bank, angles, strict=True):
        own, orth = (abs((f * _step_edge(k, a)).sum()) for a in (theta, theta + 90))
        assert own > 5 * orth + 1e-6, (theta, own, orth)


def test_edge_bank_by_hand_and_its_scale():
    bank = edge_filter_bank(4, 2, 5)
    top_dark = np.repeat([[0.0], [0.0], [0.5], [1.0], [1.0]], 5, axis=1)  # a horizontal edge
    left_dark = top_dark.T  # a vertical edge
    f0 = bank[0, 0].double().numpy()
    assert abs((f0 * top_dark).sum()) > 10 * abs((f0 * left_dark).sum())
    assert torch.equal(bank[1], -bank[0])  # sign-alternated pairs
    assert torch.allclose(bank.flatten(1).norm(dim=1), torch.full((4,), 3**-0.5))
    assert torch.allclose(bank.sum(dim=(2, 3)), torch.zeros(4, 2), atol=1e-6)  # flat patches: no response


@pytest.mark.parametrize("init", ["edge_frozen", "edge_trainable"])
def test_frozen_bank_is_bit_identical_after_training_and_trainable_moves(init):
    data = load_dataset("edges", seed=0, test_seed=7, **TINY["data"])
    model = apply_init(
        create_model("lenet", channels=(4, 8), kernel_size=3, input_size=16, num_outputs=3), init
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert torch.equal(before["conv1.weight"], edge_filter_bank(4, 1, 3)) and not before["conv1.bias"].any()
    result = fit(model, data, TrainConfig(epochs=2, batch_size=16, lr=0.01), seed=0)
    after = result.model.state_dict()
    frozen = init == "edge_frozen"
    assert torch.equal(after["conv1.weight"], before["conv1.weight"]) == frozen
    assert torch.equal(after["conv1.bias"], before["conv1.bias"]) == frozen
    assert not torch.equal(after["conv2.weight"], before["conv2.weight"])


def test_edge_init_of_a_model_without_convolution_is_refused():
    with pytest.raises(ValueError, match="no convolution.*init=random"):
        apply_init(create_model("mlp", input_size=16), "edge_frozen")


# --- per-run rows -------------------------------------------------------------------------------------


def test_run_rows_record_factors_and_first_layer_kernels():
    spec = tiny()
    cell = Cell(
        "factors", "edges", "lenet", "maxpool", 0, 1.0, permute=True, location_shift=0.5, init="edge_frozen"
    )
    tables = run_cell(spec, cell, data_for(spec, cell))
    row = tables["runs"].iloc[0]
    assert row["status"] == "ok", row["error"]
    assert (row["permute"], row["location_shift"], row["init"]) == (True, 0.5, "edge_frozen")
    kernels = tables["kernels"]
    assert len(kernels) == 4 * 1 * 3 * 3 and set(kernels["layer"]) == {"conv1"}
    assert not kernels[["out_channel", "in_channel", "row", "col"]].duplicated().any()
    values = kernels.sort_values(["out_channel", "in_channel", "row", "col"])["value"].to_numpy()
    assert np.array_equal(values, edge_filter_bank(4, 1, 3).double().numpy().reshape(-1))  # frozen
    for mode in ("circular", "pad"):
        assert 0 <= row[f"shift_consistency_{mode}"] <= 1


def test_mlp_rows_have_variant_none_random_init_and_no_kernels():
    spec = tiny()
    cell = Cell("factors", "edges", "mlp", "none", 0, 1.0, permute=True)
    tables = run_cell(spec, cell, data_for(spec, cell))
    row = tables["runs"].iloc[0]
    assert row["status"] == "ok", row["error"]
    assert (row["variant"], row["init"], row["model"]) == ("none", "random", "mlp")
    assert math.isnan(row["location_shift"]) and len(tables["kernels"]) == 0
    assert 0 <= row["shift_consistency_circular"] <= 1


# --- storage and the grid end to end ------------------------------------------------------------------


def test_factor_grid_reads_back_with_the_new_columns(factor_study):
    study = read_study(factor_study)
    runs = study["runs"]
    assert len(runs) == N_TINY and runs["run_id"].is_unique and (runs["status"] == "ok").all()
    assert set(runs["run_id"]) == {run_id(tiny(), c) for c in cells_of(tiny())}
    assert runs.groupby(["permute", runs["location_shift"].fillna(-1)]).size().eq(3).all()
    mlp = runs[runs["model"] == "mlp"]
    assert set(mlp["variant"]) == {"none"} and set(mlp["init"]) == {"random"}
    per_run = study["kernels"].groupby("run_id").size()
    assert set(per_run.index) == set(runs.loc[runs["model"] == "lenet", "run_id"]) and set(per_run) == {36}
    assert runs[["shift_consistency_circular", "shift_consistency_pad"]].notna().all().all()
    plain = pd.read_parquet(factor_study / "kernels")
    assert len(plain) == len(study["kernels"])


def test_old_cells_without_a_kernels_file_are_finished_and_read(factor_study, tmp_path):
    import shutil

    out = tmp_path / "old"
    shutil.copytree(factor_study, out)
    shutil.rmtree(out / "kernels")
    paths = StudyPaths(out)
    assert len(finished_run_ids(paths)) == N_TINY
    study = read_study(out)
    assert len(study["runs"]) == N_TINY and len(study["kernels"]) == 0
    rid = sorted(study["runs"]["run_id"])[0]
    paths.table_dir("kernels").mkdir()
    paths.cell_file("kernels", rid).write_bytes(b"not parquet")
    with pytest.warns(UserWarning, match="kernels"):
        assert not is_finished(paths, rid)


def test_spec_files_of_this_version_are_compared_by_design(tmp_path):
    spec = load_spec("smoke")
    paths = StudyPaths(tmp_path)
    raw = spec.to_dict()
    raw["train"] = {k: v for k, v in raw["train"].items() if k != "fused"}  # a default added later
    paths.spec.write_text(yaml.safe_dump(raw))
    check_same_design(paths, spec)  # no error
    # one stored ok cell, which other model options would change: refused
    cell = cells_of(spec)[0]
    blank = {"string": "x", "int64": 0, "float64": 0.5, "boolean": False}
    row = {c: blank[d] for c, d in schema.RUNS.items()} | dataclasses.asdict(cell)
    row |= {"run_id": run_id(spec, cell), "status": "ok", "location_shift": math.nan}
    stored = schema.conform("runs", pd.DataFrame([row]))
    with pytest.raises(UsageError, match="models.lenet"):
        check_same_design(
            paths, from_dict(StudySpec, spec.to_dict() | {"model_options": {"channels": [2, 4]}}), stored
        )


def test_a_study_dir_of_the_old_run_id_scheme_is_refused(run_grid, tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    old = {k: v for k, v in load_spec("smoke").to_dict().items() if k not in ("models", "factors")}
    (out / "spec.yaml").write_text(yaml.safe_dump(old))
    code, _, stderr = run_grid("--study", "smoke", "--out", out, "--n-jobs", "1")
    assert code == 2 and "older version" in stderr and "another --out" in stderr


@pytest.mark.slow
def test_killed_factor_grid_resumes_only_unfinished_cells(start_grid, run_grid, tmp_path):
    path = write_tiny(tmp_path, train=TINY["train"] | {"epochs": 6})
    out = tmp_path / "study"
    proc = start_grid("--study", path, "--out", out, "--n-jobs", "1", "--quiet")
    runs_dir = StudyPaths(out).table_dir("runs")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if runs_dir.is_dir() and len(list(runs_dir.glob("*.parquet"))) >= 2:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the grid finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    survived = finished_run_ids(StudyPaths(out))
    assert 2 <= len(survived) < N_TINY
    code, stdout, _ = run_grid("--study", path, "--out", out, "--n-jobs", "1")
    assert code == 0
    assert f"{N_TINY - len(survived)} cell(s) run" in stdout
    study = read_study(out)
    assert len(study["runs"]) == N_TINY and study["runs"]["run_id"].is_unique
    assert study["kernels"].groupby("run_id").size().eq(36).sum() == 8


def test_write_cell_needs_every_table(tmp_path):
    spec = tiny()
    cell = cells_of(spec)[0]
    tables = run_cell(spec, cell, data_for(spec, cell))
    assert set(tables) == set(schema.TABLES)
    paths = StudyPaths(tmp_path)
    paths.prepare()
    write_cell(paths, tables)
    assert is_finished(paths, run_id(spec, cell))


def test_permuted_consistency_shifts_the_scene_not_the_permuted_pixels():
    # A model that un-permutes its input and then applies a plain model M sees, on permuted images,
    # exactly what M sees on plain ones: its consistency in a permuted cell must equal M's in a plain one.
    from experiments.cell import _consistency

    spec = tiny(consistency={"enabled": True, "n_images": 30})
    plain_cell = Cell("factors", "edges", "lenet", "maxpool", 0, 1.0)
    perm_cell = dataclasses.replace(plain_cell, permute=True)
    inverse = pixel_permutation(16, spec.test_seed)[1]

    class Bands(torch.nn.Module):  # the brightest third of the rows: a prediction that moves with shifts
        def forward(self, x):
            return torch.stack([x[:, 0, r : r + 6].mean(dim=(1, 2)) for r in (0, 5, 10)], dim=1)

    model = Bands()

    class Unpermute(torch.nn.Module):
        def forward(self, x):
            return model(apply_permutation(x, inverse))

    expected = _consistency(spec, plain_cell, model, data_for(spec, plain_cell).x_test)
    got = _consistency(spec, perm_cell, Unpermute(), data_for(spec, perm_cell).x_test)
    assert got == expected and 0 < expected["shift_consistency_circular"] < 1
