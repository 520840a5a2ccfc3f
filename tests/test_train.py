"""Training: bit-identical reruns, divergence handling, early stopping, class weighting."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from downscalexr.data.base import ImageSplits
from downscalexr.models import create_model
from downscalexr.train import FitResult, TrainConfig, evaluate, fit, predict_scores


def _blob_splits(n: int = 96, size: int = 16, seed: int = 0) -> ImageSplits:
    """A learnable toy task: positives carry a bright square, negatives do not."""
    gen = torch.Generator().manual_seed(seed)

    def split(m: int):
        y = (torch.arange(m) % 2).long()
        x = 0.2 * torch.rand(m, 1, size, size, generator=gen)
        x[y == 1, :, 4:9, 4:9] += 0.8
        return x, y

    (xt, yt), (xv, yv), (xs, ys) = split(n), split(32), split(32)
    return ImageSplits(xt, yt, xv, yv, xs, ys, class_names=("normal", "abnormal"))


def _small_model(variant: str = "avgpool", seed: int = 0) -> torch.nn.Module:
    return create_model("lenet", downsample=variant, seed=seed, input_size=16, channels=(4, 8), kernel_size=3)


def _run(seed: int, variant: str = "avgpool", **overrides) -> FitResult:
    config = TrainConfig(**{"epochs": 3, "batch_size": 16, "lr": 3e-3, **overrides})
    return fit(_small_model(variant, seed), _blob_splits(), config, seed=seed)


@pytest.mark.parametrize("variant", ["avgpool", "maxpool", "strided"])
def test_same_seed_gives_bit_identical_weights_and_history(variant):
    torch.set_num_threads(1)
    a, b = _run(3, variant), _run(3, variant)
    untimed = [{k: v for k, v in row.items() if k != "seconds"} for row in a.history]
    assert untimed == [{k: v for k, v in row.items() if k != "seconds"} for row in b.history]
    for (name, pa), (_, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name


def test_different_seeds_give_different_weights():
    a, b = _run(1), _run(2)
    assert not torch.equal(a.model.conv1.weight, b.model.conv1.weight)


def test_training_learns_the_toy_task():
    result = _run(0, epochs=6)
    assert result.status == "ok"
    scores = predict_scores(result.model, _blob_splits().x_test)
    accuracy = float(((scores >= 0.5).long() == _blob_splits().y_test).float().mean())
    assert accuracy >= 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_non_finite_loss_ends_as_diverged_with_history():
    result = _run(0, lr=1e30, optimizer="sgd", epochs=5)
    assert result.status == "diverged"
    assert "non-finite" in result.error
    assert result.epochs_run < 5
    assert all(math.isfinite(row["val_loss"]) or row["val_loss"] != row["val_loss"] for row in result.history)


def test_best_epoch_is_restored_and_patience_stops_early():
    result = _run(0, epochs=30, patience=0, monitor="val_loss")
    losses = [row["val_loss"] for row in result.history]
    assert result.epochs_run < 30
    assert result.best_epoch == min(range(len(losses)), key=losses.__getitem__)


def test_min_steps_lengthens_epochs_for_small_subsets():
    data = _blob_splits()
    config = TrainConfig(epochs=2, batch_size=16, min_steps=12)
    result = fit(_small_model(), data, config, seed=0, train_index=torch.arange(32))
    assert result.epochs_run == 2  # validation still runs once per epoch
    assert result.config["examples_per_epoch"] == 96  # 6 full batches of 16 per epoch = 12 steps


@pytest.mark.parametrize(("n", "min_steps", "steps"), [(40, 10, 10), (40, 0, 6), (40, 4, 6), (90, 30, 30)])
def test_min_steps_gives_exactly_that_many_steps_when_it_binds(n, min_steps, steps):
    """Whole passes would overshoot (40 examples, batch 16: 3 steps a pass, so 10 steps = 4 passes = 12)."""
    model = _small_model()
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(len(i[0])) if m.training else None)
    config = TrainConfig(epochs=2, batch_size=16, min_steps=min_steps)
    fit(model, _blob_splits(), config, seed=0, train_index=torch.arange(n))
    assert len(calls) == steps
    if min_steps > 6:
        assert set(calls) == {16}  # full batches only


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_fused_optimiser_matches_the_reference_update(optimizer):
    """The fused kernel is an implementation detail: weights agree with the loop version to rounding."""
    runs = [
        fit(_small_model(), _blob_splits(), TrainConfig(epochs=2, optimizer=optimizer, fused=f), seed=0)
        for f in (False, True)
    ]
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_train_index_selects_the_subset_and_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        fit(_small_model(), _blob_splits(), TrainConfig(epochs=1), seed=0, train_index=torch.arange(0))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("optimizer", "adamw", "choose from adam, sgd"),
        ("monitor", "acc", "choose from"),
        ("epochs", 0, ">= 1"),
    ],
)
def test_bad_config_is_rejected_with_the_valid_choices(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_class_weight_shifts_predictions_toward_the_rare_class():
    base = _blob_splits()
    keep = torch.cat([torch.nonzero(base.y_train == 0)[:, 0], torch.nonzero(base.y_train == 1)[:4, 0]])
    config = dict(epochs=1, batch_size=64, lr=1e-3)
    plain = fit(_small_model(), base, TrainConfig(**config), seed=0, train_index=keep)
    weighted = fit(_small_model(), base, TrainConfig(**config, class_weight=True), seed=0, train_index=keep)
    mean_plain = predict_scores(plain.model, base.x_test).mean()
    mean_weighted = predict_scores(weighted.model, base.x_test).mean()
    assert mean_weighted > mean_plain


# ---------------------------------------------------------------- the step-budget protocol


def _count_training_batches(model: torch.nn.Module) -> list[int]:
    calls: list[int] = []
    model.register_forward_hook(lambda m, i, o: calls.append(len(i[0])) if m.training else None)
    return calls


@pytest.mark.parametrize("n", [5, 20, 96])
def test_step_budget_gives_every_subset_the_same_full_batches(n):
    """The rule of the built-in studies: the same optimiser steps whatever the subset's size."""
    model = _small_model()
    calls = _count_training_batches(model)
    config = TrainConfig(batch_size=16, steps=25, eval_every=10)
    result = fit(model, _blob_splits(), config, seed=0, train_index=torch.arange(n))
    assert calls == [16] * 25
    assert result.steps_run == 25
    assert [row["step"] for row in result.history] == [10, 20, 25]  # the last period holds the rest
    assert [row["epoch"] for row in result.history] == [0, 1, 2]


