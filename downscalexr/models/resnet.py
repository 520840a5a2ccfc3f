"""A CIFAR-style residual family (ResNet-8/14/20) whose every spatial reduction is the operator under study.

Model card
----------
He et al. (2016, section 4.2) CIFAR ResNet with BatchNorm, depth ``6n + 2``, ``n`` basic blocks per stage::

    input (B, C, H, W)
      -> stem: conv3x3 C->16 -> BN -> ReLU [-> down, only with stem_down=True]   # (B, 16, H, W)
      -> stage 1: n blocks 16->16, no reduction                                  # (B, 16, H, W)
      -> stage 2: first block 16->32 reduces by 2, then n - 1 blocks             # (B, 32, H/2, W/2)
      -> stage 3: first block 32->64 reduces by 2, then n - 1 blocks             # (B, 64, H/4, W/4)
      -> global average pool -> FC 64 -> num_outputs

    basic block:           x -> conv3x3 -> BN -> ReLU -> [down] -> conv3x3 -> BN -> (+) -> ReLU
    shortcut, same shape:  x ------------------------------------------------------^
    shortcut, reducing:    x -> [down] -> conv1x1 -> BN ----------------------------^

``down`` is the operator from :mod:`downscalexr.layers.downsample`, placed where the LeNet places it
(after a convolution's activation; Zhang 2019 puts BlurPool at the same place in his anti-aliased
ResNet). For ``strided`` it is the identity and the convolutions take stride 2 instead: the reducing
3x3 convolution, the 1x1 shortcut convolution (the usual "option B" projection) and, with
``stem_down``, the stem. So every reduction -- main path *and* shortcut -- goes through the
operator, and ``subsample`` (every second pixel) followed by the 1x1 convolution *is* ``strided``'s
shortcut. The CIFAR stem keeps the resolution (``stem_down=False``, two reductions, as the LeNet has);
``stem_down=True`` adds a third for larger inputs (e.g. 64 x 64 or 320 x 320 images).

Parameter shapes are identical for every operator without parameters of its own (nine of the eleven),
and so are the seeded initial weights (:func:`downscalexr.models.init.build_seeded` draws them in
module order). The two exceptions, as for the LeNet:

- ``mixedpool``: one learned scalar per operator instance (2 on the main paths + 2 on the shortcuts,
  and 1 more in the stem with ``stem_down``), set without random draws, so every shared parameter
  keeps ``avgpool``'s initial value.
- ``spacetodepth``: a bias-free 1x1 convolution ``4c -> c`` per instance, ``4c**2`` parameters: on the
  main paths ``c`` = 32 and 64, on the shortcuts (which reduce *before* their projection) ``c`` = 16
  and 32, i.e. 4 * (32**2 + 64**2 + 16**2 + 32**2) = 25,600 extra (plus 1,024 with ``stem_down``);
  they are convolutions, so the layers after the first one get different seeded initial values.

Parameter counts (3 x 32 x 32 input, 10 outputs), computed by
``python -c "from downscalexr.models.resnet import parameter_table; print(*parameter_table(), sep='\\n')"``:

=========  =================  =========  ==============
family     nine operators     mixedpool  spacetodepth
=========  =================  =========  ==============
resnet8    78,042             78,046     103,642
resnet14   175,258            175,262    200,858
resnet20   272,474            272,478    298,074
=========  =================  =========  ==============

(1 x 64 x 64 input, 1 output: 77,169 / 174,385 / 271,601 for the nine, 4 more for ``mixedpool``,
25,600 more for ``spacetodepth``; the counts do not depend on the input side, because the head is a
global average pool.) "Nine operators" are ``avgpool``,
``maxpool``, ``strided``, ``blurpool``, ``maxblurpool``, ``aps``, ``subsample``, ``lppool`` and
``softpool``. The option-B projections cost 16*32 + 32*64 + 2 * (32 + 64) = 2,752 parameters more
than He's parameter-free "option A" (ResNet-20: 0.27 M, as in the paper's table 6).

Notes
-----
- ``aps`` chooses its phase per branch: the main path and the shortcut of a reducing block pick the
  phase of largest norm of *their own* input, which can differ, so the two branches may be offset by
  one pixel when they are added. Exact shift-equivariance of the sum needs both branches to keep the
  same phase, a coupling the registry's operator does not have; read an ``aps`` ResNet as "APS at
  every reduction", not as a truly shift-invariant ResNet (Chaman & Dokmanic 2021).
- Every ReLU is an out-of-place ``nn.ReLU`` module, so backward hooks (Grad-CAM) work and
  quantization can fuse ``conv -> BN -> ReLU`` (:meth:`ResNet.quant_fuse_groups`); the residual
  addition is a plain ``+``.
- The file has no I/O and no randomness: weights are drawn by :mod:`downscalexr.models.init`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from downscalexr.layers.downsample import Downsample, get_downsample

#: Basic blocks per stage of each registered depth (depth = 6 n + 2).
DEPTHS = {8: 1, 14: 2, 20: 3}


def _conv3x3(c_in: int, c_out: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut; reduces the resolution by 2 when ``op`` is given.

    Parameters
    ----------
    c_in, c_out : int
        Channels in and out.
    op : Downsample or None
        The reduction operator, or None for a block that keeps the resolution (then ``c_in`` must
        equal ``c_out`` and the shortcut is the identity).
    """

    def __init__(self, c_in: int, c_out: int, op: Downsample | None) -> None:
        super().__init__()
        if op is None and c_in != c_out:
            raise ValueError(f"a block without reduction keeps its width; got {c_in} -> {c_out}")
        stride = op.conv_stride if op is not None else 1
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = nn.ReLU()
        self.down = op.module(c_out) if op is not None else nn.Identity()
        self.conv2 = _conv3x3(c_out, c_out, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        if op is None:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                op.module(c_in),
                nn.Conv2d(c_in, c_out, 1, stride=op.conv_stride, bias=False),
                nn.BatchNorm2d(c_out),
            )
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.down(self.act1(self.bn1(self.conv1(x))))  # (B, c_out, H', W')
        out = self.bn2(self.conv2(out))  # (B, c_out, H', W')
        return self.act2(out + self.shortcut(x))  # (B, c_out, H', W')


