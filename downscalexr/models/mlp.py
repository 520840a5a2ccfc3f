"""The MLP baseline: a CNN's parameter budget without its inductive bias.

An MLP sees the image as a flat vector, so it has neither locality nor weight sharing nor any
downsampling operator. Matched to a CNN's parameter count, it answers "how much of the CNN's accuracy
comes from its architecture rather than its capacity?", and under a fixed pixel permutation (which an
MLP cannot notice) it is the control for the CNN's spatial prior.

    input (B, C, H, W) -> flatten (B, C*H*W) -> [Linear -> ReLU] x depth -> Linear -> (B, num_outputs)

All hidden layers share one width ``w``; with ``n = C*H*W`` inputs, ``o`` outputs and ``d`` hidden
layers the model has ``P(w) = (n + 1) w + (d - 1)(w + 1) w + (w + 1) o`` parameters, a quadratic in
``w`` solved for the target count. The file has no I/O and no randomness (weights come from
:func:`downscalexr.models.init.init_weights`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from downscalexr.models.lenet import relu_pairs
from downscalexr.models.profile import count_params
from downscalexr.models.registry import create_model, register_model

DEFAULT_TOLERANCE = 0.05


class MLP(nn.Module):
    """Fully connected network on the flattened image.

    Parameters
    ----------
    in_channels, input_size : int
        Input images are ``(in_channels, input_size, input_size)``.
    num_outputs : int
        1 for binary tasks (a logit for the positive class), else the number of classes.
    hidden : sequence of int
        Widths of the hidden layers (each followed by ReLU); may be empty (logistic regression).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        input_size: int = 64,
        num_outputs: int = 1,
        hidden: Sequence[int] = (256,),
    ) -> None:
        super().__init__()
        if any(w < 1 for w in hidden):
            raise ValueError(f"hidden widths must be >= 1, got {tuple(hidden)}")
        self.input_shape = (in_channels, input_size, input_size)
        widths = [in_channels * input_size * input_size, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(w_in, w_out), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(widths[-1], num_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"MLP expects inputs of shape (B, {self.input_shape}), got {tuple(x.shape)}")
        return self.net(x)  # (B, num_outputs)

    def quant_fuse_groups(self) -> list[list[str]]:
        """Names of the (Linear, ReLU) pairs that quantization may fuse, in forward order."""
        return relu_pairs(self.net, "net")


def mlp_param_count(in_features: int, hidden: Sequence[int], num_outputs: int) -> int:
    """Parameters (weights and biases) of an :class:`MLP` with these widths.

    Examples
    --------
    >>> mlp_param_count(4096, [300, 300], 1)  # 4096*300+300 + 300*300+300 + 300+1
    1319701
    """
    widths = [in_features, *hidden, num_outputs]
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def width_for_params(target: int, in_features: int, num_outputs: int, depth: int) -> int:
    """The hidden width ``w >= 1`` whose :func:`mlp_param_count` is closest to ``target``.

    Solves ``(d - 1) w**2 + (n + 1 + (d - 1) + o) w + o - target = 0`` and compares the two integers
    around the root.

    Raises
    ------
    ValueError
        If ``depth < 1``, or ``target`` is below the count of the narrowest MLP (width 1).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1 hidden layer to match a parameter count, got {depth}")
    smallest = mlp_param_count(in_features, [1] * depth, num_outputs)
    if target < smallest:
        raise ValueError(
            f"target of {target:,} parameters is below the {smallest:,} of a width-1 MLP with {depth} hidden "
            f"layer(s) on {in_features:,} inputs; use a smaller input, fewer layers, or a larger target"
        )
    a = depth - 1
    b = in_features + 1 + (depth - 1) + num_outputs
    c = num_outputs - target
    root = -c / b if a == 0 else (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    candidates = {max(1, math.floor(root)), max(1, math.ceil(root))}
    return min(
        candidates, key=lambda w: (abs(mlp_param_count(in_features, [w] * depth, num_outputs) - target), w)
    )


@register_model("mlp")
def mlp(
    downsample: str = "avgpool",
    *,
    match: str | None = "lenet",
    params: int | None = None,
    hidden: Sequence[int] | None = None,
    depth: int = 2,
    tolerance: float = DEFAULT_TOLERANCE,
    in_channels: int = 1,
    input_size: int = 64,
    num_outputs: int = 1,
    **match_kwargs,
) -> MLP:
    """An MLP whose parameter count matches a CNN's (default) or a given count, or with given widths.

    Parameters
    ----------
    downsample : str
        The MLP has no downsampling; this names the variant of ``match`` whose count is matched (all
        parameter-free operators give the same count).
    match : str or None
        Registered CNN family to match, built with the same ``in_channels``, ``input_size``,
        ``num_outputs`` and ``match_kwargs``. ``input_size`` defaults to 64 (the default study) for
        both, not to the CNN family's own default: pass ``input_size=320`` to match
        ``downscalexr_lenet`` at its published size.
    params : int, optional
        Match this parameter count instead of a CNN's.
    hidden : sequence of int, optional
        Explicit hidden widths; no matching (``match`` and ``params`` must then be unset or default).
    depth : int
        Number of equal-width hidden layers when matching.
    tolerance : float
        Largest accepted relative difference between the MLP's and the target count.

    Raises
    ------
    ValueError
        For ``match="mlp"``, both ``params`` and ``hidden``, an unreachable target, or a mismatch above
        ``tolerance``.

    Examples
    --------
    >>> from downscalexr.models import count_params
    >>> net = create_model("mlp", match="lenet", input_size=64)
    >>> abs(count_params(net) / net.target_params - 1) < 0.05
    True
    """
    if params is not None and hidden is not None:
        raise ValueError("give either params (a count to match) or hidden (explicit widths), not both")
    in_features = in_channels * input_size * input_size
    shape = dict(in_channels=in_channels, input_size=input_size, num_outputs=num_outputs)
    if hidden is not None:
        if match_kwargs:
            raise ValueError(f"unexpected arguments {sorted(match_kwargs)} for an MLP with explicit widths")
        model = MLP(**shape, hidden=hidden)
        model.matched_to, model.target_params = None, None
        return model
    if params is not None:
        target, matched_to = int(params), f"{params:,} parameters"
    else:
        if match is None or match == "mlp":
            raise ValueError(f"match must name a CNN family to match (e.g. 'lenet'), got {match!r}")
        cnn = create_model(match, downsample=downsample, seed=0, **shape, **match_kwargs)
        target, matched_to = count_params(cnn), f"{match}/{downsample}"
    width = width_for_params(target, in_features, num_outputs, depth)
    got = mlp_param_count(in_features, [width] * depth, num_outputs)
    if abs(got / target - 1) > tolerance:
        raise ValueError(
            f"closest MLP ({depth} hidden layers of width {width}) has {got:,} parameters, "
            f"{abs(got / target - 1):.1%} from the target {target:,} ({matched_to}); "
            "change depth or tolerance"
        )
    model = MLP(**shape, hidden=[width] * depth)
    model.matched_to, model.target_params = matched_to, target
    return model