def test_step_budget_visits_every_example_once_per_pass():
    """Batches come from consecutive shuffled passes: 40 examples, 5 batches of 16 = 2 whole passes."""
    data = _blob_splits()
    seen: list[torch.Tensor] = []
    model = _small_model()
    model.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().clone()) if m.training else None)
    fit(model, data, TrainConfig(batch_size=16, steps=5, eval_every=5), seed=0, train_index=torch.arange(40))
    rows = torch.cat(seen).flatten(1)  # (80, pixels), channels_last copies of the training images
    first, second = rows[:40], rows[40:]
    images = data.x_train[:40].flatten(1)
    for half in (first, second):
        matched = (half[:, None, :] == images[None, :, :]).all(-1)  # (40, 40)
        assert matched.any(1).all() and (matched.sum(0) == 1).all()  # a permutation of the 40


def test_step_budget_stops_after_patience_and_restores_the_best_validation():
    data = _blob_splits()
    config = TrainConfig(batch_size=16, lr=3e-3, steps=400, eval_every=4, patience=2, monitor="val_accuracy")
    result = fit(_small_model(), data, config, seed=0, train_index=torch.arange(32))
    accuracies = [row["val_accuracy"] for row in result.history]
    assert result.steps_run < 400  # validation accuracy stops improving long before (at 1.0 at the latest)
    best = accuracies.index(max(accuracies))  # the first validation that reached the maximum
    assert result.best_epoch == best and result.best_step == result.history[best]["step"]
    assert len(accuracies) == best + 1 + 3  # stopped at the third validation without improvement
    restored = evaluate(result.model, data.x_val, data.y_val, data.num_classes)
    assert restored["loss"] == pytest.approx(result.history[best]["val_loss"], rel=1e-6)
    assert restored["loss"] != pytest.approx(result.history[-1]["val_loss"], rel=1e-6)


def test_step_budget_reruns_are_bit_identical():
    config = TrainConfig(batch_size=16, steps=12, eval_every=5)
    a, b = (fit(_small_model(), _blob_splits(), config, seed=4, train_index=torch.arange(30)) for _ in "ab")
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": 10}, "eval_every must be in 1..10"),
        ({"steps": 10, "eval_every": 11}, "eval_every must be in 1..10"),
        ({"eval_every": 5}, "set steps too"),
        ({"steps": 10, "eval_every": 5, "min_steps": 40}, "remove min_steps"),
        ({"steps": -1}, "steps must be >= 0"),
        ({"patience": -1}, "patience must be >= 0"),
    ],
)
def test_step_budget_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides)


def test_without_restore_best_the_final_weights_are_kept_and_named():
    data = _blob_splits()
    config = TrainConfig(batch_size=16, steps=30, eval_every=10, monitor="val_loss", restore_best=False)
    result = fit(_small_model(), data, config, seed=0, train_index=torch.arange(32))
    assert result.steps_run == 30 and result.best_epoch == 2 and result.best_step == 30
    final = evaluate(result.model, data.x_val, data.y_val, data.num_classes)
    assert final["loss"] == pytest.approx(result.history[-1]["val_loss"], rel=1e-6)
    # the same run with restore_best keeps the weights of its lowest validation loss instead
    kept = fit(
        _small_model(),
        data,
        dataclasses.replace(config, restore_best=True),
        seed=0,
        train_index=torch.arange(32),
    )
    losses = [row["val_loss"] for row in kept.history]
    assert evaluate(kept.model, data.x_val, data.y_val, 2)["loss"] == pytest.approx(min(losses), rel=1e-6)
