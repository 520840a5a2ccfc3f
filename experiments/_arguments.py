"""The grid runner's command line: options, help text, and the study specification they resolve to.

Machinery for :mod:`experiments.grid`.
"""

from __future__ import annotations

import argparse

from downscalexr.data.registry import dataset_options, list_datasets
from downscalexr.layers import list_downsample
from downscalexr.models import list_models
from downscalexr.overrides import OverrideError, looks_like_override, parse_override
from experiments.errors import UsageError
from experiments.spec import NO_VARIANT, SpecError, StudySpec, list_studies, load_spec_with

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

overrides:
  --set KEY.PATH=VALUE (or a bare KEY.PATH=VALUE word) changes one key of the study; the value is
  YAML. Mappings merge key by key, so --set train.lr=1e-3 keeps the other training settings:
    --set train.lr=1e-3 --set data.min_val=5 --set 'variants=[avgpool, maxpool]' model_options.channels=[8,16]
  The result is checked like a study file (unknown keys are named with the valid ones) and is what
  spec.yaml records. --seeds, --variants, --fractions, --epochs, --data, --skip-bad, --device and --ensemble
  are shorthands for seeds, variants, fractions, train.epochs, data.path, data.skip_bad, train.device and
  train.ensemble; one key set to two different values is refused. The grid runs any subset of the registered
  operators; the report compares them against the study's `reference` (or the first variant when it
  is not among them). Before the first cell the grid loads the data once, builds every model x
  variant and runs one batch through it: a bad path, option or shape stops it with exit 2 and
  nothing stored.

results of earlier versions:
  Files stored before a column existed read fine in the report; for other Parquet readers (pandas,
  duckdb, polars) to see each table whole, rewrite them once: python -m experiments.upgrade <out>.

exit codes:
  0 every cell ok; 1 some cells failed or diverged (the rest stored); 2 bad usage (argument, study
  file, --out of another specification); 3 environment (disk full, no permission, a worker process
  lost, directory locked by another runner); 130 / 143 interrupted by SIGINT / SIGTERM.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.grid",
        description="Train every variant x seed x data fraction of a study and store the results as "
        "Parquet tables (runs, epochs, predictions, latency, kernels) under results/<study>/.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY.PATH=VALUE",
        help="the same as --set KEY.PATH=VALUE (see 'overrides' below)",
    )
    parser.add_argument(
        "--study",
        default="default",
        help=f"built-in study ({', '.join(list_studies())}), or a YAML file given as a path "
        "(default: default)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="sets",
        metavar="KEY.PATH=VALUE",
        help="change one key of the study, value read as YAML (repeatable): --set train.lr=1e-3 "
        "--set data.min_val=5 --set 'variants=[avgpool, maxpool]'",
    )
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, help="run seeds 0..N-1 (default: the study's seeds)")
    seeds.add_argument("--seed-list", help="comma-separated seeds, e.g. 0,3,7 (default: the study's)")
    parser.add_argument(
        "--variants",
        nargs="+",
        help="downsampling operators, separated by spaces or commas; any subset of the registered "
        "ones (default: the study's)",
    )
    parser.add_argument(
        "--fractions",
        nargs="+",
        help="training-data fractions in (0, 1], separated by spaces or commas (default: the study's)",
    )
    parser.add_argument("--epochs", type=int, help="the study's maximum epochs (train.epochs)")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="real-data studies: skip unreadable images (recorded in data.json) instead of stopping",
    )
    parser.add_argument("--data", help="path to the data for real-data studies (folder or .npz): data.path")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        help="where models train (train.device; default: the study's, cpu): cuda shares the visible "
        "GPUs among the --n-jobs workers, round-robin, each with one CPU thread. Latency is measured "
        "on the CPU either way",
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="train the seeds of each cell together as one vmapped ensemble (train.ensemble): for a GPU, "
        "where it keeps the device busy; slower on a CPU. Each seed's result equals the one-at-a-time "
        "training's up to float rounding, so these cells get their own run ids",
    )
    parser.add_argument("--n-jobs", type=int, help="worker processes (default: all cores); 1 runs in-process")
    parser.add_argument(
        "--backend",
        choices=("processes", "loky", "dask"),
        default="processes",
        help="processes (default): the grid's worker processes on this machine (loky: the same, its "
        "former name); dask: a dask cluster through joblib",
    )
    parser.add_argument(
        "--scheduler", help="dask scheduler address tcp://host:port (default: a local cluster)"
    )
    parser.add_argument("--out", help="study directory (default: results/<study name>)")
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