class ResNet(nn.Module):
    """CIFAR-style ResNet whose reductions (stem optional, stage transitions, shortcuts) use one operator.

    Parameters
    ----------
    downsample : str or Downsample
        Operator name from the registry (``avgpool``, ``maxpool``, ``strided``, ...).
    blocks : int
        Basic blocks per stage, ``n`` (depth ``6n + 2``: 1, 2, 3 give ResNet-8, -14, -20).
    in_channels : int
        Channels of the input image (1 for grayscale, 3 for RGB).
    num_outputs : int
        1 for binary tasks (a logit for the positive class), else the number of classes.
    widths : sequence of int
        Channels of the three stages (He et al.: 16, 32, 64).
    input_size : int
        Side of the square input, checked by a dry run at construction.
    stem_down : bool
        Whether the stem also reduces (three reductions instead of two).

    Raises
    ------
    ValueError
        For an unknown operator, ``blocks < 1``, not three widths, an input side that the
        reductions do not divide (the variants would then end at different feature-map sizes), or
        ``strided`` with a first or second width below 16 (see ``_check_shortcut_widths``).

    Examples
    --------
    >>> m = ResNet("maxpool", blocks=1, in_channels=3, num_outputs=10, input_size=32)
    >>> m.feature_shape
    (64, 8, 8)
    """

    def __init__(
        self,
        downsample: str | Downsample = "avgpool",
        *,
        blocks: int = 3,
        in_channels: int = 3,
        num_outputs: int = 10,
        widths: Sequence[int] = (16, 32, 64),
        input_size: int = 32,
        stem_down: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
            raise ValueError(f"blocks must be a positive integer (depth 6n + 2), got {blocks!r}")
        if len(widths) != 3:
            raise ValueError(f"widths must give three stage widths, got {tuple(widths)}")
        op = get_downsample(downsample)
        self.downsample_name = op.name
        self.reductions = 2 + int(stem_down)
        _check_input_size(input_size, self.reductions)
        w1, w2, w3 = widths
        _check_shortcut_widths(op, (w1, w2))
        stem_stride = op.conv_stride if stem_down else 1
        self.stem = nn.Sequential(
            _conv3x3(in_channels, w1, stem_stride),
            nn.BatchNorm2d(w1),
            nn.ReLU(),
            op.module(w1) if stem_down else nn.Identity(),
        )
        self.stage1 = _stage(w1, w1, blocks, None)
        self.stage2 = _stage(w1, w2, blocks, op)
        self.stage3 = _stage(w2, w3, blocks, op)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w3, num_outputs))
        self.feature_shape = self._dry_run(in_channels, input_size)

    @torch.no_grad()
    def _dry_run(self, in_channels: int, input_size: int) -> tuple[int, int, int]:
        # Eval mode: BatchNorm in training mode refuses a batch of one with 1 x 1 maps.
        was_training = self.training
        self.eval()
        try:
            out = self.features(torch.zeros(1, in_channels, input_size, input_size))
        except RuntimeError as exc:
            raise ValueError(
                f"input_size {input_size} is too small for {self.downsample_name!r} with "
                f"{self.reductions} reductions ({exc}); use a larger input"
            ) from None
        finally:
            self.train(was_training)
        return tuple(out.shape[1:])

    @property
    def cam_layer(self) -> nn.Module:
        """The module whose output Grad-CAM explains: the last stage (B, widths[2], H/4, W/4)."""
        return self.stage3

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, w1, H, W), or (H/2, W/2) with stem_down
        x = self.stage1(x)  # (B, w1, same)
        x = self.stage2(x)  # (B, w2, half)
        return self.stage3(x)  # (B, w3, quarter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, num_outputs)

    def quant_fuse_groups(self) -> list[list[str]]:
        """Names of the ``[conv, bn(, relu)]`` groups quantization may fuse, in forward order."""
        groups = [["stem.0", "stem.1", "stem.2"]]
        for s in ("stage1", "stage2", "stage3"):
            for i, block in enumerate(getattr(self, s)):
                p = f"{s}.{i}"
                groups += [[f"{p}.conv1", f"{p}.bn1", f"{p}.act1"], [f"{p}.conv2", f"{p}.bn2"]]
                if isinstance(block.shortcut, nn.Sequential):
                    groups.append([f"{p}.shortcut.1", f"{p}.shortcut.2"])
        return groups


