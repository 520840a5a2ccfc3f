"""The MLP baseline: parameter counts by hand, matching to CNN families, seeding, errors."""

from __future__ import annotations

import pytest
import torch

from downscalexr.models import MLP, count_params, create_model
from downscalexr.models.mlp import mlp_param_count, width_for_params


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_param_count_by_hand():
    # 2x2 grayscale -> 3 -> 2: (4 + 1) * 3 + (3 + 1) * 2 = 23
    assert mlp_param_count(4, [3], 2) == 23
    assert count_params(MLP(in_channels=1, input_size=2, num_outputs=2, hidden=[3])) == 23
    # No hidden layer: logistic regression on 3 * 4 * 4 inputs
    assert mlp_param_count(48, [], 1) == 49 == count_params(MLP(in_channels=3, input_size=4, hidden=[]))


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("width", [1, 17, 300])
def test_width_for_params_recovers_a_planted_width(width, depth):
    target = mlp_param_count(4096, [width] * depth, 1)
    assert width_for_params(target, 4096, 1, depth) == width
    # A target between two widths goes to the nearer one.
    above = mlp_param_count(4096, [width + 1] * depth, 1)
    assert width_for_params(target + (above - target) // 3, 4096, 1, depth) == width


@pytest.mark.parametrize(
    ("cnn", "kwargs"),
    [
        ("lenet", {"input_size": 64}),
        ("lenet_gap", {"input_size": 64}),
        ("downscalexr_lenet", {"input_size": 64}),
        ("lenet", {"input_size": 32, "num_outputs": 5, "in_channels": 3}),
    ],
)
@pytest.mark.parametrize("depth", [1, 2])
def test_matches_cnn_parameter_count_within_5_percent(cnn, kwargs, depth):
    net = create_model("mlp", match=cnn, depth=depth, **kwargs)
    target = count_params(create_model(cnn, **kwargs))
    assert net.target_params == target
    assert abs(count_params(net) / target - 1) <= 0.05
    size, channels = kwargs["input_size"], kwargs.get("in_channels", 1)
    out = net(torch.randn(2, channels, size, size))
    assert out.shape == (2, kwargs.get("num_outputs", 1))


def test_matches_published_downscalexr_lenet_at_320():
    net = create_model("mlp", match="downscalexr_lenet", input_size=320)
    assert abs(count_params(net) / 11_396_621 - 1) <= 0.05


def test_explicit_params_and_explicit_widths():
    net = create_model("mlp", params=100_000, input_size=16, depth=1)
    assert abs(count_params(net) - 100_000) <= 0.05 * 100_000
    fixed = create_model("mlp", hidden=[7, 5], input_size=8)
    assert count_params(fixed) == (64 + 1) * 7 + (7 + 1) * 5 + (5 + 1) * 1
    assert fixed.target_params is None


def test_same_seed_same_weights_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    a = create_model("mlp", match="lenet", input_size=32, seed=3).state_dict()
    b = create_model("mlp", match="lenet", input_size=32, seed=3).state_dict()
    c = create_model("mlp", match="lenet", input_size=32, seed=4).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["net.1.weight"], c["net.1.weight"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"match": "mlp"}, "must name a CNN family"),
        ({"match": "resnet"}, "unknown model 'resnet'"),
        ({"params": 1000, "hidden": [4]}, "not both"),
        ({"params": 10}, "below the"),
        ({"depth": 0}, "depth must be >= 1"),
        ({"params": 4001, "input_size": 1, "depth": 1, "tolerance": 0.0}, "change depth or tolerance"),
        ({"hidden": [4], "channels": (8, 8)}, "unexpected arguments"),
    ],
)
def test_errors_name_the_mistake(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_model("mlp", **kwargs)


def test_wrong_input_shape_is_a_clear_error():
    net = create_model("mlp", hidden=[4], input_size=8)
    with pytest.raises(ValueError, match=r"expects inputs of shape"):
        net(torch.randn(2, 1, 16, 16))
