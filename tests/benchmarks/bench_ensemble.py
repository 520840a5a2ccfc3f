"""Seed-batched training against one seed at a time: ``fit_ensemble`` vs ``fit`` over the same seeds.

    python tests/benchmarks/bench_ensemble.py                        # default LeNet, 5 seeds, CPU
    python tests/benchmarks/bench_ensemble.py --device cuda --seeds 10 --variants avgpool strided

Both sides train the same models (same initial weights, seeds, step budget, validation every
``--eval-every`` steps) on the default study's 64 x 64 detection data; throughput is training images per
second of wall time, validation included, summed over the seeds. One thread, as in a grid worker.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch

from downscalexr.data.base import standardized
from downscalexr.data.registry import load_dataset
from downscalexr.ensemble import fit_ensemble
from downscalexr.models import create_model
from downscalexr.train import TrainConfig, fit


def compare(variant: str, args: argparse.Namespace) -> tuple[float, float]:
    """Images/s of one-at-a-time fit() and of fit_ensemble over ``args.seeds`` seeds."""
    data = load_dataset("detection", seed=0, test_seed=1000, n_train=args.n_train, n_val=200, n_test=10)
    data = standardized(data, torch.arange(len(data.y_train)))
    config = TrainConfig(
        batch_size=args.batch, lr=1e-3, steps=args.steps, eval_every=args.eval_every, device=args.device
    )
    seeds = list(range(args.seeds))
    models = [create_model("lenet", downsample=variant, seed=s, input_size=64) for s in seeds]
    images = args.steps * args.batch * len(seeds)

    def single() -> None:
        for model, seed in zip(models, seeds, strict=True):
            fit(copy.deepcopy(model), data, config, seed)

    def together() -> None:
        fit_ensemble([copy.deepcopy(m) for m in models], data, config, seeds)

    rates = []
    for run in (single, together):
        run()  # warm-up: kernels, allocator
        _sync(args.device)
        t0 = time.perf_counter()
        run()
        _sync(args.device)
        rates.append(images / (time.perf_counter() - t0))
    return rates[0], rates[1]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["avgpool", "strided"])
    parser.add_argument("--seeds", type=int, default=5, help="ensemble members (default 5)")
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps per seed (default 60)")
    parser.add_argument("--eval-every", type=int, default=20, help="steps between validations (20)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--n-train", type=int, default=600, help="training images (default 600)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    print(
        f"torch {torch.__version__}, {name}, 1 thread, {args.seeds} seeds x {args.steps} steps of "
        f"{args.batch}, validation every {args.eval_every}"
    )
    print(f"{'variant':<10}{'fit img/s':>11}{'ensemble img/s':>16}{'ratio':>7}{'load':>7}")
    for variant in args.variants:
        one, many = compare(variant, args)
        print(f"{variant:<10}{one:>11.0f}{many:>16.0f}{many / one:>7.2f}{os.getloadavg()[0]:>7.2f}")


if __name__ == "__main__":
    main()
