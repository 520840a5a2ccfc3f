"""Unstructured magnitude pruning: global L1 over a scope, one shot or iterative, masks made permanent.

Global L1 pruning ranks the absolute values of every weight in the scope together and zeroes the
smallest ``round(amount * n)``. In a LeNet with a flatten head almost all weights sit in the first dense
layer, so a global ranking over *all* layers removes mostly head weights; the ``conv`` scope ranks the
convolution weights only. Biases are never pruned.

Iterative pruning repeats a step of ``amount`` on the weights still alive, with fine-tuning between
steps while the masks hold the pruned weights at zero; the amounts compound, so three steps of 20 %
leave ``0.8**3`` of the weights: 48.8 % sparsity, not 60 %. At the end ``torch.nn.utils.prune.remove``
folds each mask into its weight, so the model has plain ``weight`` parameters (no ``weight_orig`` and
``weight_mask`` doubling the state dict).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torch.nn.utils import prune

from downscalexr.compress._errors import UnsupportedCompression
from downscalexr.compress.size import weight_layers

SCOPES = ("all", "conv")


def scope_layers(model: nn.Module, scope: str) -> dict[str, nn.Module]:
    """Layers whose weights a scope prunes: every conv and linear layer (``all``) or the convs (``conv``)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; choose from {', '.join(SCOPES)}")
    layers = weight_layers(model)
    if scope == "conv":
        layers = {name: m for name, m in layers.items() if isinstance(m, nn.Conv2d)}
    return layers


def compounded_sparsity(amount: float, rounds: int) -> float:
    """Sparsity after ``rounds`` steps that each prune ``amount`` of the remaining weights.

    Examples
    --------
    >>> round(compounded_sparsity(0.2, 3), 3)
    0.488
    """
    return 1.0 - (1.0 - amount) ** rounds


def prune_global_l1(
    model: nn.Module,
    amount: float,
    *,
    scope: str = "all",
    rounds: int = 1,
    between_rounds: Callable[[nn.Module, int], None] | None = None,
) -> dict[str, nn.Module]:
    """Globally prune ``model`` in place by weight magnitude, ``rounds`` times; masks made permanent.

    Parameters
    ----------
    model : nn.Module
    amount : float
        Fraction in (0, 1) of the still-unpruned weights in scope removed at each round.
    scope : {"all", "conv"}
        Which layers' weights are ranked together (see :func:`scope_layers`).
    rounds : int
        Number of pruning steps.
    between_rounds : callable, optional
        ``between_rounds(model, round_index)`` runs after every step (fine-tuning), while the masks
        still hold pruned weights at zero.

    Returns
    -------
    dict
        The pruned layers by name.

    Raises
    ------
    UnsupportedCompression
        If the scope holds no weights (e.g. ``conv`` on an MLP).
    """
    if not 0.0 < amount < 1.0:
        raise ValueError(f"pruning amount must lie in (0, 1), got {amount}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    layers = scope_layers(model, scope)
    if not layers:
        raise UnsupportedCompression(f"the model has no weights in pruning scope {scope!r}")
    targets = [(m, "weight") for m in layers.values()]
    orders = [list(m._parameters) for m in layers.values()]
    for index in range(rounds):
        # each call ranks the weights still alive: PyTorch combines the new mask with the old one
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
        if between_rounds is not None:
            between_rounds(model, index)
    for (module, name), order in zip(targets, orders, strict=True):
        prune.remove(module, name)
        # remove() re-registers the weight after the bias; restore the order so the state dict's keys
        # come in the parent's order (anything reading parameters by position sees the same layout)
        module._parameters = type(module._parameters)((key, module._parameters[key]) for key in order)
    return layers
