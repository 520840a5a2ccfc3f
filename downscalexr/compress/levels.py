"""Compression levels by name: what each does, resolved like the downsampling operators.

A level is a frozen description; :func:`downscalexr.compress.apply_compression` carries it out on a
trained model. Names say the method and its amount; ``_ft`` marks levels that fine-tune afterwards
(``finetune.steps`` optimiser steps per round on the caller's training data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from downscalexr.compress.finetune import FinetuneConfig
from downscalexr.compress.pruning import SCOPES, compounded_sparsity

METHODS = ("none", "prune_l1", "prune_channels", "int8_dynamic", "int8_static")


@dataclass(frozen=True)
class CompressionLevel:
    """One compression level.

    Parameters
    ----------
    name : str
        Registry name (ends in ``_ft`` exactly when the level fine-tunes).
    method : {"none", "prune_l1", "prune_channels", "int8_dynamic", "int8_static"}
    amount : float
        ``prune_l1``: fraction of the remaining weights in scope pruned per round; ``prune_channels``:
        fraction of each convolution's output channels removed. 0 for the other methods.
    scope : {"all", "conv"}
        Weights ranked together by ``prune_l1``.
    rounds : int
        Pruning rounds (``prune_l1``); each is followed by fine-tuning if ``finetune.steps > 0``.
    finetune : FinetuneConfig
        Fine-tuning per round (``steps = 0``: none).
    description : str
        One line for reports.
    """

    name: str
    method: str
    amount: float = 0.0
    scope: str = "all"
    rounds: int = 1
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    description: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown compression method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown pruning scope {self.scope!r}; choose from {', '.join(SCOPES)}")
        pruning = self.method in ("prune_l1", "prune_channels")
        if pruning != (0.0 < self.amount < 1.0):
            raise ValueError(f"level {self.name!r}: amount must lie in (0, 1) for pruning and be 0 otherwise")
        if self.rounds < 1 or (self.rounds > 1 and self.method != "prune_l1"):
            raise ValueError(f"level {self.name!r}: rounds must be 1, or more for prune_l1 only")
        if self.name.endswith("_ft") != (self.finetune.steps > 0):
            raise ValueError(f"level {self.name!r}: a name ends in '_ft' exactly when the level fine-tunes")
        if self.finetune.steps > 0 and not pruning:
            raise ValueError(f"level {self.name!r}: only pruning levels fine-tune")

    @property
    def target_sparsity(self) -> float:
        """Weight sparsity in scope the level aims at (compounded over rounds); NaN if not ``prune_l1``."""
        if self.method != "prune_l1":
            return float("nan")
        return compounded_sparsity(self.amount, self.rounds)


_LEVELS: dict[str, CompressionLevel] = {}


def register_level(level: CompressionLevel) -> CompressionLevel:
    """Add ``level`` to the registry; a second level under the same name is an error."""
    if level.name in _LEVELS:
        raise ValueError(f"compression level {level.name!r} is already registered")
    _LEVELS[level.name] = level
    return level


def list_levels() -> list[str]:
    """Names of the registered levels, in registration order."""
    return list(_LEVELS)


def get_level(name: str | CompressionLevel) -> CompressionLevel:
    """Resolve a level name (or pass a :class:`CompressionLevel` through).

    Raises
    ------
    ValueError
        For an unknown name, listing the valid ones.

    Examples
    --------
    >>> round(get_level("prune_iter_3x20_ft").target_sparsity, 3)
    0.488
    """
    if isinstance(name, CompressionLevel):
        return name
    try:
        return _LEVELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown compression level {name!r}; choose from {', '.join(_LEVELS)}") from None


register_level(CompressionLevel("none", "none", description="the trained model, uncompressed (fp32)"))
register_level(
    CompressionLevel("prune_l1_50", "prune_l1", 0.5, description="global L1 pruning, 50 % of all weights")
)
register_level(
    CompressionLevel("prune_l1_80", "prune_l1", 0.8, description="global L1 pruning, 80 % of all weights")
)
register_level(
    CompressionLevel(
        "prune_l1_conv_50",
        "prune_l1",
        0.5,
        scope="conv",
        description="global L1 pruning, 50 % of conv weights",
    )
)
register_level(
    CompressionLevel(
        "prune_iter_3x20_ft",
        "prune_l1",
        0.2,
        rounds=3,
        finetune=FinetuneConfig(steps=20),
        description="3 rounds of global L1 pruning (20 % of the remaining weights), 20 fine-tuning steps "
        "after each: 48.8 % sparsity",
    )
)
register_level(
    CompressionLevel(
        "prune_channels_30", "prune_channels", 0.3, description="30 % of each conv's channels removed"
    )
)
register_level(
    CompressionLevel(
        "prune_channels_30_ft",
        "prune_channels",
        0.3,
        finetune=FinetuneConfig(steps=40),
        description="30 % of each conv's channels removed, then 40 fine-tuning steps",
    )
)
register_level(
    CompressionLevel(
        "int8_dynamic",
        "int8_dynamic",
        description="dynamic int8 of the linear layers; convs and operator fp32",
    )
)
register_level(
    CompressionLevel(
        "int8_static",
        "int8_static",
        description="static int8 of convs and linear layers, calibrated on training images",
    )
)
