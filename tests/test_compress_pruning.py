"""Level registry and unstructured pruning: exact sparsity in scope, permanent masks, compounding rounds."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from downscalexr.compress import (
    FACT_KEYS,
    CompressionLevel,
    FinetuneConfig,
    apply_compression,
    get_level,
    list_levels,
)
from downscalexr.models import create_model

INPUT = (1, 16, 16)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add contention on a shared machine
    yield
    torch.set_num_threads(threads)


def small_lenet(op: str = "avgpool") -> nn.Module:
    return create_model(
        "lenet", downsample=op, seed=3, channels=(4, 8), kernel_size=3, input_size=16, hidden=(24,)
    )


def weights(model: nn.Module, kinds=(nn.Conv2d, nn.Linear)) -> list[torch.Tensor]:
    return [m.weight.detach() for m in model.modules() if type(m) in kinds]


def zeros(tensors) -> int:
    return sum(int((t == 0).sum()) for t in tensors)


def numel(tensors) -> int:
    return sum(t.numel() for t in tensors)


def tiny_data(n: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *INPUT, generator=g), torch.randint(0, 2, (n,), generator=g)


def test_registry_names_and_unknown_level_lists_valid_ones() -> None:
    names = list_levels()
    for name in ("none", "prune_l1_50", "prune_l1_80", "prune_l1_conv_50", "prune_iter_3x20_ft"):
        assert name in names
    for name in ("prune_channels_30_ft", "int8_dynamic", "int8_static"):
        assert name in names
    with pytest.raises(ValueError, match="unknown compression level 'prune_99'.*prune_l1_50.*int8_static"):
        get_level("prune_99")


def test_level_validation_rejects_inconsistent_levels() -> None:
    with pytest.raises(ValueError, match="_ft"):
        CompressionLevel("prune_x", "prune_l1", 0.5, finetune=FinetuneConfig(steps=5))
    with pytest.raises(ValueError, match="amount"):
        CompressionLevel("prune_x", "prune_l1", 1.5)
    with pytest.raises(ValueError, match="unknown compression method"):
        CompressionLevel("x", "prune_magic")
    with pytest.raises(ValueError, match="scope"):
        CompressionLevel("x", "prune_l1", 0.5, scope="head")


@pytest.mark.parametrize("level, amount", [("prune_l1_50", 0.5), ("prune_l1_80", 0.8)])
def test_global_pruning_has_exact_sparsity_over_all_weights(level: str, amount: float) -> None:
    parent = small_lenet()
    pruned, facts = apply_compression(level, parent, seed=0, input_shape=INPUT)
    w = weights(pruned)
    assert zeros(w) == round(amount * numel(w))  # torch's rule: round(amount * n) weights removed
    assert facts["sparsity"] == zeros(w) / numel(w)
    # biases untouched, and the survivors are the largest magnitudes of the parent's weights
    biases = [m.bias for m in pruned.modules() if type(m) in (nn.Conv2d, nn.Linear)]
    assert zeros(biases) == 0
    before = torch.cat([t.abs().flatten() for t in weights(parent)])
    after = torch.cat([t.flatten() for t in w])
    assert before[after != 0].min() >= before[after == 0].max()


def test_conv_scope_prunes_convolutions_only() -> None:
    pruned, facts = apply_compression("prune_l1_conv_50", small_lenet(), seed=0, input_shape=INPUT)
    convs, heads = weights(pruned, (nn.Conv2d,)), weights(pruned, (nn.Linear,))
    assert zeros(convs) == round(0.5 * numel(convs))
    assert zeros(heads) == 0
    assert facts["sparsity_conv"] == facts["sparsity"] == zeros(convs) / numel(convs)
    assert facts["sparsity_head"] == 0.0
    assert set(facts["layer_sparsity"]) == {"conv1", "conv2", "head.1", "head.3"}


def test_masks_are_permanent_and_parent_untouched() -> None:
    parent = small_lenet()
    state = {k: v.clone() for k, v in parent.state_dict().items()}
    pruned, facts = apply_compression("prune_l1_50", parent, seed=0, input_shape=INPUT)
    assert list(pruned.state_dict()) == list(
        state
    )  # same keys in the same order: no weight_orig / weight_mask
    assert not any(hasattr(m, "weight_mask") for m in pruned.modules())
    assert all(torch.equal(parent.state_dict()[k], v) for k, v in state.items())
    n_params = sum(p.numel() for p in parent.parameters())
    assert facts["params"] == n_params
    assert facts["nonzero_params"] == n_params - zeros(weights(pruned))
    assert set(facts) == set(FACT_KEYS)


def test_iterative_amounts_compound_and_finetune_keeps_pruned_weights_at_zero() -> None:
    calls = []

    def record(model: nn.Module, steps: int, seed: int) -> None:
        calls.append((steps, seed))

    pruned, facts = apply_compression(
        "prune_iter_3x20_ft", small_lenet(), seed=0, input_shape=INPUT, finetune=record
    )
    n = numel(weights(pruned))
    remaining = n
    for _ in range(3):  # each round removes round(0.2 * remaining) of the weights still alive
        remaining -= round(0.2 * remaining)
    assert zeros(weights(pruned)) == n - remaining
    assert facts["target_sparsity"] == pytest.approx(0.488)
    assert facts["sparsity"] == pytest.approx(0.488, abs=2 / n)
    assert [s for s, _ in calls] == [20, 20, 20] and len({seed for _, seed in calls}) == 3
    assert facts["finetune_steps"] == 60

    # with the built-in loop the weights change, yet the pruned ones stay exactly zero
    x, y = tiny_data()
    tuned, facts2 = apply_compression("prune_iter_3x20_ft", small_lenet(), seed=0, train_data=(x, y))
    assert zeros(weights(tuned)) == n - remaining
    assert not torch.equal(
        tuned.conv1.weight[tuned.conv1.weight != 0], pruned.conv1.weight[pruned.conv1.weight != 0]
    )
    assert math.isfinite(facts2["finetune_last_loss"])


def test_finetuning_is_seeded() -> None:
    x, y = tiny_data()
    a, _ = apply_compression("prune_iter_3x20_ft", small_lenet(), seed=4, train_data=(x, y))
    b, _ = apply_compression("prune_iter_3x20_ft", small_lenet(), seed=4, train_data=(x, y))
    c, _ = apply_compression("prune_iter_3x20_ft", small_lenet(), seed=5, train_data=(x, y))
    assert all(
        torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_finetune_levels_need_training_data() -> None:
    with pytest.raises(ValueError, match="train_data"):
        apply_compression("prune_iter_3x20_ft", small_lenet(), seed=0, input_shape=INPUT)


def test_conv_scope_on_mlp_is_unsupported_not_an_error() -> None:
    mlp = create_model("mlp", seed=0, input_size=16, hidden=(8,), match=None)
    model, facts = apply_compression("prune_l1_conv_50", mlp, seed=0, input_shape=INPUT)
    assert model is None and facts["status"] == "unsupported" and "scope 'conv'" in facts["reason"]


def test_unstructured_sparsity_shrinks_gzip_size_not_raw_size() -> None:
    parent = small_lenet()
    _, dense = apply_compression("none", parent, seed=0, input_shape=INPUT)
    _, sparse = apply_compression("prune_l1_80", parent, seed=0, input_shape=INPUT)
    assert sparse["state_dict_bytes"] == pytest.approx(dense["state_dict_bytes"], rel=0.01)
    assert sparse["state_dict_gzip_bytes"] < 0.5 * dense["state_dict_gzip_bytes"]
    assert sparse["flops"] == dense["flops"]  # zeros are still multiplied
