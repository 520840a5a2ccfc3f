"""A short, seeded fine-tuning loop for compression levels that recover accuracy (names ending ``_ft``).

Deliberately simple: Adam at a fixed learning rate, mini-batches drawn with replacement-free shuffles
from the caller's *training* tensors (never the test split: the caller decides what it passes), the
same loss as :func:`downscalexr.train.fit` without class weights. A caller that wants its own protocol
(class weights, augmentation) passes a function instead; see :func:`downscalexr.compress.apply_compression`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from downscalexr.seeding import torch_generator


@dataclass(frozen=True)
class FinetuneConfig:
    """How a level fine-tunes: ``steps`` optimiser steps of Adam at ``lr`` on batches of ``batch_size``."""

    steps: int = 0
    lr: float = 5e-4
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"fine-tuning needs steps >= 0, batch_size >= 1 and lr > 0, got {self}")


def finetune(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: FinetuneConfig,
    seed: int,
    stream: str = "finetune",
) -> list[float]:
    """Train ``model`` in place for ``config.steps`` steps on ``(x, y)``; return the per-step losses.

    Parameters
    ----------
    model : nn.Module
        Returns ``(B, 1)`` logits (binary, BCE loss) or ``(B, K)`` logits (cross-entropy).
    x : torch.Tensor
        Training images ``(N, C, H, W)``.
    y : torch.Tensor
        Integer labels ``(N,)``.
    config : FinetuneConfig
    seed : int
        Fixes the batch order (stream ``stream`` of ``seed``): same seed, same weights after.
    stream : str
        Name of the random stream, so that rounds of an iterative level draw different batches.

    Raises
    ------
    ValueError
        For empty or mismatched data, or a non-finite loss (the model is left as it was at that step).
    """
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(
            f"fine-tuning needs as many labels as images (>0), got {len(x)} images, {len(y)} labels"
        )
    gen = torch_generator(seed, stream)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr)
    losses: list[float] = []
    order = torch.empty(0, dtype=torch.long)
    model.train()
    for step in range(config.steps):
        if len(order) < config.batch_size:
            order = torch.cat([order, torch.randperm(len(x), generator=gen)])
        idx, order = order[: config.batch_size], order[config.batch_size :]
        logits = model(x[idx])  # (B, 1) or (B, K)
        if logits.shape[1] == 1:
            loss = F.binary_cross_entropy_with_logits(logits[:, 0], y[idx].float())
        else:
            loss = F.cross_entropy(logits, y[idx].long())
        if not torch.isfinite(loss):
            model.eval()
            raise ValueError(f"fine-tuning loss became {loss.item()} at step {step}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses
