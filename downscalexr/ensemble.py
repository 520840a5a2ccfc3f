"""Seed-batched training: the seeds of one cell trained at once as one vmapped ensemble.

``fit_ensemble(models, data, config, seeds) -> list[FitResult]`` trains ``M`` models of one architecture
together: their weights are stacked along a new leading axis and one ``torch.func.vmap`` call runs all
``M`` forward passes (a grouped convolution instead of ``M`` small ones), which keeps a GPU busy where one
small LeNet leaves it idle. Nothing is shared between members except the kernel launch:

* each member has its own weights, its own training subset, batch order (stream ``"order"`` of its seed,
  as in :func:`downscalexr.train.fit`), augmentation, class weights and validation split;
* the loss is the sum of the members' losses, so a member's gradient is the gradient of its own loss;
  Adam and SGD update element by element, so one optimiser over the stacked weights is ``M`` optimisers;
* validation, model selection, early stopping and divergence are decided per member, with the rules of
  :func:`~downscalexr.train.fit`. A member that stopped (or diverged) leaves the summed loss; its stacked
  weights may still move (Adam's momentum) but its history and the weights it returns were fixed when it
  stopped.

So each member's :class:`~downscalexr.train.FitResult` is the single-cell path's up to floating-point
rounding (other kernels sum in another order): ``tests/test_ensemble.py`` checks this on CPU. Not bit-equal
means not interchangeable: the grid gives an ensemble-trained cell its own ``run_id`` (``train.ensemble``).

Measured on this project's 2-core CPU machine, the ensemble is *slower* on a CPU: 0.75x the images/s of
one-at-a-time training for the default LeNet with avgpool, 0.84x with strided
(``tests/benchmarks/bench_ensemble.py``; oneDNN's grouped convolutions are no faster per group). It is
meant for a GPU, where the issue's measurement put it at 4-5x a single model's images/s.

Models with batch normalisation (running statistics updated in place) or dropout (one random stream per
member) are refused.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from downscalexr.data.base import ImageSplits
from downscalexr.seeding import torch_generator
from downscalexr.train import (
    FitResult,
    TrainConfig,
    _epoch_periods,
    _loss,
    _optimizer,
    _predict,
    _step_periods,
    evaluate,
)

REFUSED_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


def fit_ensemble(
    models: Sequence[nn.Module],
    data: ImageSplits | Sequence[ImageSplits],
    config: TrainConfig,
    seeds: Sequence[int],
    train_indices: Sequence[np.ndarray | torch.Tensor | None] | None = None,
    augments: Sequence[Callable[[torch.Tensor], torch.Tensor] | None] | None = None,
) -> list[FitResult]:
    """Train ``models[m]`` with ``seeds[m]`` for every member ``m`` at once; one result per member.

    Parameters
    ----------
    models : sequence of nn.Module
        ``M`` models of one architecture (same parameter names and shapes), initialised by the caller.
    data : ImageSplits or sequence of ImageSplits
        One data set for all members, or one per member (seed-dependent data, per-member standardisation);
        validation splits must have one size.
    config : TrainConfig
        As for :func:`downscalexr.train.fit`; ``channels_last`` is not used (the stacked input is 5-D).
    seeds : sequence of int
        Each member's batch order, as ``seed`` of :func:`~downscalexr.train.fit`.
    train_indices : sequence of (array of int or None), optional
        Each member's training rows; with the epoch protocol all subsets must have one size (one epoch is
        then one number of steps for all members).
    augments : sequence of (callable or None), optional
        Each member's training-batch augmentation.

    Returns
    -------
    list of FitResult
        In member order, each with its model back on the CPU in eval mode; ``train_seconds`` is the
        member's share (the ensemble's training time divided by the number of members).

    Raises
    ------
    ValueError
        Members of different architectures, a refused layer (batch norm, dropout), unequal subset sizes
        under the epoch protocol, unequal validation sizes, or an empty subset.
    """
    size = len(models)
    if size == 0 or len(seeds) != size:
        raise ValueError(f"need one seed per model, got {size} models and {len(seeds)} seeds")
    datas = list(data) if isinstance(data, Sequence) else [data] * size
    indices = list(train_indices) if train_indices is not None else [None] * size
    augments = list(augments) if augments is not None else [None] * size
    if not len(datas) == len(indices) == len(augments) == size:
        raise ValueError("data, train_indices and augments need one entry per model")
    _check_members(models, datas)
    device = torch.device(config.device)
    members = [_Member(d, i, a, config, device) for d, i, a in zip(datas, indices, augments, strict=True)]
    if not config.steps and len({len(m.y_train) for m in members}) > 1:
        raise ValueError("under the epoch protocol every member needs a training subset of one size")

    models = [m.to(device) for m in models]
    params, buffers = stack_module_state(list(models))  # each (M, ...)
    params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    skeleton = copy.deepcopy(models[0]).to("meta")

    def forward(p, b, x):  # one member: (B, C, H, W) -> (B, K)
        return functional_call(skeleton, (p, b), (x,))

    batched = vmap(forward)
    optimizer = _optimizer(list(params.values()), config)
    periods = []
    for member, seed in zip(members, seeds, strict=True):
        order = torch_generator(seed, "order")
        if config.steps:
            periods.append(_step_periods(len(member.y_train), config, order))
        else:
            member_periods, member.epoch_size = _epoch_periods(len(member.y_train), config, order)
            periods.append(member_periods)

    results = [FitResult(model=m, status="ok", config=asdict(config) | {"ensemble": size}) for m in models]
    for member, result in zip(members, results, strict=True):
        if member.epoch_size:
            result.config["examples_per_epoch"] = member.epoch_size
    start = time.perf_counter()
    for period, perms in enumerate(zip(*periods, strict=True)):
        active = [m for m, member in enumerate(members) if not member.done]
        if not active:
            break
        t0 = time.perf_counter()
        trained = _train_period(batched, params, buffers, optimizer, members, perms, config.batch_size)
        for m in active:
            stacked = (params, buffers)
            _after_period(m, members[m], results[m], models[m], stacked, trained[m], config, period, t0)
    seconds = (time.perf_counter() - start) / size  # each member's share of the group's training time
    for m, (member, result, model) in enumerate(zip(members, results, models, strict=True)):
        _finish(member, result, model, params, buffers, config, seconds, m)
    return results


class _Member:
    """One member's data, loss and bookkeeping (what :func:`~downscalexr.train.fit` keeps in locals)."""

    def __init__(self, data: ImageSplits, index, augment, config: TrainConfig, device: torch.device) -> None:
        x_train, y_train = data.x_train, data.y_train
        if index is not None:
            rows = torch.as_tensor(np.asarray(index), dtype=torch.long)
            x_train, y_train = x_train[rows], y_train[rows]
        if len(y_train) == 0:
            raise ValueError("the training subset is empty; use a larger data fraction")
        self.data, self.augment = data, augment
        self.binary = data.num_classes == 2
        self.x_train, self.y_train = x_train.to(device), y_train.to(device)
        self.x_val = data.x_val.to(device)
        self.loss_fn = _loss(y_train, data.num_classes, config.class_weight, device)
        self.epoch_size = 0
        self.done = False
        self.steps_run = 0
        self.best = math.inf
        self.best_state: dict | None = None
        self.final_state: dict | None = None


