"""Saliency tables with planted localisation and deletion-curve areas, for a simulated study's runs.

For every ok run and each of ``n_images`` fixed test images (the same in every run):

* localisation ``l = localisation[arm] + u_seed + image_effect + e`` (clipped to [0.001, 0.999]) with
  a seed effect ``u_seed ~ N(0, seed_sd**2)`` shared by every arm of a seed, an image effect
  ``N(0, image_sd**2)`` shared by every run, and run x image noise ``N(0, noise_sd**2)``;
* deletion area ``d = deletion[arm] + u'_seed + image_effect' + e'`` likewise (clipped to [0, 1]);
* the map on a ``grid`` x ``grid`` grid: the image's mask is a rectangle of grid cells, and the map puts
  exactly the share ``l`` of its mass inside the mask (spread evenly) and ``1 - l`` outside, divided by
  its maximum; so the ``localisation`` column is the map's own share, as the runner computes it.

Hence the expected mean localisation of an arm over the images is ``localisation[arm] +
mean(image_effect)`` exactly (while nothing is clipped), given in ``truth``; likewise for deletion.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from downscalexr import schema
from downscalexr.seeding import numpy_rng

# columns of the two tables as the runner writes them (downscalexr.schema.SALIENCY / SALIENCY_MAPS)
SALIENCY_DTYPES = {
    "run_id": "string",
    "example_id": "int64",
    "label": "int64",
    "target": "int64",
    "predicted": "int64",
    "target_probability": "float64",
    "layer": "string",
    "localisation": "float64",
    "mask_fraction": "float64",
    "deletion_area": "float64",
}
MAP_DTYPES = {
    "run_id": "string",
    "example_id": "int64",
    "row": "int64",
    "col": "int64",
    "cam": "float64",
    "mask": "float64",
}


def _arm(runs: pd.DataFrame) -> np.ndarray:
    return (runs["model"].astype(str) + ":" + runs["variant"].astype(str)).to_numpy()


def _masks(n_images: int, grid: int, rng: np.random.Generator) -> np.ndarray:
    """A rectangle of 2-4 x 2-4 grid cells per image: ``(n_images, grid, grid)`` of 0/1."""
    masks = np.zeros((n_images, grid, grid))
    for i in range(n_images):
        h, w = rng.integers(2, 5, size=2)
        top, left = rng.integers(0, grid - h + 1), rng.integers(0, grid - w + 1)
        masks[i, top : top + h, left : left + w] = 1.0
    return masks


def _maps(localisation: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Maps ``(runs, images, grid, grid)`` with share ``localisation`` of their mass inside the mask."""
    inside = masks.sum(axis=(1, 2))  # (I,)
    outside = masks[0].size - inside
    per_in = localisation / inside[None, :]
    per_out = (1 - localisation) / outside[None, :]
    maps = np.where(masks[None] > 0, per_in[..., None, None], per_out[..., None, None])
    return maps / maps.max(axis=(2, 3), keepdims=True)


def _frame(values: dict, dtypes: dict, table: str) -> pd.DataFrame:
    """The table cast to the schema's columns when the schema knows it, else to ``dtypes``."""
    frame = pd.DataFrame(values)
    if table in schema.TABLES:
        return schema.conform(table, frame)
    return frame[list(dtypes)].astype(dtypes)


