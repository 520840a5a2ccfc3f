"""The inductive-bias homework's sweep: the suite's ``fit()`` against a plain DataLoader training loop.

    python tests/benchmarks/bench_homework.py                 # 10, 30, 100 images per class
    python tests/benchmarks/bench_homework.py --per-class 10 --rounds 5

Both sides train the same small CNN (the suite's LeNet with 3 and 6 filters of 3x3 at 32x32) from the same
initial weights, with Adam, for the same number of optimiser steps of the same batch size, on the edge task's
3 classes with 10-100 training images per class (the homework's range). The plain loop is what the homework
writes: a ``TensorDataset`` in a shuffling ``DataLoader``, NCHW tensors, no validation. The suite's side is
``fit()`` with its model selection included: a step budget validating ``--val`` images every
``--eval-every`` steps and restoring the best weights.

Throughput is training images per second of wall time (validation counts against the suite). The machine
is shared, so the two sides run interleaved (A/B, then B/A, ...) and the medians are reported with the load
average; one thread, as in the grid's workers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from downscalexr.data.base import ImageSplits, standardized
from downscalexr.data.registry import load_dataset
from downscalexr.models import create_model
from downscalexr.train import TrainConfig, fit

CLASSES = ["horizontal", "vertical", "none"]


def homework_data(per_class: int, n_val: int, size: int, seed: int) -> ImageSplits:
    """The edge task with ``per_class`` training images per class (no location shift)."""
    data = load_dataset(
        "edges", seed=seed, test_seed=1000, classes=CLASSES, image_size=size,
        n_train=per_class * len(CLASSES), n_val=n_val, n_test=len(CLASSES),
    )  # fmt: skip
    return standardized(data, torch.arange(len(data.y_train)))


def small_cnn(size: int, seed: int) -> nn.Module:
    """The homework-sized CNN: 3 then 6 filters of 3x3, avgpool, a small dense head."""
    return create_model(
        "lenet", downsample="avgpool", seed=seed, input_size=size, num_outputs=len(CLASSES),
        channels=(3, 6), kernel_size=3, padding=1, hidden=(32,),
    )  # fmt: skip


def plain_loop(data: ImageSplits, model: nn.Module, steps: int, batch: int, lr: float, seed: int) -> int:
    """The homework's loop: shuffling DataLoader, Adam, ``steps`` optimiser steps; returns images seen."""
    loader = DataLoader(
        TensorDataset(data.x_train, data.y_train),
        batch_size=batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    seen, done = 0, 0
    while done < steps:
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen, done = seen + len(yb), done + 1
            if done == steps:
                break
    return seen


def suite_fit(data: ImageSplits, model: nn.Module, config: TrainConfig, seed: int) -> int:
    """The suite's ``fit()`` with model selection; returns images trained on."""
    result = fit(model, data, config, seed)
    assert result.status == "ok" and result.steps_run == config.steps, result.error
    return result.steps_run * config.batch_size


def timed(run: Callable[[], int]) -> float:
    """Images per second of one call of ``run``."""
    t0 = time.perf_counter()
    images = run()
    return images / (time.perf_counter() - t0)


def compare(per_class: int, args: argparse.Namespace) -> tuple[float, float]:
    """Median images/s of the plain loop and of ``fit()`` over ``args.rounds`` interleaved rounds."""
    data = homework_data(per_class, args.val, args.size, seed=0)
    config = TrainConfig(
        batch_size=args.batch, lr=args.lr, steps=args.steps, eval_every=args.eval_every, monitor="val_loss"
    )
    sides = {
        "plain": lambda: plain_loop(data, small_cnn(args.size, 0), args.steps, args.batch, args.lr, 0),
        "suite": lambda: suite_fit(data, small_cnn(args.size, 0), config, 0),
    }
    for run in sides.values():  # warm-up: oneDNN primitives, allocator
        run()
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in order:
            rates[name].append(timed(sides[name]))
    return statistics.median(rates["plain"]), statistics.median(rates["suite"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--per-class", type=int, nargs="+", default=[10, 30, 100], help="training images per class"
    )
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps, both sides (default 300)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--val", type=int, default=150, help="validation images of fit() (default 150)")
    parser.add_argument("--eval-every", type=int, default=50, help="fit(): steps between validations (50)")
    parser.add_argument("--size", type=int, default=32, help="image side (default 32)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per setting (default 4)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, 1 thread, {args.steps} steps of {args.batch}, fit() validates "
        f"{args.val} images every {args.eval_every} steps; medians of {args.rounds} interleaved rounds"
    )
    print(f"{'per class':>9}{'plain img/s':>13}{'fit img/s':>11}{'ratio':>7}{'load':>7}")
    for per_class in args.per_class:
        plain, suite = compare(per_class, args)
        print(f"{per_class:>9}{plain:>13.0f}{suite:>11.0f}{suite / plain:>7.2f}{os.getloadavg()[0]:>7.2f}")


if __name__ == "__main__":
    main()
