"""The inductive-bias homework's sweep: the suite's ``fit()`` against a plain DataLoader training loop.

    python tests/benchmarks/bench_homework.py                 # 10, 30, 100 images per class
    python tests/benchmarks/bench_homework.py --per-class 10 --rounds 5
    python tests/benchmarks/bench_homework.py --sweep               # the whole sweep, whole machine

Both sides train the same small CNN (the suite's LeNet with 3 and 6 filters of 3x3 at 32x32) from the same
initial weights, with Adam, for the same number of optimiser steps of the same batch size, on the edge task's
3 classes with 10-100 training images per class (the homework's range). The plain loop is what the homework
writes: a ``TensorDataset`` in a shuffling ``DataLoader``, NCHW tensors, no validation. The suite's side is
``fit()`` with its model selection included: a step budget validating ``--val`` images every
``--eval-every`` steps and restoring the best weights.

Throughput is training images per second of wall time (validation counts against the suite). The machine
is shared, so the two sides run interleaved (A/B, then B/A, ...) and the medians are reported with the load
average; one thread, as in the grid's workers.

``--sweep`` compares whole-machine throughput on the sweep itself (10, 30, 100 images per class x
``--sweep-seeds`` seeds): the plain loop trains the cells one after another in one process with torch's
default thread count, as the homework runs; the suite runs them as a grid (``experiments.grid``, one
worker per core, one thread each), its storage, test predictions and model selection included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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
        batch_size=args.batch, lr=args.lr, steps=args.steps, eval_every=args.eval_every, monitor="val_loss",
        channels_last=not args.nchw,
    )  # fmt: skip
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


def sweep(args: argparse.Namespace) -> tuple[float, float, int]:
    """Images/s over the whole sweep: the plain loop (sequential, torch's default threads) and the
    suite's grid (one worker per core); and the plain loop's thread count."""
    import yaml

    from experiments.one_cell import run_grid
    from experiments.store import read_study

    threads = torch.get_num_threads()
    cells = [(pc, seed) for pc in args.per_class for seed in range(args.sweep_seeds)]
    datas = {pc: homework_data(pc, args.val, args.size, seed=0) for pc in args.per_class}
    t0 = time.perf_counter()
    images = sum(
        plain_loop(datas[pc], small_cnn(args.size, seed), args.steps, args.batch, args.lr, seed)
        for pc, seed in cells
    )
    plain = images / (time.perf_counter() - t0)
    top = max(args.per_class)
    study = {
        "description": "the homework sweep",
        "dataset": "edges",
        "data": {"classes": CLASSES, "n_train": top * len(CLASSES), "n_val": args.val, "n_test": 30,
                 "image_size": args.size},
        "model": "lenet",
        "model_options": {"channels": [3, 6], "kernel_size": 3, "padding": 1, "hidden": [32]},
        "variants": ["avgpool"],
        "fractions": [pc / top for pc in args.per_class],
        "seeds": list(range(args.sweep_seeds)),
        "test_seed": 1000,
        "train": {"batch_size": args.batch, "lr": args.lr, "steps": args.steps,
                  "eval_every": args.eval_every},
        "latency": {"enabled": False},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "homework.yaml"
        path.write_text(yaml.safe_dump(study))
        t0 = time.perf_counter()
        code = run_grid(
            "--study", path, "--out", Path(tmp) / "out", "--quiet", "--n-jobs", str(os.cpu_count())
        )
        seconds = time.perf_counter() - t0
        assert code == 0, f"the grid exited with {code}"
        runs = read_study(Path(tmp) / "out")["runs"]
    suite = int(runs["steps_run"].sum()) * args.batch / seconds
    return plain, suite, threads


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
    parser.add_argument("--nchw", action="store_true", help="fit() in NCHW instead of channels_last")
    parser.add_argument("--sweep", action="store_true", help="whole-machine throughput on the sweep")
    parser.add_argument("--sweep-seeds", type=int, default=4, help="--sweep: seeds per setting (default 4)")
    args = parser.parse_args(argv)
    if args.sweep:
        plain, suite, threads = sweep(args)
        print(
            f"torch {torch.__version__}, {os.cpu_count()} cores, sweep of {len(args.per_class)} settings x "
            f"{args.sweep_seeds} seeds, {args.steps} steps of {args.batch}; plain loop: one process, "
            f"{threads} threads; suite: the grid, {os.cpu_count()} workers of 1 thread"
        )
        print(f"{'plain img/s':>12}{'grid img/s':>12}{'ratio':>7}{'load':>7}")
        print(f"{plain:>12.0f}{suite:>12.0f}{suite / plain:>7.2f}{os.getloadavg()[0]:>7.2f}")
        return
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, 1 thread, {args.steps} steps of {args.batch}, fit() in "
        f"{'NCHW' if args.nchw else 'channels_last'} validates "
        f"{args.val} images every {args.eval_every} steps; medians of {args.rounds} interleaved rounds"
    )
    print(f"{'per class':>9}{'plain img/s':>13}{'fit img/s':>11}{'ratio':>7}{'load':>7}")
    for per_class in args.per_class:
        plain, suite = compare(per_class, args)
        print(f"{per_class:>9}{plain:>13.0f}{suite:>11.0f}{suite / plain:>7.2f}{os.getloadavg()[0]:>7.2f}")


if __name__ == "__main__":
    main()
