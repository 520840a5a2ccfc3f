"""Deterministic training, on the CPU by default: ``fit(model, data, config, seed) -> FitResult``.

All randomness (batch order) comes from generators derived from ``seed``; weights are initialised
by the caller (:func:`downscalexr.models.create_model`). Batches are slices of pre-built tensors,
not a per-item ``Dataset``, which is most of the speed on a CPU. No file I/O happens here.

A loss that becomes NaN or infinite ends the run with ``status="diverged"`` and the history so far.

``TrainConfig.device`` (``cpu``, ``cuda`` or ``cuda:N``) is where training and validation run; the
returned model is always back on the CPU, so everything after training (test scores, latency) runs
there: the research question is CPU inference.
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from downscalexr.data.base import ImageSplits
from downscalexr.metrics import auroc
from downscalexr.seeding import torch_generator

OPTIMIZERS = ("adam", "sgd")
MONITORS = ("val_loss", "val_accuracy", "val_auroc")
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained.

    Two protocols, chosen by ``steps``:

    * **Step budget** (``steps > 0``; the built-in studies): every data fraction gets the same
      ``steps`` optimiser steps of full batches, drawn from consecutive shuffled passes over its
      training subset, so a 5 % subset is not also a 20x shorter optimisation. The model is validated
      every ``eval_every`` steps (a cost independent of the subset's size); training stops early after
      ``patience`` validations without improvement of ``monitor``, and the weights of the best
      validation are restored. Nothing here sees the test split.
    * **Epochs** (``steps == 0``, the default, kept so stored studies keep their meaning): ``epochs``
      passes over the subset, validated after each, with the ``min_steps`` floor below.

    Parameters
    ----------
    epochs : int
        Epoch protocol: maximum passes over the training subset. Unused with a step budget.
    batch_size : int
        Examples per optimiser step.
    lr, weight_decay, momentum : float
        Optimiser settings (``momentum`` only for SGD).
    optimizer : {"adam", "sgd"}
    class_weight : bool
        Weight the loss by inverse class frequency of the training subset (binary: ``pos_weight`` =
        negatives / positives; multi-class: per-class weights).
    patience : int or None
        Stop after this many validations (epochs, or ``eval_every`` periods) without improvement of
        ``monitor``; ``None`` trains to the end. The weights of the best validation are restored
        either way, unless ``restore_best`` is off.
    monitor : {"val_loss", "val_accuracy", "val_auroc"}
        Validation quantity for model selection (AUROC falls back to accuracy for multi-class).
    min_steps : int
        Epoch protocol: train for at least this many optimiser steps in all. A small subset gets
        longer epochs rather than more of them, so validation still runs ``epochs`` times: an epoch is
        then ``ceil(min_steps / epochs)`` full batches drawn from consecutive shuffled passes (the last
        pass cut short), not a whole number of passes, which overshot ``min_steps`` by up to 2x.
    steps : int
        Step-budget protocol: optimiser steps for every data fraction (0: use the epoch protocol).
    eval_every : int
        Step-budget protocol: optimiser steps between validations (required when ``steps > 0``).
    restore_best : bool
        Keep the weights of the best validation (the default). Off, the model keeps its final weights
        and validation is only recorded: for a validation split that is not drawn from the training
        distribution (the edge task's location shift), where selecting on it would tune the model to
        the shifted test distribution.
    device : str
        ``cpu`` (the default), ``cuda`` or ``cuda:N``: where training and validation run. The trained
        model is returned on the CPU. Numbers differ between devices (other kernels, other rounding),
        so a non-default device enters the cell's ``run_id``.
    ensemble : bool
        Read by the grid, not by :func:`fit`: train the seeds of each cell together as one vmapped
        ensemble (:func:`downscalexr.ensemble.fit_ensemble`), for a GPU. Each seed's result equals
        ``fit``'s up to floating-point rounding, so it enters the ``run_id`` when on.
    channels_last : bool
        Run convolutions in NHWC layout (faster with oneDNN on CPU). A model without a 4-D weight (the
        MLP) always trains in the contiguous layout (see :func:`memory_format_for`).
    fused : bool
        Use the optimiser's fused CPU kernel (one pass over each parameter instead of about ten
        element-wise ops). The update is the same up to floating-point rounding; at the default study's
        size it made a training step ~10 % faster, as the 1.3 M-weight dense layer dominates the update.
    eval_batch_size : int
        Batch size for validation, test and train-set evaluation. Small batches keep the activations in
        cache: 32 was 10-17 % faster per image than 500 for the default LeNet's forward pass on one
        core (avgpool 1,618 vs 1,477 images/s; strided 5,286 vs 5,044).
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    class_weight: bool = False
    patience: int | None = None
    monitor: str = "val_loss"
    min_steps: int = 0
    channels_last: bool = True
    fused: bool = True
    eval_batch_size: int = 32
    steps: int = 0
    eval_every: int = 0
    restore_best: bool = True
    device: str = "cpu"
    ensemble: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if self.monitor not in MONITORS:
            raise ValueError(f"unknown monitor {self.monitor!r}; choose from {', '.join(MONITORS)}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ValueError(f"unknown device {self.device!r}; choose cpu, cuda or cuda:N (N a GPU index)")
        if self.patience is not None and self.patience < 0:
            raise ValueError(f"patience must be >= 0 or null (no early stopping), got {self.patience}")
        self._check_step_budget()

    def _check_step_budget(self) -> None:
        for name in ("steps", "eval_every", "min_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.steps == 0:
            if self.eval_every:
                raise ValueError("eval_every applies to a step budget only; set steps too, or remove it")
            return
        if self.min_steps:
            raise ValueError("min_steps belongs to the epoch protocol; with steps > 0 remove min_steps")
        if not 1 <= self.eval_every <= self.steps:
            raise ValueError(
                f"with steps = {self.steps}, eval_every must be in 1..{self.steps} (optimiser steps "
                f"between validations), got {self.eval_every}"
            )


@dataclass
class FitResult:
    """What :func:`fit` returns. ``model`` holds the weights of the best validation (the last one
    with ``restore_best`` off).

    ``history`` has one row per validation (key ``epoch`` counts validations, ``step`` the optimiser
    steps taken by then); ``best_epoch`` indexes the row of the weights ``model`` holds and
    ``best_step`` is that row's ``step``.
    """

    model: nn.Module
    status: str
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    epochs_run: int = 0
    train_seconds: float = 0.0
    error: str = ""
    config: dict = field(default_factory=dict)
    steps_run: int = 0
    best_step: int = -1


def fit(
    model: nn.Module,
    data: ImageSplits,
    config: TrainConfig,
    seed: int,
    train_index: np.ndarray | torch.Tensor | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> FitResult:
    """Train ``model`` on ``data`` (optionally on the subset ``train_index``) and select on validation.

    Parameters
    ----------
    model : nn.Module
        Returns ``(B, 1)`` logits for binary tasks or ``(B, K)`` for K classes.
    data : ImageSplits
    config : TrainConfig
    seed : int
        Fixes the batch order (stream ``"order"``); same seed, same weights, same history.
    train_index : array of int, optional
        Rows of ``data.x_train`` to train on (a nested data fraction).
    augment : callable, optional
        Applied to each training batch (``(B, C, H, W) -> (B, C, H, W)``) before the forward pass,
        e.g. :func:`downscalexr.augment.make_augmenter` for the cell's seed; validation never sees it.
        ``None`` trains on the images as they are (and draws nothing).

    Returns
    -------
    FitResult
    """
    x_train, y_train = data.x_train, data.y_train
    if train_index is not None:
        index = torch.as_tensor(np.asarray(train_index), dtype=torch.long)
        x_train, y_train = x_train[index], y_train[index]
    if len(y_train) == 0:
        raise ValueError("the training subset is empty; use a larger data fraction")
    binary = data.num_classes == 2
    device = torch.device(config.device)
    loss_fn = _loss(y_train, data.num_classes, config.class_weight, device)
    fmt = memory_format_for(model, config.channels_last)
    model = model.to(device=device, memory_format=fmt)
    x_train, y_train = x_train.to(device).contiguous(memory_format=fmt), y_train.to(device)
    x_val = data.x_val.to(device).contiguous(memory_format=fmt)
    # a frozen layer (requires_grad False) is left out, so the fused kernel never sees a missing grad
    optimizer = _optimizer([p for p in model.parameters() if p.requires_grad], config)
    order = torch_generator(seed, "order")
    if config.steps:
        periods, extra = _step_periods(len(y_train), config, order), {}
    else:
        periods, epoch_size = _epoch_periods(len(y_train), config, order)
        extra = {"examples_per_epoch": epoch_size}
    sign = 1.0 if config.monitor == "val_loss" else -1.0  # minimise sign * monitor
    best, best_state = math.inf, None
    result = FitResult(model=model, status="ok", config=asdict(config) | extra)
    start = time.perf_counter()

    for period, perm in enumerate(periods):
        t0 = time.perf_counter()
        trained = _train_period(
            model, optimizer, loss_fn, x_train, y_train, perm, config.batch_size, binary, augment
        )
        result.steps_run += trained["steps"]
        if trained["error"]:
            result.status = "diverged"
            result.error = f"{trained['error']} at epoch {period}, step {trained['steps']}"
            break
        val = evaluate(model, x_val, data.y_val, data.num_classes, config.eval_batch_size)
        row = {
            "epoch": period,
            "step": result.steps_run,
            "train_loss": trained["loss"],
            "train_accuracy": trained["accuracy"],
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_auroc": val["auroc"],
            "seconds": time.perf_counter() - t0,
        }
        result.history.append(row)
        score = row[config.monitor] if not math.isnan(row[config.monitor]) else row["val_accuracy"]
        if sign * score < best:
            best, result.best_epoch, result.best_step = sign * score, period, result.steps_run
            best_state = copy.deepcopy(model.state_dict()) if config.restore_best else None
        elif config.patience is not None and period - result.best_epoch > config.patience:
            break

    if not config.restore_best and result.history:
        result.best_epoch, result.best_step = len(result.history) - 1, result.history[-1]["step"]
    elif best_state is not None:
        model.load_state_dict(best_state)
    model.to("cpu").eval()
    result.epochs_run = len(result.history)
    result.train_seconds = time.perf_counter() - start
    return result


def memory_format_for(model: nn.Module, channels_last: bool) -> torch.memory_format:
    """The layout ``model`` trains in: NHWC when asked for and the model has a 4-D (convolution)
    weight; contiguous otherwise (for an MLP the layout of the input is all it would change)."""
    has_conv = any(p.ndim == 4 for p in model.parameters())
    return torch.channels_last if channels_last and has_conv else torch.contiguous_format


def device_name(device: str) -> str:
    """A readable name of ``device``: the GPU's model for ``cuda``/``cuda:N``, the CPU's otherwise."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    from downscalexr.latency import cpu_model

    return cpu_model() or "cpu"


