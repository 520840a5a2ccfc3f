"""``apply_compression(level, model, ...)``: one level applied to a copy of a trained model, plus its facts.

The parent model is never modified (the level works on a deep copy), so every level of a cell starts
from the same trained weights. A level that cannot apply to the model (an operator without quantized
kernels, one that Torch-Pruning cannot cut) returns ``(None, facts)`` with ``status="unsupported"`` and
the reason, never an exception; bad arguments raise ``ValueError``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from downscalexr.compress._errors import UnsupportedCompression
from downscalexr.compress.channels import prune_channels
from downscalexr.compress.finetune import finetune as finetune_loop
from downscalexr.compress.levels import CompressionLevel, get_level
from downscalexr.compress.pruning import prune_global_l1, scope_layers
from downscalexr.compress.quantize import quantize_dynamic_linear, quantize_static
from downscalexr.compress.size import layer_sparsity, nonzero_params, sparsity_by_kind, state_dict_size
from downscalexr.models.profile import count_params, forward_flops
from downscalexr.seeding import derive_seed

FinetuneFn = Callable[[nn.Module, int, int], None]

FACT_KEYS = (
    "level", "method", "status", "reason", "description", "scope", "target_sparsity", "sparsity",
    "sparsity_conv", "sparsity_head", "layer_sparsity", "channels", "params", "nonzero_params", "flops",
    "state_dict_bytes", "state_dict_gzip_bytes", "quant_path", "quant_engine", "quantized_layers",
    "fp32_layers", "finetune_steps", "finetune_last_loss", "seconds",
)  # fmt: skip


def apply_compression(
    level: str | CompressionLevel,
    model: nn.Module,
    *,
    seed: int,
    input_shape: tuple[int, int, int] | None = None,
    train_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    calib_data: torch.Tensor | None = None,
    finetune: FinetuneFn | None = None,
) -> tuple[nn.Module | None, dict]:
    """Compress a copy of ``model`` with ``level``; return ``(compressed model or None, facts)``.

    Parameters
    ----------
    level : str or CompressionLevel
        A registered name (:func:`downscalexr.compress.list_levels`) or a level object.
    model : nn.Module
        The trained float model; not modified.
    seed : int
        The cell's seed: fixes fine-tuning batch order and the verification batch of channel pruning.
    input_shape : (C, H, W), optional
        One input's shape, for FLOPs and tracing; taken from ``calib_data`` or ``train_data`` if omitted.
    train_data : (x, y), optional
        The cell's *training* images and labels, for levels that fine-tune (never pass the test split).
    calib_data : torch.Tensor, optional
        Training images calibrating ``int8_static`` (the first 512 are used).
    finetune : callable, optional
        ``finetune(model, steps, seed)`` trains ``model`` in place, replacing the built-in loop (then
        ``train_data`` is not needed); ``seed`` differs per level and round.

    Returns
    -------
    (nn.Module or None, dict)
        The compressed model in eval mode (``None`` when unsupported) and a dict with every key of
        :data:`FACT_KEYS`: ``status`` is ``"ok"`` or ``"unsupported"`` (with ``reason``); ``sparsity``
        is the zero fraction of the weights in the level's scope (all conv + linear weights except for
        ``prune_l1`` with scope ``conv``), ``sparsity_conv`` / ``sparsity_head`` over conv / linear
        weights, ``layer_sparsity`` per layer; ``params`` and ``nonzero_params`` count parameters;
        ``flops`` are dense forward FLOPs per image (unstructured zeros are still computed; int8 levels
        keep the float model's count); ``state_dict_bytes`` / ``state_dict_gzip_bytes`` size the
        serialized state dict; ``channels`` maps each convolution to ``(before, after)`` for channel
        pruning.

    Raises
    ------
    ValueError
        Unknown level, or data the level needs is missing.

    Examples
    --------
    >>> from downscalexr.models import create_model
    >>> net = create_model("lenet_gap", channels=(4, 8), input_size=16, seed=0)
    >>> pruned, facts = apply_compression("prune_l1_conv_50", net, seed=0, input_shape=(1, 16, 16))
    >>> facts["status"], facts["sparsity_conv"], facts["sparsity_head"]
    ('ok', 0.5, 0.0)
    """
    lvl = get_level(level)
    input_shape = _input_shape(input_shape, calib_data, train_data)
    if lvl.finetune.steps > 0 and train_data is None and finetune is None:
        raise ValueError(f"level {lvl.name!r} fine-tunes: pass train_data=(x_train, y_train) or finetune=fn")
    if lvl.method == "int8_static" and calib_data is None:
        raise ValueError(f"level {lvl.name!r} calibrates on training images: pass calib_data=x_train")
    facts = dict.fromkeys(FACT_KEYS)
    facts.update(level=lvl.name, method=lvl.method, description=lvl.description, status="ok", reason="")
    facts.update(scope=lvl.scope, target_sparsity=lvl.target_sparsity, finetune_steps=0)
    tuner = _Tuner(lvl, seed, train_data, finetune)
    start = time.perf_counter()
    measured: dict = {}
    try:
        compressed = _compress(
            lvl, copy.deepcopy(model).eval(), input_shape, seed, tuner, calib_data, measured
        )
    except UnsupportedCompression as exc:
        # nothing measured on a half-compressed model is reported
        facts.update(status="unsupported", reason=str(exc), seconds=time.perf_counter() - start)
        return None, facts
    facts.update(measured)
    facts["state_dict_bytes"], facts["state_dict_gzip_bytes"] = state_dict_size(compressed)
    facts.update(finetune_steps=tuner.steps, finetune_last_loss=tuner.last_loss)
    facts["seconds"] = time.perf_counter() - start
    return compressed.eval(), facts


def _compress(lvl, model, input_shape, seed, tuner, calib_data, facts) -> nn.Module:
    """Apply the level's method to ``model`` (a copy); fill the structural facts from the float model."""
    if lvl.method == "prune_l1":
        prune_global_l1(model, lvl.amount, scope=lvl.scope, rounds=lvl.rounds, between_rounds=tuner.round)
    elif lvl.method == "prune_channels":
        channels = prune_channels(model, lvl.amount, input_shape, seed)
        facts["channels"] = {name: list(pair) for name, pair in channels.items()}
        tuner.round(model, 0)
    facts.update(_structure_facts(model, input_shape, lvl.scope if lvl.method == "prune_l1" else "all"))
    if lvl.method == "int8_dynamic":
        model, quant = quantize_dynamic_linear(model)
        facts.update(quant)
    elif lvl.method == "int8_static":
        model, quant = quantize_static(model, calib_data)
        facts.update(quant)
    return model


def _structure_facts(model: nn.Module, input_shape: tuple[int, int, int], scope: str) -> dict:
    kinds = sparsity_by_kind(model)
    in_scope = [m.weight for m in scope_layers(model, scope).values()]
    zeros = sum(int((w == 0).sum()) for w in in_scope)
    total = sum(w.numel() for w in in_scope)
    return {
        "sparsity": zeros / total if total else math.nan,
        "sparsity_conv": kinds["conv"],
        "sparsity_head": kinds["head"],
        "layer_sparsity": layer_sparsity(model),
        "params": count_params(model),
        "nonzero_params": nonzero_params(model),
        "flops": forward_flops(model, input_shape),
    }


def _input_shape(input_shape, calib_data, train_data) -> tuple[int, int, int]:
    if input_shape is None:
        source = calib_data if calib_data is not None else (train_data[0] if train_data is not None else None)
        if source is None:
            raise ValueError("give input_shape=(C, H, W), or calib_data / train_data to take it from")
        input_shape = tuple(source.shape[1:])
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    return tuple(int(s) for s in input_shape)


class _Tuner:
    """Runs a level's fine-tuning after each pruning round (built-in loop or the caller's function)."""

    def __init__(self, level: CompressionLevel, seed: int, train_data, fn: FinetuneFn | None) -> None:
        self.level, self.seed, self.train_data, self.fn = level, seed, train_data, fn
        self.steps, self.last_loss = 0, math.nan

    def round(self, model: nn.Module, index: int) -> None:
        steps = self.level.finetune.steps
        if steps == 0:
            return
        if self.fn is not None:
            self.fn(model, steps, derive_seed(self.seed, "compress", self.level.name, index))
        else:
            x, y = self.train_data
            stream = f"compress/{self.level.name}/finetune/{index}"
            losses = finetune_loop(model, x, y, self.level.finetune, self.seed, stream=stream)
            self.last_loss = losses[-1]
        model.eval()
        self.steps += steps