def _listed(values: list[str]) -> tuple[list[str], list[str]]:
    """Split words given to a list option on commas; words of the form key.path=value are overrides.

    An option taking several words swallows a following positional override (``--variants a b
    train.lr=1``); no operator name or fraction contains ``=``, so such a word is an override.
    """
    items, overrides = [], []
    for word in values:
        if looks_like_override(word):
            overrides.append(word)
        else:
            items += [part.strip() for part in word.split(",") if part.strip()]
    return items, overrides


def _shorthands(args: argparse.Namespace) -> tuple[list[tuple[tuple[str, ...], object]], list[str]]:
    """The study keys the shorthand options set, and override words the list options swallowed."""
    changes: list[tuple[tuple[str, ...], object]] = []
    swallowed: list[str] = []
    if args.seeds is not None:
        if args.seeds <= 0:
            raise UsageError(f"--seeds must be a positive number of seeds, got {args.seeds}")
        changes.append((("seeds",), list(range(args.seeds))))
    if args.seed_list is not None:
        try:
            changes.append((("seeds",), [int(s) for s in args.seed_list.split(",") if s.strip()]))
        except ValueError:
            raise UsageError(
                f"--seed-list must be comma-separated integers, got {args.seed_list!r}"
            ) from None
    for option in ("variants", "fractions"):
        items, extra = _listed(getattr(args, option) or [])
        swallowed += extra
        if option == "fractions" and items:
            try:
                items = [float(x) for x in items]
            except ValueError:
                raise UsageError(f"--fractions must be numbers in (0, 1], got {items}") from None
        if items:
            changes.append(((option,), items))
        elif getattr(args, option) is not None and not extra:
            raise UsageError(f"--{option} needs at least one value")
    if args.epochs is not None:
        changes.append((("train", "epochs"), args.epochs))
    if args.data is not None:
        changes.append((("data", "path"), args.data))
    if getattr(args, "device", None) is not None:
        changes.append((("train", "device"), args.device))
    if getattr(args, "ensemble", False):
        changes.append((("train", "ensemble"), True))
    if args.skip_bad:
        changes.append((("data", "skip_bad"), True))
    return changes, swallowed


def study_overrides(args: argparse.Namespace) -> list[tuple[tuple[str, ...], object]]:
    """Every change the command line makes to the study: shorthand options first, then ``--set``.

    Raises
    ------
    UsageError
        A malformed override, a positional word that is not one, or one key set to two values.
    """
    changes, swallowed = _shorthands(args)
    for word in [*args.overrides, *swallowed]:
        if not looks_like_override(word):
            raise UsageError(
                f"unexpected argument {word!r}: a positional argument is an override KEY.PATH=VALUE "
                "(e.g. train.lr=0.001); give the study with --study"
            )
    try:
        return changes + [parse_override(text) for text in [*args.sets, *args.overrides, *swallowed]]
    except OverrideError as exc:
        raise UsageError(str(exc)) from None


def resolve_spec(args: argparse.Namespace) -> StudySpec:
    """Load the study and apply command-line overrides, validating names against the registries."""
    try:
        spec = load_spec_with(args.study, study_overrides(args))
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    check_names(spec)
    return spec


def check_names(spec: StudySpec) -> None:
    """Resolve every registry name of ``spec`` (operators, models, data set and its options).

    Raises
    ------
    UsageError
        Naming the unknown name and the valid ones.
    """
    operators = list_downsample()
    variants = [v for m in spec.model_specs for v in m.variants if v != NO_VARIANT]
    bad = list(dict.fromkeys(v for v in [*spec.variants, *variants] if v not in operators))
    if bad:
        raise UsageError(f"unknown variant(s) {', '.join(bad)}; choose from {', '.join(operators)}")
    if spec.reference not in operators:
        raise UsageError(f"unknown reference variant {spec.reference!r}; choose from {', '.join(operators)}")
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
