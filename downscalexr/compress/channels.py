"""Structured channel pruning that physically removes convolution channels (Torch-Pruning).

Unstructured zeros leave every multiply-add in place; removing whole output channels of a convolution
shrinks that convolution, the input side of the layer that consumes it (the next convolution, or the
columns of the dense layer after the flatten) and therefore FLOPs, parameters and latency. Torch-Pruning
traces the model, finds every layer coupled to a channel and cuts them together.

Each convolution (groups = 1) loses the ``round(ratio * C)`` output channels of smallest L1 filter norm,
ranked within the layer (so the proportions of the architecture are kept) on the trained weights before
any cut. The dense head is not narrowed. Afterwards the result is *verified*: the pruned model must
compute what the original computes when the consumers' weights on the removed channels are zeroed, so
a coupling the tracer missed is caught here, not in the results.

``blurpool`` / ``maxblurpool`` hold their fixed depthwise blur filter as a ``(C, 1, k, k)`` buffer that
the tracer does not see (it kept the old channel count and the forward failed); a small customised
pruner (:func:`_customized_pruners`) tells Torch-Pruning to cut that buffer's rows with the channels.

Operators Torch-Pruning 1.6 cannot handle (found on the default LeNet; each case gives its reason):

- ``aps`` / ``softpool``: they reshape every channel into 2x2 windows ``(B, C, h, 2, w, 2)``; the
  tracer's index mapping for that reshape did not finish in 100 s (one run grew past 20 GB of memory
  in about ten minutes), so these are refused before tracing.
- ``spacetodepth``: ``pixel_unshuffle`` sends channel ``c`` to channels ``4c .. 4c+3`` of the 1x1 mix
  convolution; the tracer maps it one to one and the mix convolution gets the wrong width.
- a model without convolutions (the MLP) has no channels to remove.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from downscalexr.compress._errors import UnsupportedCompression
from downscalexr.layers.antialias import BlurPool2d
from downscalexr.layers.polyphase import AdaptivePolyphase2d
from downscalexr.layers.pooling import SoftPool2d
from downscalexr.layers.space_to_depth import SpaceToDepth2d

_WINDOW_RESHAPE = (
    "reshapes each channel into 2x2 windows (B, C, h, 2, w, 2), and Torch-Pruning's index mapping for "
    "that reshape does not finish (over 100 s, growing past 20 GB, on the default LeNet)"
)
UNPRUNABLE = {
    AdaptivePolyphase2d: _WINDOW_RESHAPE,
    SoftPool2d: _WINDOW_RESHAPE,
    SpaceToDepth2d: "pixel_unshuffle sends channel c to channels 4c..4c+3 of the 1x1 mix convolution, "
    "which Torch-Pruning maps one to one, so the mix convolution gets the wrong input width",
}
VERIFY_TOLERANCE = 1e-4


def channels_to_remove(channels: int, ratio: float) -> int:
    """``round(ratio * channels)`` (halves up), keeping at least one channel.

    Examples
    --------
    >>> channels_to_remove(32, 0.3), channels_to_remove(10, 0.3), channels_to_remove(1, 0.9)
    (10, 3, 0)
    """
    return min(channels - 1, int(ratio * channels + 0.5))


def check_channel_prunable(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The convolutions to prune, or :class:`UnsupportedCompression` saying why there are none."""
    for name, module in model.named_modules():
        for kind, reason in UNPRUNABLE.items():
            if isinstance(module, kind):
                raise UnsupportedCompression(f"{type(module).__name__} at {name!r}: {reason}")
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
    if not convs:
        raise UnsupportedCompression("the model has no convolution channels to remove")
    return convs


