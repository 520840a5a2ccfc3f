"""DownScaleXR: how a CNN's early downsampling operator shapes accuracy, bias, data efficiency and latency.

The library's public entry points, imported on first use (so ``import downscalexr.schema`` stays light
for the analysis, which needs no torch)::

    from downscalexr import create_model, list_downsample, list_models, list_datasets
    list_downsample()                      # the operators, by registry name
    model = create_model("lenet", downsample="blurpool", seed=0, input_size=32)

==========================  ===================================================================
name                        what it does
==========================  ===================================================================
``create_model``            build a model family by name with an operator, initialised from a seed
``list_models``             the registered model families
``list_downsample``         the registered downsampling operators
``get_downsample``          one operator's description (name, factory, notes)
``list_datasets``           the registered data sets
``load_dataset``            load a data set by name -> ``ImageSplits`` (train / val / test tensors)
``fit``, ``TrainConfig``    deterministic training of one model (``FitResult``)
``measure_latency``         CPU latency of a model, per batch size and memory format
==========================  ===================================================================

The grid and the analysis have their own: :mod:`experiments` (``train_cell``, ``run_grid``,
``load_spec``, ``list_studies``) and :mod:`analysis` (``load_study`` and the statistics).
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "create_model": "downscalexr.models",
    "list_models": "downscalexr.models",
    "list_downsample": "downscalexr.layers",
    "get_downsample": "downscalexr.layers",
    "list_datasets": "downscalexr.data.registry",
    "load_dataset": "downscalexr.data.registry",
    "fit": "downscalexr.train",
    "TrainConfig": "downscalexr.train",
    "FitResult": "downscalexr.train",
    "measure_latency": "downscalexr.latency",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    """Import a public name's module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'downscalexr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