def _check_members(models: Sequence[nn.Module], datas: Sequence[ImageSplits]) -> None:
    shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in models]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError("ensemble members must share one architecture (same parameter names and shapes)")
    for layer in models[0].modules():
        if isinstance(layer, REFUSED_LAYERS):
            raise ValueError(
                f"a vmapped ensemble cannot train a model with {type(layer).__name__} (batch norm updates "
                "running statistics in place; dropout draws from one shared stream); train its cells one "
                "at a time (train.ensemble: false)"
            )
    if len({len(d.y_val) for d in datas}) > 1:
        raise ValueError("every member needs a validation split of one size")


def _train_period(batched, params, buffers, optimizer, members, perms, batch_size: int) -> list[dict]:
    """The period's optimiser steps for all members at once; per member: steps, loss, accuracy, error.

    A member that is done, or whose loss turns non-finite, leaves the summed loss from that step on; the
    weights it had before the non-finite step are kept in ``final_state``.
    """
    stats = [{"steps": 0, "error": "", "loss_sum": 0.0, "correct": 0} for _ in members]
    live = [m for m, member in enumerate(members) if not member.done]
    n = len(perms[0])
    for i in range(0, n, batch_size):
        batches = []
        for member, perm in zip(members, perms, strict=True):
            idx = perm[i : i + batch_size].to(member.x_train.device)
            xb = member.x_train[idx]
            if member.augment is not None:
                xb = member.augment(xb).contiguous()
            batches.append((xb, member.y_train[idx]))
        logits = batched(params, buffers, torch.stack([xb for xb, _ in batches]))  # (M, B, K)
        losses = {}
        for m in list(live):
            loss = members[m].loss_fn(logits[m], batches[m][1])
            if not torch.isfinite(loss):
                stats[m]["error"] = f"non-finite training loss ({loss.item()})"
                members[m].final_state = _member_state(params, buffers, m)
                live.remove(m)
                continue
            losses[m] = loss
        if not losses:
            break
        optimizer.zero_grad(set_to_none=True)
        torch.stack(list(losses.values())).sum().backward()
        optimizer.step()
        for m, loss in losses.items():
            yb = batches[m][1]
            stats[m]["steps"] += 1
            stats[m]["loss_sum"] += loss.item() * len(yb)
            stats[m]["correct"] += int((_predict(logits[m].detach(), members[m].binary) == yb).sum())
    return [
        s | {"loss": s["loss_sum"] / n, "accuracy": s["correct"] / n} if not s["error"] else s for s in stats
    ]


