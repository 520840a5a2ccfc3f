"""What a model costs to store: serialized state-dict bytes, gzip bytes, parameter counts, sparsity.

The in-memory parameter count undercounts a quantized model (its int8 weights are packed, not
``nn.Parameter``), so the size of a compressed model is measured as what ``torch.save`` writes for its
state dict. Unstructured sparsity does not shrink that file (zeros are stored like any other float), but
it does shrink the gzip-compressed file, so both are reported.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Mapping

import torch
from torch import nn

GZIP_LEVEL = 6


def serialized_bytes(state: Mapping[str, object]) -> bytes:
    """``torch.save(state)`` into memory; the bytes a checkpoint of ``state`` takes on disk."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    return buffer.getvalue()


def state_dict_size(model: nn.Module, keys_prefix: tuple[str, ...] | None = None) -> tuple[int, int]:
    """Bytes of the serialized state dict and of its gzip compression (level 6, no timestamp).

    Parameters
    ----------
    model : nn.Module
        Float or quantized; quantized layers serialize their packed int8 weights.
    keys_prefix : tuple of str, optional
        Keep only the state-dict entries whose key starts with one of these prefixes (to size some
        layers only, e.g. ``("head.",)``).

    Returns
    -------
    (int, int)
        ``(bytes, gzip_bytes)``.

    Examples
    --------
    >>> raw, packed = state_dict_size(nn.Linear(100, 10))
    >>> raw > 4 * 1010 and packed > 0
    True
    """
    state = model.state_dict()
    if keys_prefix is not None:
        state = {k: v for k, v in state.items() if k.startswith(keys_prefix)}
    blob = serialized_bytes(state)
    return len(blob), len(gzip.compress(blob, compresslevel=GZIP_LEVEL, mtime=0))


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The float convolutions and linear layers of ``model`` by qualified name, in module order."""
    return {name: m for name, m in model.named_modules() if type(m) in (nn.Conv2d, nn.Linear)}


def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of exactly-zero entries in each conv / linear weight (biases excluded), by layer name."""
    return {name: float((m.weight == 0).double().mean()) for name, m in weight_layers(model).items()}


def sparsity_by_kind(model: nn.Module) -> dict[str, float]:
    """Zero fraction of all conv weights (``conv``), all linear weights (``head``) and both (``all``).

    A kind with no weights gets NaN (an MLP has no convolutions).
    """
    zeros = {"conv": 0, "head": 0}
    total = {"conv": 0, "head": 0}
    for m in weight_layers(model).values():
        kind = "conv" if isinstance(m, nn.Conv2d) else "head"
        zeros[kind] += int((m.weight == 0).sum())
        total[kind] += m.weight.numel()
    out = {k: zeros[k] / total[k] if total[k] else float("nan") for k in zeros}
    all_total = total["conv"] + total["head"]
    out["all"] = (zeros["conv"] + zeros["head"]) / all_total if all_total else float("nan")
    return out


def nonzero_params(model: nn.Module) -> int:
    """Parameters (weights, biases, operator parameters) that are not exactly zero."""
    return sum(int((p != 0).sum()) for p in model.parameters())
