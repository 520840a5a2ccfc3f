"""Layers: downsampling operators resolved by name.

Importing this package registers every operator: the basic ones in :mod:`.downsample`, then the
anti-aliased (:mod:`.antialias`), pooling (:mod:`.pooling`), polyphase (:mod:`.polyphase`) and
space-to-depth (:mod:`.space_to_depth`) families.
"""

from downscalexr.layers import antialias, polyphase, pooling, space_to_depth
from downscalexr.layers.downsample import (
    Downsample,
    create_downsample,
    get_downsample,
    list_downsample,
    register_downsample,
)

__all__ = [
    "Downsample",
    "antialias",
    "create_downsample",
    "get_downsample",
    "list_downsample",
    "polyphase",
    "pooling",
    "register_downsample",
    "space_to_depth",
]