def _after_period(m: int, member, result, model, stacked, trained, config, period, t0) -> None:
    """Validate member ``m`` after a period and apply fit()'s selection and stopping rules."""
    member.steps_run += trained["steps"]
    result.steps_run = member.steps_run
    if trained["error"]:
        result.status = "diverged"
        result.error = f"{trained['error']} at epoch {period}, step {trained['steps']}"
        member.done = True
        return
    state = _member_state(*stacked, m)
    _load(model, state)
    data = member.data
    val = evaluate(model, member.x_val, data.y_val, data.num_classes, config.eval_batch_size)
    row = {
        "epoch": period,
        "step": member.steps_run,
        "train_loss": trained["loss"],
        "train_accuracy": trained["accuracy"],
        "val_loss": val["loss"],
        "val_accuracy": val["accuracy"],
        "val_auroc": val["auroc"],
        "seconds": time.perf_counter() - t0,
    }
    result.history.append(row)
    sign = 1.0 if config.monitor == "val_loss" else -1.0  # minimise sign * monitor
    score = row[config.monitor] if not math.isnan(row[config.monitor]) else row["val_accuracy"]
    if sign * score < member.best:
        member.best, result.best_epoch, result.best_step = sign * score, period, member.steps_run
        member.best_state = state if config.restore_best else None
    elif config.patience is not None and period - result.best_epoch > config.patience:
        member.done = True
    if member.done:
        member.final_state = state


def _finish(member, result, model, params, buffers, config, seconds: float, m: int) -> None:
    """Give member ``m``'s model the weights fit() would return, on the CPU, in eval mode."""
    if member.final_state is None:  # trained to the end of the budget
        member.final_state = _member_state(params, buffers, m)
    if not config.restore_best and result.history:
        result.best_epoch, result.best_step = len(result.history) - 1, result.history[-1]["step"]
        _load(model, member.final_state)
    else:
        _load(model, member.best_state if member.best_state is not None else member.final_state)
    model.to("cpu").eval()
    result.epochs_run = len(result.history)
    result.train_seconds = seconds


@torch.no_grad()
def _member_state(params: dict, buffers: dict, m: int) -> dict[str, torch.Tensor]:
    """A copy of member ``m``'s weights and buffers, as a state dict of the member's module."""
    return {k: v[m].detach().clone() for k, v in (params | buffers).items()}


def _load(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model`` (a non-persistent buffer is stacked but not in its state dict)."""
    keys = model.state_dict().keys()
    model.load_state_dict({k: v for k, v in state.items() if k in keys})
