"""Seed-batched (vmapped) training: each member's result is the single-cell fit()'s, within float rounding.

The reference is :func:`downscalexr.train.fit`, trained one member at a time from the same initial weights
and seed; the ensemble path shares no code with its training loop except the loss and the batch order.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from downscalexr.data.base import ImageSplits
from downscalexr.ensemble import fit_ensemble
from downscalexr.models import create_model
from downscalexr.train import FitResult, TrainConfig, fit

SEEDS = (0, 1, 2)
ROW_KEYS = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy")


def _splits(seed: int = 0, n: int = 72, classes: int = 2, size: int = 12) -> ImageSplits:
    """A learnable toy task: class k carries a bright square at the k-th position (some noise)."""
    gen = torch.Generator().manual_seed(seed)

    def split(m: int):
        y = (torch.arange(m) % classes).long()
        x = 0.3 * torch.rand(m, 1, size, size, generator=gen)
        for k in range(1, classes):
            x[y == k, :, 2 * k : 2 * k + 4, 2:6] += 0.7
        return x, y

    (xt, yt), (xv, yv), (xs, ys) = split(n), split(24), split(12)
    return ImageSplits(xt, yt, xv, yv, xs, ys, class_names=tuple(f"c{k}" for k in range(classes)))


def _model(seed: int, variant: str = "maxpool", classes: int = 2) -> torch.nn.Module:
    outputs = 1 if classes == 2 else classes
    return create_model(
        "lenet", downsample=variant, seed=seed, input_size=12, channels=(2, 3), kernel_size=3,
        padding=1, hidden=(8,), num_outputs=outputs,
    )  # fmt: skip


def _both(config: TrainConfig, data, indices=None, variant="maxpool", classes=2, models=None):
    """(single-cell results, ensemble results) for SEEDS from the same initial weights."""
    torch.set_num_threads(1)
    models = models or [_model(s, variant, classes) for s in SEEDS]
    datas = data if isinstance(data, list) else [data] * len(SEEDS)
    indices = indices or [None] * len(SEEDS)
    members = zip(models, datas, SEEDS, indices, strict=True)
    single = [fit(_copy(m), d, config, s, train_index=i) for m, d, s, i in members]
    together = fit_ensemble([_copy(m) for m in models], datas, config, SEEDS, train_indices=indices)
    return single, together


def _copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def _assert_same(single: FitResult, member: FitResult, tol: float = 1e-5) -> None:
    assert member.status == single.status
    assert member.steps_run == single.steps_run
    assert member.best_epoch == single.best_epoch and member.best_step == single.best_step
    assert len(member.history) == len(single.history)
    for a, b in zip(single.history, member.history, strict=True):
        for key in ROW_KEYS:
            assert b[key] == pytest.approx(a[key], rel=tol, abs=tol), key
    weights = member.model.state_dict()
    for name, wa in single.model.state_dict().items():
        torch.testing.assert_close(weights[name], wa, rtol=tol, atol=tol, msg=name)
    assert next(member.model.parameters()).device.type == "cpu" and not member.model.training


@pytest.mark.parametrize("variant", ["avgpool", "maxpool", "strided"])
def test_step_budget_members_match_single_cell_fits(variant):
    config = TrainConfig(batch_size=16, lr=3e-3, steps=40, eval_every=10)
    single, together = _both(config, _splits(), variant=variant)
    for a, b in zip(single, together, strict=True):
        _assert_same(a, b)
    # the members did train apart: different seeds, different weights
    assert not torch.equal(together[0].model.conv1.weight, together[1].model.conv1.weight)


def test_members_stop_early_at_their_own_validation():
    """A high learning rate and patience 0: two members stop early, after different periods, one never."""
    config = TrainConfig(batch_size=8, lr=3e-2, steps=200, eval_every=5, patience=0)
    single, together = _both(config, _splits(seed=3))
    for a, b in zip(single, together, strict=True):
        _assert_same(a, b)
    assert len({len(r.history) for r in single}) > 1, "the case should stop members at different times"


def test_epoch_protocol_multiclass_class_weights_and_subsets():
    data = _splits(classes=3, n=90)
    indices = [torch.randperm(90, generator=torch.Generator().manual_seed(s))[:40] for s in SEEDS]
    config = TrainConfig(epochs=4, batch_size=16, lr=3e-3, class_weight=True, min_steps=12)
    single, together = _both(config, data, indices=indices, classes=3)
    for a, b in zip(single, together, strict=True):
        _assert_same(a, b)
        assert b.config["examples_per_epoch"] == a.config["examples_per_epoch"]


def test_without_restore_best_members_keep_their_final_weights():
    config = TrainConfig(batch_size=16, lr=3e-3, steps=30, eval_every=10, restore_best=False)
    single, together = _both(config, [_splits(seed=s) for s in SEEDS])  # one data set per member
    for a, b in zip(single, together, strict=True):
        _assert_same(a, b)


def test_a_diverging_member_does_not_touch_the_others():
    models = [_model(s) for s in SEEDS]
    with torch.no_grad():
        for p in models[1].parameters():
            p.mul_(1e19)  # logits overflow to inf: this member's loss turns non-finite
    config = TrainConfig(batch_size=16, lr=3e-3, steps=30, eval_every=10)
    single, together = _both(config, _splits(), models=models)
    assert single[1].status == together[1].status == "diverged"
    assert together[1].error == single[1].error
    for m in (0, 2):
        _assert_same(single[m], together[m])


def test_batch_norm_and_mismatched_members_are_refused():
    config = TrainConfig(batch_size=16, steps=10, eval_every=5)
    resnet = [create_model("resnet8", downsample="strided", seed=s, input_size=12) for s in (0, 1)]
    with pytest.raises(ValueError, match="BatchNorm.*one at a time"):
        fit_ensemble(resnet, _splits(), config, (0, 1))
    other = create_model("lenet", seed=1, input_size=12, channels=(4, 3), kernel_size=3, padding=1)
    mixed = [_model(0), other]
    with pytest.raises(ValueError, match="one architecture"):
        fit_ensemble(mixed, _splits(), config, (0, 1))
    with pytest.raises(ValueError, match="one seed per model"):
        fit_ensemble([_model(0)], _splits(), config, (0, 1))
    epochs = dataclasses.replace(config, steps=0, eval_every=0)
    with pytest.raises(ValueError, match="one size"):
        fit_ensemble([_model(0), _model(1)], _splits(), epochs, (0, 1), train_indices=[range(10), range(12)])


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU visible: the ensemble was not exercised on a GPU"
)
def test_on_cuda_members_match_single_cell_fits_and_rerun_bit_identically():
    config = TrainConfig(batch_size=16, lr=3e-3, steps=40, eval_every=10, device="cuda")
    single, together = _both(config, _splits())
    for a, b in zip(single, together, strict=True):
        _assert_same(a, b, tol=1e-3)
    again = fit_ensemble([_model(s) for s in SEEDS], _splits(), config, SEEDS)
    for a, b in zip(together, again, strict=True):
        for (name, wa), (_, wb) in zip(
            a.model.state_dict().items(), b.model.state_dict().items(), strict=True
        ):
            assert torch.equal(wa, wb), name


def test_each_member_records_its_share_of_the_training_time():
    config = TrainConfig(batch_size=16, lr=3e-3, steps=10, eval_every=5)
    t0 = time.perf_counter()
    results = fit_ensemble([_model(s) for s in SEEDS], _splits(), config, SEEDS)
    elapsed = time.perf_counter() - t0
    shares = {r.train_seconds for r in results}
    assert len(shares) == 1 and 0 < shares.pop() * len(SEEDS) <= elapsed
