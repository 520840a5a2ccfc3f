"""int8 quantization on CPU, behind one module: dynamic (Linear only) and static post-training.

**Which path, and why.** Everything here uses PyTorch's *eager* ``torch.ao.quantization`` API, which
runs real int8 kernels (FBGEMM / oneDNN through the ``x86`` quantized engine) for ``nn.Linear`` and
``nn.Conv2d`` and for the pooling layers between them. It is deprecated in torch 2.14 but works; its
deprecation warnings are silenced here only, and every result records ``quant_path`` and
``quant_engine``. torchao, the maintained successor, reaches int8 convolution kernels on CPU only via
PT2E export plus ``torch.compile`` (Inductor) lowering, which needs a C++ toolchain and a compilation
per model and returns a compiled graph rather than a module whose state dict can be sized; without the
lowering its conv path is quantize-dequantize in fp32 arithmetic. If the eager API disappears, this
module is the only file to port.

**Dynamic** quantization stores ``nn.Linear`` weights as int8 and quantizes activations per batch at run
time. Convolutions and the downsampling operator stay in fp32: for a CNN it measures the head only.

**Static** quantization also quantizes the convolutions: conv + ReLU (and linear + ReLU) are fused, the
model is wrapped in quantize / dequantize stubs (:class:`torch.ao.quantization.QuantWrapper`, so the
model family itself needs no stubs and its float results stay untouched), observers are calibrated on
training images, then the model is converted. Activations are quint8 per tensor (histogram observer),
weights qint8 per output channel, the ``x86`` default. The downsampling operator must then run on
quantized tensors; operators without quantized kernels are refused (:data:`STATIC_UNSUPPORTED`).

The quantized engine is a process-wide setting: after a quantization call it is ``x86``, and it must stay
so while the quantized model runs (its packed weights belong to that engine).
"""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

from downscalexr.compress._errors import UnsupportedCompression
from downscalexr.layers.antialias import BlurPool2d
from downscalexr.layers.polyphase import AdaptivePolyphase2d
from downscalexr.layers.pooling import LPPool2d, MixedPool2d, SoftPool2d

QUANT_PATH = "torch.ao.quantization eager (deprecated in torch 2.14)"
ENGINE = "x86"
CALIBRATION_BATCH = 64

STATIC_UNSUPPORTED = {
    BlurPool2d: "the depthwise blur is a functional float convolution with a fixed filter; there is no "
    "quantized kernel for it (aten::_slow_conv2d_forward on QuantizedCPU)",
    AdaptivePolyphase2d: "choosing the phase by L2 norm needs pow / sum / advanced indexing, which have "
    "no quantized kernels (empty_strided not supported on quantized tensors)",
    LPPool2d: "the L2 norm of each window needs pow, which has no quantized kernel (aten::pow)",
    SoftPool2d: "the softmax weights need exp and window views, which have no quantized kernels",
    MixedPool2d: "mixing max and average pooling with a learned float weight multiplies a quantized "
    "tensor by a float one, which quantized kernels do not do",
}


@contextlib.contextmanager
def _eager_api():
    """Select the x86 engine and silence the eager API's own deprecation and observer warnings."""
    if ENGINE not in torch.backends.quantized.supported_engines:
        raise UnsupportedCompression(
            f"the {ENGINE!r} quantized engine is not available in this torch build "
            f"(supported: {', '.join(torch.backends.quantized.supported_engines)})"
        )
    torch.backends.quantized.engine = ENGINE
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"Please use quant_min and quant_max")
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor")
        yield


def _layer_names(model: nn.Module, kinds: tuple[type, ...]) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, kinds)]


def quantize_dynamic_linear(model: nn.Module) -> tuple[nn.Module, dict]:
    """Dynamic int8 quantization of every ``nn.Linear``; everything else stays fp32.

    Returns
    -------
    (nn.Module, dict)
        The quantized model and facts: ``quant_path``, ``quant_engine``, ``quantized_layers`` and
        ``fp32_layers`` (comma-separated names).

    Raises
    ------
    UnsupportedCompression
        If the model has no linear layer.
    """
    linear = _layer_names(model, (nn.Linear,))
    if not linear:
        raise UnsupportedCompression("the model has no linear layer to quantize dynamically")
    with _eager_api():
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8)
    facts = {
        "quant_path": f"{QUANT_PATH}: quantize_dynamic",
        "quant_engine": ENGINE,
        "quantized_layers": ",".join(linear),
        "fp32_layers": ",".join(_layer_names(model, (nn.Conv2d,))) + " and the downsampling operator",
    }
    return quantized, facts


def check_static_quantizable(model: nn.Module) -> None:
    """Raise :class:`UnsupportedCompression` if a module of ``model`` has no quantized kernel."""
    for name, module in model.named_modules():
        for kind, reason in STATIC_UNSUPPORTED.items():
            if isinstance(module, kind):
                raise UnsupportedCompression(f"{type(module).__name__} at {name!r}: {reason}")


@torch.no_grad()
def quantize_static(
    model: nn.Module, calibration: torch.Tensor, *, max_examples: int = 512, check: bool = True
) -> tuple[nn.Module, dict]:
    """Static post-training int8 quantization of convolutions and linear layers, calibrated on images.

    Parameters
    ----------
    model : nn.Module
        Float model (consumed: fused in place). If it has ``quant_fuse_groups()``, those
        (layer, ReLU) pairs are fused first.
    calibration : torch.Tensor
        Training images ``(N, C, H, W)``; the first ``max_examples`` calibrate the observers.
    max_examples : int
        Calibration set size.
    check : bool
        Refuse operators listed in :data:`STATIC_UNSUPPORTED` before trying (``False`` is for tests that
        show those entries are true).

    Returns
    -------
    (nn.Module, dict)
        The quantized model (float in, float out) and facts as in :func:`quantize_dynamic_linear`.

    Raises
    ------
    UnsupportedCompression
        For an operator without quantized kernels, found by the list or by the first quantized forward.
    """
    if len(calibration) == 0:
        raise ValueError("static quantization needs calibration images; pass training images")
    if check:
        check_static_quantizable(model)
    quantized_kinds = (nn.Conv2d, nn.Linear)
    layers = _layer_names(model, quantized_kinds)
    with _eager_api():
        from torch.ao.quantization import QuantWrapper, convert, fuse_modules, get_default_qconfig, prepare

        model.eval()
        if hasattr(model, "quant_fuse_groups"):
            fuse_modules(model, model.quant_fuse_groups(), inplace=True)
        wrapped = QuantWrapper(model).eval()
        wrapped.qconfig = get_default_qconfig(ENGINE)
        prepared = prepare(wrapped)
        images = calibration[:max_examples]
        for start in range(0, len(images), CALIBRATION_BATCH):
            prepared(images[start : start + CALIBRATION_BATCH])
        quantized = convert(prepared)
        try:
            quantized(images[:2])
        except (RuntimeError, NotImplementedError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnsupportedCompression(
                f"an operation of the model has no quantized kernel: {first}"
            ) from None
    facts = {
        "quant_path": f"{QUANT_PATH}: fuse, prepare, calibrate ({len(images)} training images), convert",
        "quant_engine": ENGINE,
        "quantized_layers": ",".join(layers),
        "fp32_layers": "",
    }
    return quantized, facts
