"""Spatial downsampling operators and the registry that resolves them by name.

A model asks for its downsampling step by name (``"avgpool"``, ``"maxpool"``, ``"strided"``, ...),
a class, or a callable, and gets back a :class:`Downsample` that says two things: which module follows
the convolution, and which stride the convolution itself takes. Pooling operators keep the convolution
at stride 1 and halve the resolution afterwards; ``strided`` moves the factor-2 reduction into the
convolution and follows it with nothing.

Every registered operator halves the spatial size the way ``nn.AvgPool2d(2)`` does (floor), so the
layers after it have the same shapes whatever the operator, and models differing only in the operator
have identical parameter shapes unless the operator has parameters of its own (documented per entry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Downsample:
    """A resolved downsampling step.

    Attributes
    ----------
    name : str
        Registry name.
    conv_stride : int
        Stride the preceding convolution must use (2 for ``strided``, else 1).
    make : callable
        ``make(channels) -> nn.Module`` building the module applied after the convolution's activation.
    params_note : str
        Parameter count of the operator and whether parameter shapes match ``avgpool``.
    """

    name: str
    conv_stride: int
    make: Callable[[int], nn.Module]
    params_note: str = "no parameters; parameter shapes identical to avgpool"

    def module(self, channels: int) -> nn.Module:
        return self.make(channels)


_REGISTRY: dict[str, Downsample] = {}


def register_downsample(op: Downsample) -> Downsample:
    """Add ``op`` to the registry; a second entry under the same name is an error."""
    if op.name in _REGISTRY:
        raise ValueError(f"downsampling operator {op.name!r} is already registered")
    if op.conv_stride not in (1, 2):
        raise ValueError(f"conv_stride must be 1 or 2, got {op.conv_stride}")
    _REGISTRY[op.name] = op
    return op


def list_downsample() -> list[str]:
    """Names of all registered operators, in registration order."""
    return list(_REGISTRY)


def get_downsample(name: str | Downsample) -> Downsample:
    """Resolve a registry name (or pass through a :class:`Downsample`).

    Raises
    ------
    ValueError
        For an unknown name, listing the valid ones.
    """
    if isinstance(name, Downsample):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        valid = ", ".join(_REGISTRY)
        raise ValueError(f"unknown downsampling operator {name!r}; choose from {valid}") from None


def create_downsample(name: str | Downsample, channels: int) -> nn.Module:
    """The module that follows a convolution with ``channels`` output channels.

    Examples
    --------
    >>> create_downsample("maxpool", 6)
    MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    >>> create_downsample("strided", 6)  # the convolution itself takes stride 2
    Identity()
    """
    return get_downsample(name).module(channels)


register_downsample(Downsample("avgpool", 1, lambda channels: nn.AvgPool2d(2)))
register_downsample(Downsample("maxpool", 1, lambda channels: nn.MaxPool2d(2)))
register_downsample(Downsample("strided", 2, lambda channels: nn.Identity()))
