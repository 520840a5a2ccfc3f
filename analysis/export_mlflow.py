"""``python -m analysis.export_mlflow``: replay a study's Parquet tables into an MLflow tracking store.

The Parquet tables stay the source of truth; the export is a read-only replay of them, for people who
browse runs in MLflow. It needs the optional extra: ``pip install -e ".[mlflow]"``.

What is written (one experiment, default name: the study's)::

    parent run "<study>"        tags: downscalexr.role=study, the study, the results directory
                                artifacts: spec.yaml, environment.json, data.json, report/ (when found)
      child run per cell        params and tags: the cell's design columns (study .. init of ``runs``)
                                tags: run_id, status, error, provenance (package, git commit, CPU, ...)
                                and any other text or flag column
                                metrics: every other numeric ``runs`` column (test metrics, model facts,
                                generalization), ``epoch/<column>`` per ``epochs`` row with step = epoch,
                                ``latency/b<batch>_<format>_t<threads>/<statistic>`` per latency group

Rerunning is idempotent: each cell's MLflow run carries its ``run_id`` and ``finished_at``. A cell
already exported is skipped; a cell recomputed since (another ``finished_at``), or whose earlier export
was interrupted, has its old MLflow run marked deleted (MLflow keeps it, restorable) and is logged anew.
One parent run per results directory (its absolute path is the key): another directory of the same study
gets its own parent run. The ``predictions`` and ``kernels`` tables are not exported (read them from
Parquet). Two exports into one store at the same time are not guarded against.

Exit status: 0 on success, 1 when the store failed part-way (rerun to finish: exported cells are
skipped), 2 on bad input (no results, MLflow not installed, unusable tracking URI).
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.load import SPEC_FILES, LoadError, read_table
from downscalexr import schema

INSTALL_HINT = 'pip install -e ".[mlflow]" (in a clone of DownScaleXR)'
ROLE = "downscalexr.role"  # "study" (the parent run) or "cell"
RUN_ID = "downscalexr.run_id"  # the cell's run_id: what makes a rerun skip it
FINISHED = "downscalexr.finished_at"  # when the cell finished: a recomputed cell has another
RESULTS = "downscalexr.results_dir"  # absolute path of the study directory: the parent run's key
PARENT = "mlflow.parentRunId"
_COLUMNS = list(schema.RUNS)
DESIGN_COLUMNS = tuple(_COLUMNS[_COLUMNS.index("study") : _COLUMNS.index("params")])
TAG_COLUMNS = ("status", "error", *_COLUMNS[_COLUMNS.index("package_version") :])
EXTRA_ARTIFACTS = ("environment.json", "data.json")
MAX_PARAMS, MAX_METRICS, MAX_TAG_CHARS = 100, 1000, 5000  # MLflow's limits per log_batch, per tag value


class ExportError(RuntimeError):
    """The export cannot start: the message says what is wrong and how to fix it."""


class StoreError(RuntimeError):
    """The MLflow store failed part-way; a rerun finishes the export."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (``--help`` explains every flag)."""
    p = argparse.ArgumentParser(
        prog="python -m analysis.export_mlflow",
        description="Replay a study's Parquet tables (results/<study>/) into an MLflow tracking store: one "
        "MLflow run per cell (design as params and tags, epochs as metric steps, test metrics, a latency "
        "summary), nested under a parent run holding the study's spec.yaml and report. The Parquet tables "
        "stay the source of truth; rerunning adds only cells not yet exported and replaces recomputed "
        f"ones. Needs the optional extra: {INSTALL_HINT}.",
    )
    p.add_argument(
        "--results", type=Path, required=True, metavar="DIR", help="the study directory, e.g. results/default"
    )
    p.add_argument(
        "--tracking-uri",
        metavar="URI",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI, e.g. sqlite:///mlflow.db (a database file in the current directory) or "
        "http://HOST:5000 (default: $MLFLOW_TRACKING_URI)",
    )
    p.add_argument(
        "--experiment",
        metavar="NAME",
        help="MLflow experiment, created if missing (default: the study's name)",
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="report directory or file attached to the parent run (default: reports/<study>/ when it "
        "holds report.md)",
    )
    p.add_argument(
        "--artifact-location",
        metavar="URI",
        help="where a new experiment keeps artifacts (default: mlartifacts/ beside a sqlite database, "
        "else the tracking server's choice); an existing experiment keeps its own",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the export; return the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        message = _run(args)
    except StoreError as exc:
        return _fail(f"the MLflow store failed: {exc}\nrerun to finish: exported cells are skipped", 1)
    except ImportError as exc:  # e.g. a bare mlflow-skinny without SQLAlchemy for a sqlite store
        return _fail(f"a package MLflow needs is missing ({exc}); install the extra: {INSTALL_HINT}", 2)
    except (ExportError, LoadError) as exc:
        return _fail(str(exc), 2)
    if not args.quiet:
        print(message)
    return 0


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> str:
    """Check the input, export, and return the summary to print."""
    _require_mlflow(args.tracking_uri)
    tables = _tables(args.results)  # before the client: it creates a sqlite database at once
    client = _client(args.tracking_uri)
    study = _study_name(args.results, tables["runs"])
    report = _report_path(args.report, study)
    experiment = args.experiment or study
    from mlflow.exceptions import MlflowException

    try:
        experiment_id = _experiment(client, experiment, args.artifact_location, args.tracking_uri)
        counts, parent = export_study(client, experiment_id, args.results, tables, study, report)
    except MlflowException as exc:
        raise StoreError(exc) from exc
    attached = f"report attached from {report}" if report else "no report attached (pass --report DIR)"
    message = (
        f"exported {counts['new']} cell(s), replaced {counts['replaced']}, skipped {counts['skipped']} "
        f"already present; experiment {experiment!r} (id {experiment_id}), parent run {parent}, "
        f"store {args.tracking_uri}; {attached}"
    )
    if counts["orphans"]:
        message += (
            f"\nnote: {counts['orphans']} MLflow run(s) under this parent have no cell in the tables (kept)"
        )
    return message


def export_study(client, experiment_id: str, results: Path, tables: dict, study: str, report: Path | None):
    """Log every cell of ``tables`` under one parent run; return (counts, parent MLflow run id).

    Parameters
    ----------
    client : mlflow.MlflowClient
        A client of the target store.
    experiment_id : str
        The experiment to log into.
    results : Path
        The study directory (its absolute path identifies the parent run; its spec is attached).
    tables : dict of str to DataFrame
        ``runs``, ``epochs`` and ``latency`` as read by :func:`analysis.load.read_table`.
    study : str
        The study's name (the parent run's name).
    report : Path or None
        A report directory or file to attach to the parent run.

    Returns
    -------
    tuple of (dict, str)
        Counts ``new``, ``replaced``, ``skipped``, ``orphans`` and the parent run's MLflow id.
    """
    runs = tables["runs"].sort_values("run_id", ignore_index=True)
    parent = _parent_run(client, experiment_id, results, study, runs)
    existing: dict[str, list] = {}
    for run in _search(client, experiment_id, f"tags.`{ROLE}` = 'cell' AND tags.`{PARENT}` = '{parent}'"):
        existing.setdefault(run.data.tags.get(RUN_ID, ""), []).append(run)
    epochs = dict(tuple(tables["epochs"].groupby("run_id", sort=False)))
    latency = dict(tuple(tables["latency"].groupby("run_id", sort=False)))
    counts = {"new": 0, "replaced": 0, "skipped": 0}
    for row in runs.to_dict("records"):
        previous = existing.pop(row["run_id"], [])
        finished = _text(row["finished_at"])
        if len(previous) == 1 and _complete(previous[0], finished):
            counts["skipped"] += 1
            continue
        for old in previous:  # recomputed since, interrupted, or duplicated: replaced (soft delete)
            client.delete_run(old.info.run_id)
        counts["replaced" if previous else "new"] += 1
        _log_cell(client, experiment_id, parent, row, epochs.get(row["run_id"]), latency.get(row["run_id"]))
    counts["orphans"] = sum(len(v) for v in existing.values())
    _attach(client, parent, results, report)
    client.set_tag(parent, "downscalexr.cells", str(len(runs)))
    client.set_terminated(parent, "FINISHED", end_time=_millis(runs["finished_at"].dropna().max()))
    return counts, parent


def cell_metrics(row: dict, epochs: pd.DataFrame | None, latency: pd.DataFrame | None) -> list[tuple]:
    """The MLflow metrics of one cell as ``(key, value, step)``; NaN and missing values are left out.

    Parameters
    ----------
    row : dict
        The cell's ``runs`` row: its numeric columns outside the design and provenance become metrics
        at step 0 (an extra numeric column a later version adds included).
    epochs, latency : DataFrame or None
        The cell's ``epochs`` rows (``epoch/<column>`` at step = epoch) and ``latency`` rows (per batch
        size x memory format x threads: median, quartiles and minimum in ms, images/s, repeats, and the
        median of the reference workload's time).

    Returns
    -------
    list of tuple
        ``(key, value, step)`` with float values.
    """
    skip = {"run_id", *DESIGN_COLUMNS, *TAG_COLUMNS}
    out = [(c, float(v), 0) for c, v in row.items() if c not in skip and _is_number(v)]
    if epochs is not None:
        for rec in epochs.sort_values("epoch").to_dict("records"):
            out += [
                (f"epoch/{c}", float(v), int(rec["epoch"]))
                for c, v in rec.items()
                if c not in ("run_id", "epoch") and _is_number(v)
            ]
    if latency is not None and not latency.empty:
        for (b, fmt, thr), group in latency.groupby(["batch_size", "memory_format", "threads"], sort=True):
            stats = _latency_stats(group["seconds"], group["reference_seconds"], b)
            out += [(f"latency/b{b}_{fmt}_t{thr}/{k}", v, 0) for k, v in stats.items() if _is_number(v)]
    return out


def _latency_stats(seconds: pd.Series, reference: pd.Series, batch: int) -> dict[str, float]:
    """Median, quartiles and minimum of the passes (ms), images/s, repeats, reference median (ms)."""
    s, ref = seconds.astype(float).dropna(), reference.astype(float).dropna()
    median = s.median() if len(s) else math.nan
    return {
        "median_ms": median * 1e3,
        "q25_ms": s.quantile(0.25) * 1e3,
        "q75_ms": s.quantile(0.75) * 1e3,
        "min_ms": s.min() * 1e3,
        "images_per_s": batch / median if median > 0 else math.nan,
        "repeats": float(len(s)),
        "reference_median_ms": ref.median() * 1e3 if len(ref) else math.nan,
    }


def _require_mlflow(tracking_uri: str | None) -> None:
    if not tracking_uri:
        raise ExportError("no tracking URI: pass --tracking-uri, e.g. sqlite:///mlflow.db")
    try:
        import mlflow  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"MLflow is not installed ({exc}); install the extra: {INSTALL_HINT}") from exc


