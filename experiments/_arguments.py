"""The grid runner's command line: options, help text, and the study specification they resolve to.

Machinery for :mod:`experiments.grid`.
"""

from __future__ import annotations

import argparse

from downscalexr.data.registry import dataset_options, list_datasets
from downscalexr.layers import list_downsample
from downscalexr.models import list_models
from experiments.errors import UsageError
from experiments.spec import NO_VARIANT, SpecError, StudySpec, from_dict, list_studies, load_spec

EPILOG = """\
reruns:
  A rerun of the same command skips stored cells and retries the cells stored as `failed` (a crash,
  a lost worker, unreadable data); `diverged` cells are results and are kept. --no-retry-failed keeps
  failed cells too; --force recomputes every cell. A study file corrected in a key that only affected
  failed cells is accepted (the superseded failed cells move to quarantine/); a change to stored ok or
  diverged cells is refused: give another --out.

one runner per directory:
  A runner holds <out>/runner.lock for the whole run; a second one is refused with the holder's pid,
  host and start time. Ctrl-C stops dispatching and lets running cells finish (again: cancels them);
  SIGTERM cancels running cells. Stored cells stay; rerun the same command to resume.

--study:
  A built-in name always means the packaged study, even if a file or folder of that name is in the
  working directory; give a file as a path (./smoke.yaml). `lr: 1e-3` is read as a number.

exit codes:
  0 every cell ok; 1 some cells failed or diverged (the rest stored); 2 bad usage (argument, study
  file, --out of another specification); 3 environment (disk full, no permission, a worker process
  lost, directory locked by another runner); 130 / 143 interrupted by SIGINT / SIGTERM.
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option; the epilog kept as written."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.grid",
        description="Train every variant x seed x data fraction of a study and store the results as "
        "Parquet tables (runs, epochs, predictions, latency, kernels) under results/<study>/.",
        epilog=EPILOG,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--study",
        default="default",
        help=f"built-in study ({', '.join(list_studies())}), or a YAML file given as a path",
    )
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds", type=int, default=None, help="run seeds 0..N-1 (default: the study's seeds)"
    )
    seeds.add_argument("--seed-list", default=None, help="comma-separated seeds, e.g. 0,3,7")
    parser.add_argument(
        "--variants", nargs="+", default=None, help="downsampling operators (default: the study's)"
    )
    parser.add_argument(
        "--fractions", nargs="+", type=float, default=None, help="training-data fractions in (0, 1]"
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the study's maximum epochs")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="real-data studies: skip unreadable images (recorded in data.json) instead of stopping",
    )
    parser.add_argument(
        "--data", default=None, help="path to the data for real-data studies (folder or .npz)"
    )
    parser.add_argument(
        "--n-jobs", type=int, default=None, help="worker processes (default: all cores); 1 runs in-process"
    )
    parser.add_argument(
        "--backend",
        choices=("processes", "loky", "dask"),
        default="processes",
        help="processes: the grid's worker processes on this machine (loky: the same, its former name); "
        "dask: a dask cluster through joblib",
    )
    parser.add_argument(
        "--scheduler", default=None, help="dask scheduler address tcp://host:port (default: a local cluster)"
    )
    parser.add_argument("--out", default=None, help="study directory (default: results/<study>)")
    parser.add_argument("--force", action="store_true", help="recompute every cell, stored ones too")
    parser.add_argument(
        "--no-retry-failed",
        action="store_true",
        help="keep cells stored as failed instead of retrying them (see 'reruns' below)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list the cells, what a run would do with each, and a time estimate; changes nothing",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    return parser


def resolve_spec(args: argparse.Namespace) -> StudySpec:
    """Load the study and apply command-line overrides, validating names against the registries."""
    overrides: dict = {}
    if args.seeds is not None:
        if args.seeds <= 0:
            raise UsageError(f"--seeds must be a positive number of seeds, got {args.seeds}")
        overrides["seeds"] = list(range(args.seeds))
    if args.seed_list is not None:
        try:
            overrides["seeds"] = [int(s) for s in args.seed_list.split(",") if s.strip()]
        except ValueError:
            raise UsageError(
                f"--seed-list must be comma-separated integers, got {args.seed_list!r}"
            ) from None
    if args.variants:
        overrides["variants"] = args.variants
    if args.fractions:
        overrides["fractions"] = args.fractions
    try:
        spec = load_spec(args.study, **overrides)
        if args.epochs is not None or args.data is not None or args.skip_bad:
            raw = spec.to_dict()
            if args.epochs is not None:
                raw["train"]["epochs"] = args.epochs
            if args.data is not None:
                raw["data"]["path"] = args.data
            if args.skip_bad:
                raw["data"]["skip_bad"] = True
            spec = load_spec_from(raw)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    _check_names(spec)
    return spec


def load_spec_from(raw: dict) -> StudySpec:
    return from_dict(StudySpec, raw)


def _check_names(spec: StudySpec) -> None:
    variants = [v for m in spec.model_specs for v in m.variants if v != NO_VARIANT]
    bad = list(dict.fromkeys(v for v in [*spec.variants, *variants] if v not in list_downsample()))
    if bad:
        raise UsageError(f"unknown variant(s) {', '.join(bad)}; choose from {', '.join(list_downsample())}")
    for m in spec.model_specs:
        if m.name not in list_models():
            raise UsageError(f"unknown model {m.name!r}; choose from {', '.join(list_models())}")
    if spec.dataset not in list_datasets():
        raise UsageError(f"unknown data set {spec.dataset!r}; choose from {', '.join(list_datasets())}")
    unknown = sorted(set(spec.data) - set(dataset_options(spec.dataset)))
    if unknown:
        raise UsageError(
            f"data set {spec.dataset!r}: unknown option(s) {', '.join(unknown)}; "
            f"valid: {', '.join(dataset_options(spec.dataset))}"
        )
    if spec.reference not in spec.variants:
        raise UsageError(
            f"reference variant {spec.reference!r} is not among the variants {list(spec.variants)}"
        )
