"""Model families by name: ``create_model(name, downsample=..., seed=...)``.

Each entry is a function returning an uninitialised module; :func:`create_model` builds it without
touching global RNG state and draws its weights from the seed (see :mod:`downscalexr.models.init`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from downscalexr.models.init import build_seeded
from downscalexr.models.lenet import LeNet
from downscalexr.models.resnet import DEPTHS, ResNet

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a model family under ``name``."""

    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        return fn

    return add


def list_models() -> list[str]:
    """Names of the registered model families."""
    return list(_MODELS)


def create_model(name: str, *, downsample: str = "avgpool", seed: int = 0, **kwargs) -> nn.Module:
    """Build model family ``name`` with the given downsampling operator, initialised from ``seed``.

    Extra keyword arguments go to the family (e.g. ``input_size``, ``num_outputs``, ``channels``).

    Examples
    --------
    >>> m = create_model("downscalexr_lenet", downsample="maxpool", seed=0)
    >>> sum(p.numel() for p in m.parameters())
    11396621
    """
    try:
        factory = _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(_MODELS)}") from None
    try:
        return build_seeded(lambda: factory(downsample=downsample, **kwargs), seed)
    except TypeError as exc:
        raise ValueError(f"model {name!r}: {exc}") from None


@register_model("lenet")
def lenet(downsample: str = "avgpool", **kwargs) -> nn.Module:
    """The default study's LeNet: 32/64 channels, 5x5 kernels, no padding, 64x64 input, flatten head."""
    options = dict(channels=(32, 64), kernel_size=5, padding=0, input_size=64, head="flatten")
    options.update(kwargs)
    return LeNet(downsample, **options)


@register_model("lenet_gap")
def lenet_gap(downsample: str = "avgpool", **kwargs) -> nn.Module:
    """The default LeNet with a global-average-pool head (few parameters outside the convolutions)."""
    return lenet(downsample, **{"head": "gap", **kwargs})


@register_model("downscalexr_lenet")
def downscalexr_lenet(downsample: str = "avgpool", **kwargs) -> nn.Module:
    """The published chest X-ray LeNet: 1x320x320, no padding, conv 1->6 k5, down, conv 6->16 k5, down,
    FC (16*77*77)->120->84->1: 11,396,621 parameters for avgpool, maxpool and strided."""
    options = dict(
        channels=(6, 16), kernel_size=5, padding=0, input_size=320, head="flatten", hidden=(120, 84)
    )
    options.update(kwargs)
    return LeNet(downsample, **options)


def _register_resnet(depth: int, blocks: int) -> None:
    def factory(downsample: str = "avgpool", **kwargs) -> nn.Module:
        return ResNet(downsample, blocks=blocks, **kwargs)

    factory.__name__ = f"resnet{depth}"
    factory.__doc__ = (
        f"CIFAR-style ResNet-{depth} ({blocks} basic block(s) per stage, widths 16/32/64, BatchNorm; "
        "defaults 3 x 32 x 32 input, 10 outputs): the operator at both stage transitions, shortcuts "
        "included (and at the stem with ``stem_down=True``); see :mod:`downscalexr.models.resnet`."
    )
    register_model(f"resnet{depth}")(factory)


for _depth, _blocks in DEPTHS.items():
    _register_resnet(_depth, _blocks)
