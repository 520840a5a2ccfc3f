"""Layers: downsampling operators resolved by name."""

from downscalexr.layers.downsample import (
    Downsample,
    create_downsample,
    get_downsample,
    list_downsample,
    register_downsample,
)

__all__ = ["Downsample", "create_downsample", "get_downsample", "list_downsample", "register_downsample"]