def _stage(c_in: int, c_out: int, blocks: int, op: Downsample | None) -> nn.Sequential:
    """``blocks`` basic blocks; the first one reduces with ``op`` (None: no reduction)."""
    layers = [BasicBlock(c_in, c_out, op)]
    layers += [BasicBlock(c_out, c_out, None) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _check_shortcut_widths(op: Downsample, inputs: tuple[int, int]) -> None:
    # oneDNN's 1x1 stride-2 convolution, backward to the weights in channels_last (NHWC), writes past
    # its workspace when the input channels are fewer than its channel block (8 with AVX2, 16 with
    # AVX-512): uxlfoundation/oneDNN issue 6035. With torch 2.14.1 on this 2-core AVX2 machine, 2 to 7
    # channels gave "double free or corruption" or a segfault; elsewhere it can give wrong weight
    # gradients without a crash. Only a strided shortcut has that shape; 16 is safe on both ISAs.
    if op.conv_stride > 1 and min(inputs) < 16:
        raise ValueError(
            f"with {op.name!r}, the shortcuts' 1x1 stride-2 convolutions take {inputs[0]} and {inputs[1]} "
            "channels; fewer than 16 corrupt memory in PyTorch's CPU backward pass (oneDNN issue 6035), "
            "so give widths whose first two are at least 16"
        )


def _check_input_size(input_size: int, reductions: int) -> None:
    factor = 2**reductions
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < factor:
        raise ValueError(f"input_size must be an integer >= {factor}, got {input_size!r}")
    if input_size % factor:
        # Pooling floors an odd side and a stride-2 convolution with padding 1 rounds it up, so the
        # variants would reach the head at different sizes (and the shortcut could miss the main path).
        raise ValueError(
            f"input_size {input_size} is not divisible by {factor} ({reductions} halvings); resize or "
            f"crop the images to a multiple of {factor} so every operator gives the same feature maps"
        )


def parameter_table(in_channels: int = 3, num_outputs: int = 10, input_size: int = 32) -> list[tuple]:
    """``(family, operator, parameters)`` for each depth and registered operator (the model card's table)."""
    import downscalexr.layers  # noqa: F401  (registers every operator)
    from downscalexr.layers.downsample import list_downsample

    rows = []
    for depth, n in DEPTHS.items():
        for name in list_downsample():
            model = ResNet(
                name, blocks=n, in_channels=in_channels, num_outputs=num_outputs, input_size=input_size
            )
            rows.append((f"resnet{depth}", name, sum(p.numel() for p in model.parameters())))
    return rows
