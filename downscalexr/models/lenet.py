"""One LeNet family, parameterised by its downsampling operator.

    input (B, C, H, W)
      -> conv k x k -> ReLU -> down          # (B, c1, H1, W1)
      -> conv k x k -> ReLU -> down          # (B, c2, H2, W2)
      -> head: flatten -> FC hidden... -> out    or    global average pool -> FC -> out

``down`` comes from :mod:`downscalexr.layers.downsample`. For ``strided`` the convolution takes
stride 2 and ``down`` is the identity, so every variant ends at the same (H2, W2) and the head has the
same shape. The file has no I/O and no randomness: weights are drawn by :func:`downscalexr.models.init`.

Every activation is an ``nn.ReLU`` module, registered right after its convolution or linear layer, so
:mod:`downscalexr.compress` can fuse and quantize the model (``quant_fuse_groups``) without changing
its float results or its state dict.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from downscalexr.layers.downsample import Downsample, get_downsample

HEADS = ("flatten", "gap")


class LeNet(nn.Module):
    """A two-stage convolutional network whose downsampling operator is an argument.

    Parameters
    ----------
    downsample : str or Downsample
        Operator name from the registry (``avgpool``, ``maxpool``, ``strided``, ...).
    in_channels : int
        Channels of the input image (1 for grayscale).
    num_outputs : int
        1 for binary tasks (a logit for the positive class), else the number of classes.
    channels : (int, int)
        Output channels of the two convolutions.
    kernel_size, padding : int
        Of both convolutions.
    input_size : int
        Side of the square input; fixes the flatten head's width.
    head : {"flatten", "gap"}
        ``flatten``: FC layers of widths ``hidden`` then ``num_outputs`` (the published LeNet);
        ``gap``: global average pooling then one FC layer.
    hidden : sequence of int
        Hidden widths of the flatten head.
    """

    def __init__(
        self,
        downsample: str | Downsample = "avgpool",
        *,
        in_channels: int = 1,
        num_outputs: int = 1,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 5,
        padding: int = 0,
        input_size: int = 64,
        head: str = "flatten",
        hidden: Sequence[int] = (120, 84),
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose from {', '.join(HEADS)}")
        if len(channels) != 2:
            raise ValueError(f"channels must give two widths, got {tuple(channels)}")
        op = get_downsample(downsample)
        self.downsample_name = op.name
        c1, c2 = channels
        # ReLU as modules (not torch.relu in forward) so quantization can fuse conv + ReLU; they hold no
        # state, so the state dict's keys and the seeded initial weights are as before.
        self.conv1 = nn.Conv2d(in_channels, c1, kernel_size, stride=op.conv_stride, padding=padding)
        self.act1 = nn.ReLU()
        self.down1 = op.module(c1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size, stride=op.conv_stride, padding=padding)
        self.act2 = nn.ReLU()
        self.down2 = op.module(c2)
        side = self._feature_side(in_channels, input_size)
        if side < 1:
            raise ValueError(
                f"input_size {input_size} is too small for two {kernel_size}x{kernel_size} convolutions "
                f"with padding {padding} and two halvings; use a larger input or padding"
            )
        self.feature_shape = (c2, side, side)
        if head == "flatten":
            widths = [c2 * side * side, *hidden]
            layers: list[nn.Module] = [nn.Flatten()]
            for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
                layers += [nn.Linear(w_in, w_out), nn.ReLU(inplace=True)]
            layers.append(nn.Linear(widths[-1], num_outputs))
        else:
            layers = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c2, num_outputs)]
        self.head = nn.Sequential(*layers)

    @torch.no_grad()
    def _feature_side(self, in_channels: int, input_size: int) -> int:
        # A dry run rather than a formula, so operators with their own padding rules size the head right.
        try:
            out = self.features(torch.zeros(1, in_channels, input_size, input_size))
        except RuntimeError:
            return 0
        return out.shape[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down1(self.act1(self.conv1(x)))  # (B, c1, H1, W1)
        return self.down2(self.act2(self.conv2(x)))  # (B, c2, H2, W2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, num_outputs)

    def quant_fuse_groups(self) -> list[list[str]]:
        """Names of the (layer, ReLU) pairs that quantization may fuse, in forward order."""
        groups = [["conv1", "act1"], ["conv2", "act2"]]
        return groups + relu_pairs(self.head, "head")


def relu_pairs(seq: nn.Sequential, prefix: str) -> list[list[str]]:
    """Names ``[prefix.i, prefix.i+1]`` of each conv or linear layer of ``seq`` followed by a ReLU."""
    layers = list(seq)
    return [
        [f"{prefix}.{i}", f"{prefix}.{i + 1}"]
        for i in range(len(layers) - 1)
        if isinstance(layers[i], (nn.Conv2d, nn.Linear)) and isinstance(layers[i + 1], nn.ReLU)
    ]
