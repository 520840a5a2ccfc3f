"""Grad-CAM after training: the ``saliency`` and ``saliency_maps`` rows of one cell (opt-in per study).

Machinery for :mod:`experiments.cell`. A study turns it on with::

    saliency:
      enabled: true
      n_images: 32      # test images explained per run, the same ones in every cell (from test_seed)
      grid: 8           # side of the coarse grid each map is stored on
      steps: 20         # deletion-curve stages
      target: label     # explain the true class, or `predicted`

Each explained image gets a Grad-CAM map of the model's last convolutional stage
(:func:`downscalexr.saliency.cam_layer`), its localisation score where the data set has ground-truth
masks (synthetic data), and its deletion-curve area (:mod:`downscalexr.saliency`). The maps are stored
averaged over a ``grid x grid`` partition of the image, beside the share of each grid cell inside the
mask, so a report can draw per-variant mean maps with seed bands without the table growing with the
image size. Models without a convolution (the MLP) have nothing to explain and get no rows.

Maps and masks are in the coordinates the model sees: for a pixel-permuted cell that is the permuted
image (localisation is still exact there, as the masks are permuted with the images).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from downscalexr import schema
from downscalexr.data.base import ImageSplits
from downscalexr.models.edge_init import first_conv
from downscalexr.saliency import cam_layer, saliency_outcomes, saliency_subset
from experiments._from_yaml import SpecError

TARGETS = ("label", "predicted")


@dataclass(frozen=True)
class SaliencySpec:
    """Grad-CAM of each trained model on a fixed subset of test images (see :mod:`experiments._saliency`).

    Parameters
    ----------
    enabled : bool
        Off by default: the maps and deletion curves cost a few forward and backward passes per image.
    n_images : int
        Test images explained per run, chosen from the study's ``test_seed`` alone (the same images in
        every seed, variant and fraction); at most the test set's size.
    grid : int
        Side of the grid each stored map is averaged onto (``saliency_maps`` has ``grid**2`` rows per
        image); at most the image side.
    steps : int
        Stages of the deletion curve.
    target : {"label", "predicted"}
        The class each map explains: the image's true class, or the one the model predicts.
    """

    enabled: bool = False
    n_images: int = 32
    grid: int = 8
    steps: int = 20
    target: str = "label"

    def __post_init__(self) -> None:
        for name in ("n_images", "grid", "steps"):
            if getattr(self, name) < 1:
                raise SpecError(f"saliency.{name} must be >= 1, got {getattr(self, name)}")
        if self.target not in TARGETS:
            raise SpecError(f"saliency.target: unknown {self.target!r}; choose from {', '.join(TARGETS)}")


def check_saliency(spec: SaliencySpec, data: ImageSplits) -> None:
    """Refuse settings the data cannot meet (more images than the test set, a grid finer than the image).

    Raises
    ------
    ValueError
        Naming the setting, the data's limit and the fix.
    """
    if not spec.enabled:
        return
    n_test, side = len(data.y_test), min(data.x_test.shape[-2:])
    if spec.n_images > n_test:
        raise ValueError(
            f"saliency.n_images is {spec.n_images} but the test set has {n_test} images; lower "
            "saliency.n_images or enlarge the test set"
        )
    if spec.grid > side:
        raise ValueError(f"saliency.grid is {spec.grid} but the images are {side} pixels wide; lower it")


def saliency_tables(
    spec: SaliencySpec, test_seed: int, model: torch.nn.Module, data: ImageSplits, rid: str
) -> dict[str, pd.DataFrame]:
    """The ``saliency`` and ``saliency_maps`` rows of one trained model (both empty when not enabled).

    Parameters
    ----------
    spec : SaliencySpec
    test_seed : int
        The study's test seed: it alone chooses the explained images.
    model : torch.nn.Module
        The trained model (left untouched: the maps are computed on a copy).
    data : ImageSplits
        The cell's data, as the model was trained on it (standardised).
    rid : str
        The cell's run id.
    """
    empty = {"saliency": schema.empty("saliency"), "saliency_maps": schema.empty("saliency_maps")}
    if not spec.enabled or first_conv(model) is None:
        return empty
    check_saliency(spec, data)
    index = saliency_subset(len(data.y_test), spec.n_images, test_seed)
    images, labels = data.x_test[index], data.y_test[index]  # (N, C, H, W), (N,)
    masks = None if data.masks_test is None else data.masks_test[index]  # (N, H, W)
    predicted = _predicted_classes(model, images)
    targets = labels if spec.target == "label" else predicted
    result = saliency_outcomes(model, images, targets, masks, steps=spec.steps)
    layer = next(name for name, m in model.named_modules() if m is cam_layer(model))
    share = np.full(len(index), np.nan) if masks is None else masks.double().mean(dim=(1, 2)).numpy()
    outcomes = pd.DataFrame(
        {
            "run_id": rid,
            "example_id": index,
            "label": labels.numpy(),
            "target": result.targets,
            "predicted": predicted.numpy(),
            "target_probability": result.deletion_curves[:, 0],
            "layer": layer,
            "localisation": result.localisation,
            "mask_fraction": share,
            "deletion_area": result.deletion_area,
        }
    )
    return {"saliency": outcomes, "saliency_maps": map_rows(result.cams, masks, index, spec.grid, rid)}


def map_rows(
    cams: torch.Tensor, masks: torch.Tensor | None, example_ids: np.ndarray, grid: int, rid: str
) -> pd.DataFrame:
    """Maps (N x H x W) and masks averaged onto a ``grid x grid`` partition, as ``saliency_maps`` rows.

    The partition is :func:`torch.nn.functional.adaptive_avg_pool2d`'s (equal blocks when ``grid``
    divides the side). Rows run example by example, then row-major over the grid.
    """
    n = len(cams)
    coarse = F.adaptive_avg_pool2d(cams.double()[:, None], grid)[:, 0]  # (N, G, G)
    if masks is None:
        inside = torch.full_like(coarse, float("nan"))
    else:
        inside = F.adaptive_avg_pool2d(masks.double()[:, None], grid)[:, 0]  # (N, G, G)
    rows, cols = np.indices((grid, grid)).reshape(2, -1)
    return pd.DataFrame(
        {
            "run_id": rid,
            "example_id": np.repeat(np.asarray(example_ids, dtype=np.int64), grid * grid),
            "row": np.tile(rows, n),
            "col": np.tile(cols, n),
            "cam": coarse.reshape(-1).numpy(),
            "mask": inside.reshape(-1).numpy(),
        }
    )


@torch.no_grad()
def _predicted_classes(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Argmax class of each image; a single-logit model predicts positive at probability >= 0.5, as
    :func:`downscalexr.train.evaluate` does."""
    was_training = model.training
    model.eval()
    logits = model(images)  # (N, 1) or (N, K)
    model.train(was_training)
    return (logits[:, 0] >= 0).long() if logits.shape[1] == 1 else logits.argmax(dim=1)
