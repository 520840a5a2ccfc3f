"""Training device (issue 19): ``train.device`` / ``--device``, the refusal of a GPU that is not there,
GPU assignment of the worker pool, determinism settings, and where the device is recorded.

No test here needs a GPU: the CUDA side is exercised through monkeypatched ``torch.cuda`` functions.
Tests that need real CUDA hardware are marked ``gpu`` and skipped where none is visible.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
import yaml

from downscalexr.data.base import ImageSplits
from downscalexr.models import create_model
from downscalexr.train import TrainConfig, device_name, fit, memory_format_for
from experiments._pool import Done, WorkerPool
from experiments._preflight import check_device
from experiments._worker import configure_device, gpu_environment, visible_gpus
from experiments.cell import cells_of, run_cell, run_id
from experiments.errors import UsageError
from experiments.grid import environment
from experiments.spec import STUDIES_DIR, StudySpec, from_dict

NO_GPU = "no CUDA GPU visible: the GPU path (training on cuda, its determinism) was not exercised"
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
TINY = yaml.safe_load((STUDIES_DIR / "smoke-factors.yaml").read_text()) | {"name": "devices"}


def _splits(n: int = 64, size: int = 16) -> ImageSplits:
    gen = torch.Generator().manual_seed(0)

    def split(m: int):
        y = (torch.arange(m) % 2).long()
        x = 0.2 * torch.rand(m, 1, size, size, generator=gen)
        x[y == 1, :, 4:9, 4:9] += 0.8
        return x, y

    (xt, yt), (xv, yv), (xs, ys) = split(n), split(32), split(32)
    return ImageSplits(xt, yt, xv, yv, xs, ys, class_names=("normal", "abnormal"))


def _model(seed: int = 0) -> torch.nn.Module:
    return create_model(
        "lenet", downsample="avgpool", seed=seed, input_size=16, channels=(4, 8), kernel_size=3
    )


def _fake_cuda(monkeypatch, count: int) -> None:
    """Make torch report ``count`` GPUs without touching a driver."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")


# --- the setting ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:0", "cuda:3"])
def test_valid_devices_are_accepted(device):
    assert TrainConfig(device=device).device == device


@pytest.mark.parametrize("device", ["gpu", "CUDA", "cuda:", "cuda:x", "mps", ""])
def test_an_unknown_device_is_rejected_with_the_valid_forms(device):
    with pytest.raises(ValueError, match="choose cpu, cuda or cuda:N"):
        TrainConfig(device=device)


def test_explicit_cpu_trains_bit_identically_to_the_default_and_returns_a_cpu_model():
    steps = {"steps": 12, "eval_every": 4, "batch_size": 16}
    a = fit(_model(), _splits(), TrainConfig(**steps), seed=3)
    b = fit(_model(), _splits(), TrainConfig(**steps, device="cpu"), seed=3)
    untimed = [[{k: v for k, v in row.items() if k != "seconds"} for row in r.history] for r in (a, b)]
    assert untimed[0] == untimed[1] and len(untimed[0]) == 3
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
        assert pb.device.type == "cpu"
    assert b.config["device"] == "cpu"


def test_the_memory_format_is_channels_last_only_for_models_with_a_convolution():
    mlp = create_model("mlp", downsample="avgpool", seed=0, input_size=16)
    assert memory_format_for(_model(), channels_last=True) == torch.channels_last
    assert memory_format_for(_model(), channels_last=False) == torch.contiguous_format
    assert memory_format_for(mlp, channels_last=True) == torch.contiguous_format


# --- run ids --------------------------------------------------------------------------------------------


def _without_device_field(config: TrainConfig):
    """The same training settings in a TrainConfig class that predates the ``device`` field."""
    fields = [
        (f.name, f.type, dataclasses.field(default=f.default))
        for f in dataclasses.fields(TrainConfig)
        if f.name != "device"
    ]
    old_class = dataclasses.make_dataclass("TrainConfig", fields, frozen=True)
    return old_class(**{k: v for k, v in dataclasses.asdict(config).items() if k != "device"})


def test_cpu_keeps_the_run_ids_of_studies_stored_before_the_device_setting():
    spec = from_dict(StudySpec, TINY)
    cell = cells_of(spec)[0]
    before = dataclasses.replace(spec, train=_without_device_field(spec.train))
    explicit_cpu = dataclasses.replace(spec, train=dataclasses.replace(spec.train, device="cpu"))
    assert run_id(spec, cell) == run_id(before, cell) == run_id(explicit_cpu, cell)
    on_gpu = dataclasses.replace(spec, train=dataclasses.replace(spec.train, device="cuda"))
    on_gpu1 = dataclasses.replace(spec, train=dataclasses.replace(spec.train, device="cuda:1"))
    assert len({run_id(spec, cell), run_id(on_gpu, cell), run_id(on_gpu1, cell)}) == 3


# --- refusing a GPU that is not there ------------------------------------------------------------------


