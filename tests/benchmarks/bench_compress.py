"""CPU latency of the compression levels of the default LeNet, relative to the fp32 model (issue 17).

For each variant, times the fp32 model and each level at batch 1 and 32 with
:func:`downscalexr.latency.measure_latency` (one thread, the calling thread's CPU clock by default, so
other processes on a shared machine inflate the figures less), in interleaved rounds (every level once
per round, median of the per-round medians), and prints ms per batch and the ratio to fp32. Weights are
the seeded initial ones and int8 calibrates on noise images: kernel times do not depend on the values.
Not collected by pytest: ``python tests/benchmarks/bench_compress.py [--variants ...] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

from downscalexr.compress import apply_compression
from downscalexr.latency import measure_latency
from downscalexr.models import create_model

LEVELS = ("none", "int8_dynamic", "int8_static", "prune_channels_30", "prune_l1_80")
INPUT = (1, 64, 64)


def compressed_models(variant: str, levels: tuple[str, ...]) -> dict[str, torch.nn.Module]:
    """Each supported level of the default LeNet with this operator, by level name."""
    parent = create_model("lenet", downsample=variant, seed=0).eval()
    calib = torch.randn(256, *INPUT, generator=torch.Generator().manual_seed(0))
    models = {}
    for level in levels:
        model, facts = apply_compression(level, parent, seed=0, calib_data=calib)
        if model is None:
            print(f"  {variant}/{level}: unsupported ({facts['reason']})")
        else:
            models[level] = model
    return models


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["avgpool", "maxpool", "strided"])
    parser.add_argument("--levels", nargs="+", default=list(LEVELS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clock", default="thread_cpu", choices=["wall", "thread_cpu"])
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}; torch {torch.__version__}; clock {args.clock}")
    for variant in args.variants:
        models = compressed_models(variant, tuple(args.levels))
        medians: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for level, model in models.items():
                result = measure_latency(
                    model,
                    INPUT,
                    batch_sizes=(1, 32),
                    memory_format="contiguous",
                    clock=args.clock,
                    reference=False,
                )
                for row in result.summary.itertuples():
                    medians.setdefault((level, row.batch_size), []).append(row.median_s)
        for batch in (1, 32):
            base = statistics.median(medians[("none", batch)])
            for level in models:
                ms = statistics.median(medians[(level, batch)])
                line = f"{variant:9s} batch {batch:2d} {level:18s} {1e3 * ms:8.3f} ms"
                print(f"{line}  ratio to fp32 {ms / base:5.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
