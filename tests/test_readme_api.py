"""The public Python API (issue 16 item 6): the README's example runs as written, and each package's
``__all__`` names what it exports."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

import downscalexr
from downscalexr.layers import list_downsample

MARKER = "<!-- python-api-example -->"
REPO = Path(__file__).resolve().parent.parent


def readme_example() -> str:
    """The Python block that follows the marker in the README."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(MARKER) + len(MARKER) :]
    found = re.match(r"\s*```python\n(.*?)\n```", after, re.DOTALL)
    assert found, "the README's API example must be a ```python block right after the marker"
    return found.group(1)


@pytest.mark.slow
def test_the_readme_example_runs_and_does_what_it_says(tmp_path, monkeypatch, capsys, kept_process_state):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with kept_process_state():
        exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr().out
    assert "avgpool" in printed and "lenet" in printed and "detection" in printed and "smoke" in printed
    result = namespace["result"]
    assert result.status == "ok" and result.cell.variant == "maxpool" and result.cell.seed == 0
    assert isinstance(result.model, torch.nn.Module)
    # the model was trained: its weights moved away from the seed's initial ones
    untrained = downscalexr.create_model(
        "lenet", downsample="maxpool", seed=0, input_size=32, **result.spec.model_options
    )
    moved = [
        not torch.equal(a, b) for a, b in zip(result.model.parameters(), untrained.parameters(), strict=True)
    ]
    assert all(moved)
    fresh = namespace["fresh"]
    assert fresh(torch.zeros(2, 1, 32, 32)).shape == (2, 1)
    runs = namespace["tables"]["runs"]
    assert len(runs) == 6 and (runs["status"] == "ok").all()  # 3 variants x 2 seeds at fraction 1.0
    # train_cell gives the cell the grid stores: same run id, same test metrics
    stored = runs.set_index("run_id").loc[result.run_id]
    for metric in ("accuracy", "auroc", "log_loss"):
        assert stored[metric] == result.runs[metric], metric
    assert (Path("results/smoke-api") / "spec.yaml").is_file()


@pytest.mark.parametrize("package", ["downscalexr", "experiments", "analysis"])
def test_every_name_in_all_is_importable(package):
    module = importlib.import_module(package)
    assert module.__all__ and len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        module.nope  # noqa: B018


def test_the_library_lists_what_a_user_chooses_from():
    from experiments import list_studies

    assert downscalexr.list_downsample() == list_downsample()
    assert {"lenet", "mlp"} <= set(downscalexr.list_models())
    assert {"detection", "folder", "npz"} <= set(downscalexr.list_datasets())
    assert {"default", "smoke"} <= set(list_studies())


def test_train_cell_overrides_and_refuses_a_cell_the_study_does_not_have():
    from experiments import SpecError, train_cell

    result = train_cell(
        "smoke", "train.epochs=1", "latency.enabled=false", variant="aps", seed=5, fraction=0.5
    )
    runs = result.tables["runs"]
    assert runs.loc[0, "variant"] == "aps" and runs.loc[0, "seed"] == 5 and runs.loc[0, "epochs_run"] == 1
    assert result.tables["latency"].empty and len(result.tables["epochs"]) == 1
    assert isinstance(result.runs, pd.Series) and result.spec.variants == ("aps",)
    with pytest.raises(SpecError, match="no cell of model resnet8"):
        train_cell("smoke", model="resnet8")
    with pytest.raises(ValueError, match="unknown variant"):
        train_cell("smoke", variant="avgpoool")