def test_cuda_without_a_gpu_is_refused_naming_what_was_found(monkeypatch):
    _fake_cuda(monkeypatch, 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(UsageError) as info:
        check_device("cuda")
    message = str(info.value)
    for found in ("torch.cuda.is_available() = False", "torch.cuda.device_count() = 0"):
        assert found in message
    assert "CUDA_VISIBLE_DEVICES = ''" in message and "--device cpu" in message


def test_a_gpu_index_beyond_the_visible_ones_is_refused(monkeypatch):
    _fake_cuda(monkeypatch, 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    check_device("cuda")
    check_device("cuda:1")
    check_device("cpu")
    with pytest.raises(UsageError, match=r"GPU index 2.*device_count\(\) = 2.*'unset'"):
        check_device("cuda:2")


def test_the_grid_exits_2_before_writing_anything_when_cuda_is_not_there(run_grid, tmp_path, monkeypatch):
    _fake_cuda(monkeypatch, 0)
    out = tmp_path / "study"
    code, _, stderr = run_grid("--study", "smoke", "--out", out, "--device", "cuda", "--seeds", "1")
    assert code == 2
    assert "torch.cuda.is_available() = False" in stderr
    assert not out.exists()


def test_device_option_sets_train_device_and_conflicts_with_a_different_set(run_grid, tmp_path):
    out = tmp_path / "study"
    code, _, stderr = run_grid(
        "--study", "smoke", "--out", out, "--device", "cuda", "--set", "train.device=cpu", "--dry-run"
    )
    assert code == 2 and "train.device" in stderr


# --- workers and determinism ----------------------------------------------------------------------------


def test_visible_gpus_come_from_cuda_visible_devices_else_the_device_count(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5,")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    _fake_cuda(monkeypatch, 3)
    assert visible_gpus() == ["0", "1", "2"]


def test_workers_get_the_gpus_round_robin(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    seen = [gpu_environment(slot, "cuda", ["2", "5"]) for slot in range(5)]
    assert [env["CUDA_VISIBLE_DEVICES"] for env in seen] == ["2", "5", "2", "5", "2"]
    assert all(env["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" for env in seen)
    # a fixed index keeps the runner's view (N indexes it); the CPU changes nothing
    assert "CUDA_VISIBLE_DEVICES" not in gpu_environment(1, "cuda:1", ["2", "5"])
    assert gpu_environment(0, "cpu", ["2", "5"]) == {}


def test_the_pool_starts_each_worker_with_its_slots_environment():
    # os.getenv runs in the workers: each reports the variable its slot was given
    pool = WorkerPool(
        2, os.getenv, lambda item: ("DSX_TEST_SLOT",), env_of=lambda slot: {"DSX_TEST_SLOT": f"s{slot}"}
    )
    events = list(pool.run(range(6)))
    assert all(isinstance(e, Done) for e in events) and len(events) == 6
    assert {e.result for e in events} == {"s0", "s1"}


@pytest.fixture
def restored_determinism(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    state = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    yield
    torch.use_deterministic_algorithms(state[0], warn_only=state[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = state[2:]


def test_a_cuda_worker_turns_on_deterministic_algorithms(restored_determinism):
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    configure_device("cpu")
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
    configure_device("cuda")
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


# --- where the device is recorded -----------------------------------------------------------------------


def test_runs_record_the_training_device():
    spec = from_dict(StudySpec, TINY)
    cell = cells_of(spec)[0]
    from experiments._worker import data_for

    row = run_cell(spec, cell, data_for(spec, cell))["runs"].iloc[0]
    assert row["status"] == "ok"
    assert row["device"] == "cpu" and row["device_name"] == device_name("cpu") != ""


def test_environment_json_names_the_device_and_the_visible_gpus(monkeypatch):
    _fake_cuda(monkeypatch, 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,4")
    env = environment([], 2, "processes", "cuda")
    assert env["device"] == "cuda" and env["device_name"] == "Fake GPU"
    assert env["cuda"]["device_count"] == 2 and env["cuda"]["visible_devices"] == "3,4"
    assert env["cuda"]["names"] == ["Fake GPU", "Fake GPU"]
    assert environment([], 1, "processes")["device"] == "cpu"


# --- on real hardware -----------------------------------------------------------------------------------


@pytest.mark.gpu
@needs_gpu
def test_training_on_cuda_repeats_bit_identically_and_returns_a_cpu_model(restored_determinism):
    configure_device("cuda")
    config = TrainConfig(steps=12, eval_every=4, batch_size=16, device="cuda")
    a, b = (fit(_model(), _splits(), config, seed=1) for _ in range(2))
    assert all(p.device.type == "cpu" for p in a.model.parameters())
    assert [r["val_loss"] for r in a.history] == [r["val_loss"] for r in b.history]
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    on_cpu = fit(_model(), _splits(), dataclasses.replace(config, device="cpu"), seed=1)
    for pa, pc in zip(a.model.parameters(), on_cpu.model.parameters(), strict=True):
        torch.testing.assert_close(pa, pc, rtol=1e-3, atol=1e-4)


def test_the_report_says_which_device_trained_the_runs():
    import pandas as pd

    from analysis.report.provenance import _training_device

    gpu = pd.DataFrame({"device": ["cuda", "cuda"], "device_name": ["Fake GPU", "Fake GPU"]})
    assert _training_device(gpu).startswith("Trained on: cuda (Fake GPU)")
    old = pd.DataFrame({"seed": [0]})  # a study stored before the device columns existed
    assert _training_device(old).startswith("Trained on: cpu (stored before")