def simulate_saliency(
    runs: pd.DataFrame,
    *,
    localisation: Mapping[str, float] | None = None,
    deletion: Mapping[str, float] | None = None,
    n_images: int = 8,
    grid: int = 8,
    seed_sd: float = 0.02,
    image_sd: float = 0.05,
    noise_sd: float = 0.05,
    seed: int = 0,
) -> dict:
    """The ``saliency`` and ``saliency_maps`` tables of the ok runs of a simulated study.

    Parameters
    ----------
    runs : DataFrame
        A simulated ``runs`` table (``model``, ``variant``, ``seed``, ``status``).
    localisation, deletion : dict ``"model:variant"`` -> float
        Planted mean localisation (default 0.5) and deletion area (default 0.3) of each arm.
    n_images, grid : int
        Explained images per run (``example_id`` 0 .. n_images - 1) and the maps' grid side.
    seed_sd, image_sd, noise_sd : float
        SDs of the seed effect, the image effect and the run x image noise.
    seed : int
        Seed of every draw.

    Returns
    -------
    dict
        ``saliency``, ``saliency_maps`` and ``truth``: ``localisation`` and ``deletion`` (expected mean
        over the images per arm), ``masks`` (``(n_images, grid, grid)``) and ``clipped`` (values clipped;
        the truth is exact when 0).
    """
    if n_images < 1 or grid < 5:
        raise ValueError(f"n_images must be >= 1 and grid >= 5, got {n_images} and {grid}")
    rng = numpy_rng(seed, "simulate_saliency")
    ok = runs[runs["status"] == "ok"].sort_values("run_id")
    arms, seeds = _arm(ok), ok["seed"].to_numpy()
    seed_values = np.unique(seeds)
    u_loc, u_del = (
        dict(zip(seed_values, rng.normal(0, seed_sd, seed_values.size), strict=True)) for _ in "ld"
    )
    img_loc, img_del = rng.normal(0, image_sd, n_images), rng.normal(0, image_sd, n_images)
    planted_l = np.array([(localisation or {}).get(a, 0.5) for a in arms])
    planted_d = np.array([(deletion or {}).get(a, 0.3) for a in arms])
    shape = (len(ok), n_images)
    loc = (
        planted_l[:, None]
        + np.vectorize(u_loc.get)(seeds)[:, None]
        + img_loc
        + rng.normal(0, noise_sd, shape)
    )
    dele = (
        planted_d[:, None]
        + np.vectorize(u_del.get)(seeds)[:, None]
        + img_del
        + rng.normal(0, noise_sd, shape)
    )
    clipped = int(((loc < 1e-3) | (loc > 0.999) | (dele < 0) | (dele > 1)).sum())
    loc, dele = np.clip(loc, 1e-3, 0.999), np.clip(dele, 0, 1)
    masks = _masks(n_images, grid, rng)
    ids = np.repeat(ok["run_id"].astype(str).to_numpy(), n_images)
    examples = np.tile(np.arange(n_images), len(ok))
    saliency = {
        "run_id": ids,
        "example_id": examples,
        "label": examples % 3,
        "target": examples % 3,
        "predicted": examples % 3,
        "target_probability": 0.8,
        "layer": np.where(
            np.repeat(ok["model"].astype(str).to_numpy(), n_images) == "lenet", "down2", "stage3"
        ),
        "localisation": loc.ravel(),
        "mask_fraction": np.tile(masks.mean(axis=(1, 2)), len(ok)),
        "deletion_area": dele.ravel(),
    }
    maps = _maps(loc, masks)  # (R, I, G, G)
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    cells = grid * grid
    map_table = {
        "run_id": np.repeat(ids, cells),
        "example_id": np.repeat(examples, cells),
        "row": np.tile(rows.ravel(), ids.size),
        "col": np.tile(cols.ravel(), ids.size),
        "cam": maps.ravel(),
        "mask": np.tile(masks.reshape(n_images, cells), (len(ok), 1)).ravel(),
    }
    names = sorted(set(arms))
    truth = {
        "localisation": {a: float((localisation or {}).get(a, 0.5) + img_loc.mean()) for a in names},
        "deletion": {a: float((deletion or {}).get(a, 0.3) + img_del.mean()) for a in names},
        "masks": masks,
        "clipped": clipped,
    }
    return {
        "saliency": _frame(saliency, SALIENCY_DTYPES, "saliency"),
        "saliency_maps": _frame(map_table, MAP_DTYPES, "saliency_maps"),
        "truth": truth,
    }