def _client(tracking_uri: str):
    from mlflow import MlflowClient

    db = _sqlite_path(tracking_uri)
    if db is not None and not db.parent.is_dir():
        raise ExportError(f"--tracking-uri {tracking_uri}: folder {db.parent} does not exist")
    return MlflowClient(tracking_uri=tracking_uri)


def _sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the current directory unless absolute)."""
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix) :]) if tracking_uri.startswith(prefix) else None


def _tables(results: Path) -> dict[str, pd.DataFrame]:
    if not results.is_dir():
        raise ExportError(f"results directory {results} does not exist; run python -m experiments.grid")
    tables = {name: read_table(results, name) for name in ("runs", "epochs", "latency")}
    if tables["runs"].empty:
        raise ExportError(f"no runs in {results / 'runs'}: is {results} a study directory?")
    return tables


def _study_name(results: Path, runs: pd.DataFrame) -> str:
    names = runs["study"].dropna().unique()
    return str(names[0]) if len(names) == 1 else results.resolve().name


def _report_path(report: Path | None, study: str) -> Path | None:
    if report is None:
        default = Path("reports") / study
        return default if (default / "report.md").is_file() else None
    if not report.exists():
        raise ExportError(f"--report {report} does not exist; write it with analysis.report or omit it")
    return report


def _experiment(client, name: str, artifact_location: str | None, tracking_uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage != "active":
            raise ExportError(f"experiment {name!r} is deleted in this store; restore it or pick another")
        return found.experiment_id
    db = _sqlite_path(tracking_uri)
    if artifact_location is None and db is not None:
        artifact_location = (db.parent.resolve() / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=artifact_location)


def _search(client, experiment_id: str, filter_string: str) -> list:
    """Every active run of the experiment matching ``filter_string``, over all result pages."""
    out, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def _parent_run(client, experiment_id: str, results: Path, study: str, runs: pd.DataFrame) -> str:
    key = str(results.resolve())
    quoted = key.replace("\\", "\\\\").replace("'", "\\'")
    found = _search(client, experiment_id, f"tags.`{ROLE}` = 'study' AND tags.`{RESULTS}` = '{quoted}'")
    if found:
        return found[0].info.run_id
    tags = {
        ROLE: "study",
        "downscalexr.study": study,
        RESULTS: key,
        "mlflow.source.name": "analysis.export_mlflow",
        "mlflow.note.content": f"Study {study!r} replayed from the Parquet tables in {key} (the source of "
        "truth); one child run per cell.",
    }
    started = _millis(runs["started_at"].dropna().min())
    return client.create_run(experiment_id, start_time=started, tags=tags, run_name=study).info.run_id


def _complete(run, finished: str) -> bool:
    """Whether an earlier export of a cell finished and is of the same computation."""
    return run.info.status != "RUNNING" and run.data.tags.get(FINISHED) == finished


def _log_cell(client, experiment_id: str, parent: str, row: dict, epochs, latency) -> None:
    """One MLflow run for one cell; its status is set last, so an interrupted one stays RUNNING."""
    from mlflow.entities import Metric, Param

    stamp = _millis(row["finished_at"]) or _millis(row["started_at"])
    design = {c: _text(row[c]) for c in DESIGN_COLUMNS}
    # every other text or flag column is a tag too (a column added later included): only numbers are metrics
    text = {c for c, v in row.items() if isinstance(v, str | bool | np.bool_) and c not in design}
    tags = design | {c: _text(row[c])[:MAX_TAG_CHARS] for c in (*TAG_COLUMNS, *sorted(text - {"run_id"}))}
    tags |= {ROLE: "cell", RUN_ID: _text(row["run_id"]), FINISHED: _text(row["finished_at"]), PARENT: parent}
    started = _millis(row["started_at"])
    rid = client.create_run(experiment_id, start_time=started, tags=tags, run_name=_name(row)).info.run_id
    params = [Param(c, v) for c, v in design.items()]
    metrics = [Metric(k, v, stamp or 0, step) for k, v, step in cell_metrics(row, epochs, latency)]
    for i in range(0, len(params), MAX_PARAMS):
        client.log_batch(rid, params=params[i : i + MAX_PARAMS])
    for i in range(0, len(metrics), MAX_METRICS):
        client.log_batch(rid, metrics=metrics[i : i + MAX_METRICS])
    client.set_terminated(rid, "FINISHED" if row["status"] == "ok" else "FAILED", end_time=stamp)


def _attach(client, parent: str, results: Path, report: Path | None) -> None:
    """Log the spec, environment and data records and the report; a path logged again is overwritten."""
    for name in (*SPEC_FILES, *EXTRA_ARTIFACTS):
        if (results / name).is_file():
            client.log_artifact(parent, str(results / name))
    if report is not None:
        log = client.log_artifacts if report.is_dir() else client.log_artifact
        log(parent, str(report), artifact_path="report")


def _name(row: dict) -> str:
    """A readable run name: model/variant, seed, fraction, and any factor level off its default."""
    name = f"{row['model']}/{row['variant']} seed={row['seed']} fraction={row['data_fraction']:g}"
    if _text(row.get("transform")) not in ("none", ""):
        name += f" transform={row['transform']}"
    if row.get("permute") is True:
        name += " permuted"
    if _is_number(row.get("location_shift")):
        name += f" shift={row['location_shift']:g}"
    if _text(row.get("init")) not in ("none", "random"):
        name += f" init={row['init']}"
    return name


def _is_number(value) -> bool:
    """A real number that is not NaN (bools, strings and missing values are not)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return False
    return not math.isnan(value)


def _text(value) -> str:
    """A param or tag value; a missing value is ``"none"``."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "none"
    return str(value)


def _millis(stamp) -> int | None:
    """Milliseconds since the epoch of an ISO-8601 time stamp; None when missing or unreadable."""
    if _text(stamp) == "none":
        return None
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1000)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