def prune_channels(
    model: nn.Module, ratio: float, input_shape: tuple[int, int, int], seed: int
) -> dict[str, tuple[int, int]]:
    """Remove ``ratio`` of each convolution's output channels in place; return ``{conv: (before, after)}``.

    Parameters
    ----------
    model : nn.Module
        In eval mode; modified in place.
    ratio : float
        Fraction in (0, 1) of the output channels removed from each convolution.
    input_shape : (C, H, W)
        One input's shape (for tracing and the verification).
    seed : int
        Draws the random verification batch.

    Raises
    ------
    UnsupportedCompression
        For the operators listed in the module docstring, or when the pruned model does not match the
        original with the removed channels zeroed.
    """
    import torch_pruning as tp  # imported here: only this level needs it

    if not 0.0 < ratio < 1.0:
        raise ValueError(f"channel pruning ratio must lie in (0, 1), got {ratio}")
    convs = check_channel_prunable(model)
    reference = copy.deepcopy(model)
    names = {module: name for name, module in model.named_modules()}
    before = {name: conv.out_channels for name, conv in convs}
    alive_in = {m: list(range(m.weight.shape[1])) for m in names if isinstance(m, (nn.Conv2d, nn.Linear))}
    # rank every filter on the trained model before any cut, so the order of the cuts does not matter
    norms = {name: conv.weight.detach().abs().sum(dim=(1, 2, 3)) for name, conv in convs}  # (C_out,) each
    with warnings.catch_warnings():
        # operator parameters outside a layer (mixedpool's scalar mixing weight) draw a warning that
        # Torch-Pruning may cut them; a scalar has nothing to cut, and _verify catches any real mistake
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs=torch.zeros(1, *input_shape), customized_pruners=_customized_pruners(tp)
        )
    for name, conv in convs:
        if conv.out_channels != before[name]:
            continue  # already cut as part of a coupled group
        n = channels_to_remove(conv.out_channels, ratio)
        if n == 0:
            continue
        idxs = sorted(torch.argsort(norms[name], stable=True)[:n].tolist())
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=idxs)
        if not graph.check_pruning_group(group):
            raise UnsupportedCompression(f"removing {n} channels of {name!r} would empty a coupled layer")
        for item in group:
            target = item.dep.target.module
            if graph.is_in_channel_pruning_fn(item.dep.handler) and target in alive_in:
                _zero_inputs(reference, names[target], alive_in, target, item.idxs)
        group.prune()
    _verify(reference, model, input_shape, seed)
    return {name: (before[name], conv.out_channels) for name, conv in convs}


def _customized_pruners(tp) -> dict:
    """Torch-Pruning handlers for our operators with per-channel state: :class:`BlurPool2d`'s filter rows."""

    class BlurPoolPruner(tp.pruner.BasePruningFunc):
        def prune_out_channels(self, layer: BlurPool2d, idxs: list[int]) -> BlurPool2d:
            keep = sorted(set(range(layer.channels)) - set(idxs))
            layer.filter = layer.filter[keep].contiguous()  # (C', 1, k, k), still a non-persistent buffer
            layer.channels = len(keep)
            return layer

        prune_in_channels = prune_out_channels  # in and out channels are the same (depthwise)

        def get_out_channels(self, layer: BlurPool2d) -> int:
            return layer.channels

        get_in_channels = get_out_channels

    return {BlurPool2d: BlurPoolPruner()}


@torch.no_grad()
def _zero_inputs(reference: nn.Module, name: str, alive: dict, module: nn.Module, idxs: list[int]) -> None:
    # idxs index the module's inputs as they are now; map them to the original inputs, then zero
    # those columns in the unpruned reference (a removed channel then contributes nothing there)
    drop = set(idxs)
    original = [alive[module][i] for i in idxs]
    alive[module] = [a for j, a in enumerate(alive[module]) if j not in drop]
    reference.get_submodule(name).weight[:, original] = 0


@torch.no_grad()
def _verify(reference: nn.Module, pruned: nn.Module, input_shape: tuple[int, int, int], seed: int) -> None:
    from downscalexr.seeding import torch_generator

    x = torch.randn(8, *input_shape, generator=torch_generator(seed, "compress", "verify"))
    try:
        got = pruned(x)
    except RuntimeError as exc:
        raise UnsupportedCompression(f"the pruned model fails its forward pass: {exc}") from None
    want = reference(x)
    err = float((got - want).abs().max())
    scale = max(1.0, float(want.abs().max()))
    if err > VERIFY_TOLERANCE * scale:
        raise UnsupportedCompression(
            f"the pruned model differs from the original with the removed channels zeroed (max |diff| "
            f"{err:.3g}): Torch-Pruning missed a coupling in this model"
        )
