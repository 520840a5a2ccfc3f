"""int8 levels: agreement with fp32 on small trained models, a quarter of the bytes, unsupported operators."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from downscalexr.compress import FinetuneConfig, apply_compression, finetune, state_dict_size
from downscalexr.compress._errors import UnsupportedCompression
from downscalexr.compress.quantize import STATIC_UNSUPPORTED, quantize_static
from downscalexr.layers import get_downsample
from downscalexr.models import create_model

INPUT = (1, 16, 16)
# Stated before measuring: int8 may move a probability a little, but on average by at most 0.02, may flip
# at most 3 % of the decisions, and may change accuracy by at most 2 points (the report's default margin).
MEAN_PROB_TOLERANCE = 0.02
MIN_LABEL_AGREEMENT = 0.97
ACCURACY_MARGIN = 0.02
STATIC_UNSUPPORTED_OPS = ["blurpool", "maxblurpool", "aps", "lppool", "softpool", "mixedpool"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add contention on a shared machine
    yield
    torch.set_num_threads(threads)


def planted_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Label 1 when the centre 8x8 patch of a noise image has a positive mean (learnable, not trivial)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *INPUT, generator=g)
    return x, (x[:, 0, 4:12, 4:12].mean(dim=(1, 2)) > 0).long()


def small_model(family: str, op: str = "avgpool") -> nn.Module:
    if family == "mlp":
        return create_model("mlp", seed=0, input_size=16, hidden=(64, 32), match=None)
    return create_model(
        family, downsample=op, seed=0, channels=(8, 16), kernel_size=3, input_size=16, hidden=(32,)
    )


@pytest.fixture(scope="module")
def train_test():
    return planted_task(512, 0), planted_task(256, 1)


@pytest.fixture(scope="module")
def trained(train_test):
    """Small models trained 300 steps on the planted task (well above chance, not at ceiling)."""
    (x, y), _ = train_test
    models = {}
    torch.set_num_threads(1)
    for key in [("lenet", "avgpool"), ("lenet", "maxpool"), ("lenet", "strided"), ("mlp", "none")]:
        model = small_model(*key)
        finetune(model, x, y, FinetuneConfig(steps=300, lr=2e-3), seed=0)
        models[key] = model
    return models


@pytest.mark.parametrize("level", ["int8_dynamic", "int8_static"])
@pytest.mark.parametrize(
    "key", [("lenet", "avgpool"), ("lenet", "maxpool"), ("lenet", "strided"), ("mlp", "none")]
)
def test_int8_agrees_with_fp32_within_tolerance(trained, train_test, key, level) -> None:
    (x, _), (x_test, y_test) = train_test
    model = trained[key]
    quantized, facts = apply_compression(level, model, seed=0, calib_data=x)
    assert facts["status"] == "ok" and facts["quant_engine"] == "x86"
    assert facts["quant_path"].startswith("torch.ao.quantization eager")
    with torch.no_grad():
        p_fp32 = torch.sigmoid(model(x_test))[:, 0]
        p_int8 = torch.sigmoid(quantized(x_test))[:, 0]
    acc_fp32 = ((p_fp32 > 0.5).long() == y_test).double().mean()
    acc_int8 = ((p_int8 > 0.5).long() == y_test).double().mean()
    assert acc_fp32 > 0.7  # the model learned something: the comparison is not between two coin flips
    assert (p_int8 - p_fp32).abs().mean() <= MEAN_PROB_TOLERANCE
    assert ((p_int8 > 0.5) == (p_fp32 > 0.5)).double().mean() >= MIN_LABEL_AGREEMENT
    assert abs(acc_int8 - acc_fp32) <= ACCURACY_MARGIN


def test_quantized_layers_are_recorded(trained, train_test) -> None:
    (x, _), _ = train_test
    model = trained[("lenet", "avgpool")]
    dynamic, facts = apply_compression("int8_dynamic", model, seed=0, calib_data=x)
    assert facts["quantized_layers"] == "head.1,head.3"
    assert facts["fp32_layers"].startswith("conv1,conv2") and "downsampling operator" in facts["fp32_layers"]
    assert type(dynamic.conv1) is nn.Conv2d  # convolutions really stay fp32
    static, facts = apply_compression("int8_static", model, seed=0, calib_data=x)
    assert facts["quantized_layers"] == "conv1,conv2,head.1,head.3"
    assert static.module.conv1.weight().dtype == torch.qint8  # fused conv + ReLU with int8 weights


def size_model() -> nn.Module:
    # layers large enough that serialization overhead is small next to the weights
    return create_model("lenet", seed=0, channels=(8, 16), kernel_size=3, input_size=32, hidden=(128,))


def test_static_int8_state_dict_is_about_a_quarter() -> None:
    model = size_model()
    x = torch.randn(32, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    _, fp32 = apply_compression("none", model, seed=0, input_shape=(1, 32, 32))
    _, int8 = apply_compression("int8_static", model, seed=0, calib_data=x)
    # every conv and linear layer is quantized: int8 weights, fp32 biases and per-channel scales
    assert 0.24 <= int8["state_dict_bytes"] / fp32["state_dict_bytes"] <= 0.30


def test_dynamic_int8_quarters_the_linear_layers_only() -> None:
    model = size_model()
    quantized, _ = apply_compression("int8_dynamic", model, seed=0, input_shape=(1, 32, 32))
    head_fp32, _ = state_dict_size(model, ("head.",))
    head_int8, _ = state_dict_size(quantized, ("head.",))
    assert 0.24 <= head_int8 / head_fp32 <= 0.30
    conv_fp32, _ = state_dict_size(model, ("conv",))
    conv_int8, _ = state_dict_size(quantized, ("conv",))
    assert conv_int8 == conv_fp32


@pytest.mark.parametrize("op", STATIC_UNSUPPORTED_OPS)
def test_static_int8_unsupported_operators_record_a_reason(op: str) -> None:
    x = torch.randn(8, *INPUT, generator=torch.Generator().manual_seed(0))
    model, facts = apply_compression("int8_static", small_model("lenet", op), seed=0, calib_data=x)
    assert model is None and facts["status"] == "unsupported"
    assert facts["reason"] and facts["state_dict_bytes"] is None
    dynamic, facts = apply_compression("int8_dynamic", small_model("lenet", op), seed=0, calib_data=x)
    assert facts["status"] == "ok"  # dynamic quantization leaves the operator in fp32


@pytest.mark.parametrize("op", STATIC_UNSUPPORTED_OPS)
def test_static_unsupported_list_is_true(op: str) -> None:
    # Bypassing the list, the quantized forward itself fails, and the generic check reports it.
    module = get_downsample(op).module(8)
    assert any(isinstance(m, tuple(STATIC_UNSUPPORTED)) for m in module.modules())
    x = torch.randn(8, *INPUT, generator=torch.Generator().manual_seed(0))
    with pytest.raises(UnsupportedCompression, match="no quantized kernel"):
        quantize_static(small_model("lenet", op).eval(), x, check=False)


@pytest.mark.parametrize("op", ["subsample", "spacetodepth"])
def test_other_operators_quantize_statically(op: str) -> None:
    x = torch.randn(8, *INPUT, generator=torch.Generator().manual_seed(0))
    model, facts = apply_compression("int8_static", small_model("lenet", op), seed=0, calib_data=x)
    assert facts["status"] == "ok" and model(x).shape == (8, 1)


def test_static_level_needs_calibration_images() -> None:
    with pytest.raises(ValueError, match="calib_data"):
        apply_compression("int8_static", small_model("lenet"), seed=0, input_shape=INPUT)