def _epoch_periods(n: int, config: TrainConfig, order: torch.Generator) -> tuple[Iterator, int]:
    """The epoch protocol's index order, one tensor per epoch, and the examples per epoch."""
    steps_per_pass = math.ceil(n / config.batch_size)
    min_epoch_steps = math.ceil(config.min_steps / config.epochs)
    # one pass per epoch, unless min_steps asks for more: then exactly min_epoch_steps full batches
    epoch_size = n if min_epoch_steps <= steps_per_pass else min_epoch_steps * config.batch_size
    passes = math.ceil(epoch_size / n)

    def periods() -> Iterator[torch.Tensor]:
        for _ in range(config.epochs):
            yield torch.cat([torch.randperm(n, generator=order) for _ in range(passes)])[:epoch_size]

    return periods(), epoch_size


def _step_periods(n: int, config: TrainConfig, order: torch.Generator) -> Iterator[torch.Tensor]:
    """The step budget's index order: ``eval_every`` full batches per validation period (the last
    period holds the remainder), drawn from consecutive shuffled passes over the ``n`` examples."""
    buffer = torch.empty(0, dtype=torch.long)
    done = 0
    while done < config.steps:
        need = min(config.eval_every, config.steps - done) * config.batch_size
        while len(buffer) < need:
            buffer = torch.cat([buffer, torch.randperm(n, generator=order)])
        yield buffer[:need]
        buffer = buffer[need:]
        done += need // config.batch_size


