"""DownScaleXR's grid runner: a study's cells -> trained models -> Parquet tables under ``results/<study>/``.

The command is ``python -m experiments.grid``; from Python (a notebook, a script), imported on first use::

    from experiments import list_studies, load_spec, train_cell, run_grid
    result = train_cell("smoke", "train.lr=1e-3", variant="maxpool", seed=0, fraction=1.0)
    result.model, result.tables["runs"]

================  =========================================================================
name              what it does
================  =========================================================================
``train_cell``    train one cell in this process -> ``CellResult`` (model, rows, run_id)
``run_grid``      ``python -m experiments.grid ARGS`` in this process -> exit code
``load_spec``     a study by name or path, with ``key.path=value`` / keyword overrides
``list_studies``  the built-in studies
``StudySpec``     a study (frozen dataclasses, validated)
``cells_of``      every cell of a study; ``run_id(spec, cell)`` its stored identifier
``read_study``    a study directory's tables as the runner reads them back
================  =========================================================================
"""

import importlib

_EXPORTS = {
    "train_cell": "experiments.one_cell",
    "run_grid": "experiments.one_cell",
    "CellResult": "experiments.one_cell",
    "load_spec": "experiments.spec",
    "list_studies": "experiments.spec",
    "StudySpec": "experiments.spec",
    "SpecError": "experiments.spec",
    "Cell": "experiments.cell",
    "cells_of": "experiments.cell",
    "run_id": "experiments.cell",
    "read_study": "experiments.store",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import a public name's module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'experiments' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
