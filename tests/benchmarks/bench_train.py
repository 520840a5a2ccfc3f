"""Training throughput of the default study model, per downsampling operator (`make bench-train`).

Prints images/s (forward + backward + Adam step) on one thread and the effective GFLOP/s, counting a
training step as 3x the forward FLOPs (forward, input-gradient and weight-gradient passes). Warm-up
steps are discarded because the first steps pay for oneDNN primitive creation and page faults.
Run it on an idle machine; the allocator variables set by the Makefile matter (see README).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from bench_operators import make_step  # same directory: one definition of a training step

from downscalexr.layers import list_downsample
from downscalexr.models import create_model, forward_flops


def throughput(
    variant: str, *, model: str, size: int, batch: int, steps: int, warmup: int, channels_last: bool
):
    step = make_step(variant, model=model, size=size, batch=batch, channels_last=channels_last)
    net = create_model(model, downsample=variant, seed=0, input_size=size)

    for _ in range(warmup):
        step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    images_per_s = steps * batch / seconds
    gflops = 3 * forward_flops(net, (1, size, size)) * images_per_s / 1e9
    # CPU share < 1 means another process took the core: the figure then understates the machine.
    return images_per_s, gflops, cpu_seconds / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="lenet", help="model family (default: lenet, the default study model)"
    )
    parser.add_argument("--size", type=int, default=64, help="input side in pixels (default 64)")
    parser.add_argument("--batch", type=int, default=64, help="training batch size (default 64)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per operator (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="discarded warm-up steps (default 5)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1, as in grid workers)"
    )
    parser.add_argument(
        "--variants", nargs="*", default=None, help="operators (default: every registered one)"
    )
    parser.add_argument("--nchw", action="store_true", help="use contiguous NCHW instead of channels_last")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = args.variants or list_downsample()
    print(
        f"torch {torch.__version__}, threads {args.threads}, {platform.processor() or platform.machine()}, "
        f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')}, "
        f"load {os.getloadavg()[0]:.2f}, layout {'NCHW' if args.nchw else 'channels_last'}"
    )
    print(f"{'variant':<14}{'images/s':>10}{'GFLOP/s':>10}{'CPU share':>11}")
    for variant in variants:
        ips, gflops, share = throughput(
            variant,
            model=args.model,
            size=args.size,
            batch=args.batch,
            steps=args.steps,
            warmup=args.warmup,
            channels_last=not args.nchw,
        )
        print(f"{variant:<14}{ips:>10.0f}{gflops:>10.1f}{share:>11.2f}")


if __name__ == "__main__":
    main()