def _train_period(
    model, optimizer, loss_fn, x_train, y_train, perm, batch_size: int, binary: bool, augment=None
) -> dict:
    """Optimiser steps over the rows ``perm`` in batches (each passed through ``augment`` when given):
    their count, mean loss and accuracy, or the error of a non-finite loss (``error`` is empty otherwise)."""
    model.train()
    loss_sum, correct, steps = 0.0, 0, 0
    for i in range(0, len(perm), batch_size):
        idx = perm[i : i + batch_size].to(x_train.device)
        xb, yb = x_train[idx], y_train[idx]
        if augment is not None:  # a rotation stacks examples: back to the layout of x_train
            xb = augment(xb).contiguous(memory_format=_layout(x_train))
        logits = model(xb)  # (B, 1) or (B, K)
        loss = loss_fn(logits, yb)
        if not torch.isfinite(loss):
            return {"steps": steps, "error": f"non-finite training loss ({loss.item()})"}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        loss_sum += loss.item() * len(yb)
        correct += int((_predict(logits.detach(), binary) == yb).sum())
    return {"steps": steps, "error": "", "loss": loss_sum / len(perm), "accuracy": correct / len(perm)}


@torch.no_grad()
def predict_scores(model: nn.Module, x: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Class probabilities: ``(N,)`` P(positive) for one-logit models, ``(N, K)`` softmax otherwise.

    Runs on the model's device; the scores are returned on the CPU."""
    was_training = model.training
    model.eval()
    fmt = torch.channels_last if _is_channels_last(model) else torch.contiguous_format
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = x.to(device).contiguous(memory_format=fmt)
    parts = [model(x[i : i + batch_size]).cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    logits = torch.cat(parts) if parts else torch.empty(0, 1)
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, batch_size: int = 32
) -> dict:
    """Loss, accuracy and AUROC (binary; NaN for multi-class or a one-class split) on ``(x, y)``."""
    scores = predict_scores(model, x, batch_size).double()
    y = y.cpu()
    if num_classes == 2:
        p = scores.clamp(1e-7, 1 - 1e-7)
        loss = float(-(y * p.log() + (1 - y) * (1 - p).log()).mean())
        pred = (scores >= 0.5).long()
        both = bool((y == 1).any() and (y == 0).any())
        roc = auroc(y.numpy(), scores.numpy()) if both else math.nan
    else:
        p = scores.clamp_min(1e-7)
        loss = float(-p.log().gather(1, y[:, None]).mean())
        pred = scores.argmax(1)
        roc = math.nan
    return {"loss": loss, "accuracy": float((pred == y).double().mean()), "auroc": float(roc)}


def _loss(y: torch.Tensor, num_classes: int, class_weight: bool, device: torch.device) -> nn.Module:
    counts = torch.bincount(y, minlength=num_classes).double()
    if num_classes == 2:
        pos_weight = None
        if class_weight:
            if counts[1] == 0:
                raise ValueError("class_weight needs at least one positive training example")
            pos_weight = torch.tensor([counts[0] / counts[1]], dtype=torch.float32, device=device)
        bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        return lambda logits, target: bce(logits[:, 0], target.float())
    weight = None
    if class_weight:
        weight = (counts.sum() / (num_classes * counts.clamp_min(1))).float().to(device)
    return nn.CrossEntropyLoss(weight=weight)


def _optimizer(params: list[torch.Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimiser over ``params`` (a model's trainable weights, or an ensemble's)."""
    fused = config.fused or None  # None: PyTorch's own default implementation
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, fused=fused
    )


def _predict(logits: torch.Tensor, binary: bool) -> torch.Tensor:
    return (logits[:, 0] > 0).long() if binary else logits.argmax(1)


def _layout(x: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    )


def _is_channels_last(model: nn.Module) -> bool:
    for p in model.parameters():
        if p.ndim == 4:
            return p.is_contiguous(memory_format=torch.channels_last)
    return False
