"""Training-step time of every downsampling operator relative to maxpool (issue 7's speed budget).

Prints ms per training step (forward + backward + Adam step) of the default study model for each
registered operator and its ratio to ``maxpool``; the budget is a ratio of at most 2. Operators are
timed in interleaved rounds (every operator once per round, median over rounds), so a burst of load
from other processes on a shared machine inflates all operators alike instead of one of them.
Not collected by pytest (no ``test_`` prefix): ``python tests/benchmarks/bench_operators.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from downscalexr.layers import list_downsample
from downscalexr.models import create_model


def make_step(variant: str, *, model: str, size: int, batch: int, channels_last: bool) -> Callable[[], None]:
    """One closure running a full training step of ``model`` with operator ``variant``."""
    net = create_model(model, downsample=variant, seed=0, input_size=size)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=gen).contiguous(memory_format=fmt)
    y = (torch.rand(batch, generator=gen) > 0.5).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step() -> None:
        loss = loss_fn(net(x)[:, 0], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def time_operators(
    variants: list[str],
    *,
    model: str,
    size: int,
    batch: int,
    steps: int,
    warmup: int,
    rounds: int,
    channels_last: bool,
) -> dict[str, float]:
    """Median over ``rounds`` of the mean seconds per step, per operator."""
    steps_by_variant = {
        v: make_step(v, model=model, size=size, batch=batch, channels_last=channels_last) for v in variants
    }
    for step in steps_by_variant.values():
        # The first steps pay for oneDNN primitive creation and first-touch page faults.
        for _ in range(warmup):
            step()
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for v, step in steps_by_variant.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            samples[v].append((time.perf_counter() - t0) / steps)
    return {v: statistics.median(s) for v, s in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet", help="model family (default: lenet)")
    parser.add_argument("--size", type=int, default=64, help="input side in pixels (default 64)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per operator per round (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=3, help="discarded warm-up steps (default 3)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1, as in grid workers)"
    )
    parser.add_argument("--variants", nargs="*", default=None, help="operators (default: all registered)")
    parser.add_argument(
        "--nchw", action="store_true", help="NCHW instead of channels_last (train.py default)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = args.variants or list_downsample()
    if "maxpool" not in variants:
        variants = ["maxpool", *variants]
    load_before = os.getloadavg()[0]
    seconds = time_operators(
        variants,
        model=args.model,
        size=args.size,
        batch=args.batch,
        steps=args.steps,
        warmup=args.warmup,
        rounds=args.rounds,
        channels_last=not args.nchw,
    )
    print(
        f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} cpus, threads {args.threads}, "
        f"{args.model} {args.size}x{args.size} batch {args.batch}, "
        f"{'NCHW' if args.nchw else 'channels_last'}, {args.rounds} rounds x {args.steps} steps, "
        f"load {load_before:.2f} before / {os.getloadavg()[0]:.2f} after"
    )
    reference = seconds["maxpool"]
    print(f"| {'operator':<13}| {'ms/step':>8} | {'/ maxpool':>9} |")
    print(f"|{'-' * 14}|{'-' * 10}|{'-' * 11}|")
    for v in variants:
        ratio = seconds[v] / reference
        flag = "  over 2x budget" if ratio > 2 else ""
        print(f"| {v:<13}| {1e3 * seconds[v]:>8.1f} | {ratio:>9.2f} |{flag}")


if __name__ == "__main__":
    main()
