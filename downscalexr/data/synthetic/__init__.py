"""Synthetic image tasks, generated directly as tensors (no files, nothing downloaded).

- :mod:`~downscalexr.data.synthetic.edges`: the CNN inductive-bias homework's edge classes
  (:func:`make_edges`, :func:`make_edges_splits`), with its location shift and pixel permutation.
- :mod:`~downscalexr.data.synthetic.detection`: the binary task that mirrors the chest X-ray setting,
  faint partly occluded segments on texture (:func:`make_detection_splits`).
- :mod:`~downscalexr.data.synthetic.shapes`: an RGB multi-class task, coloured shapes and oriented
  gratings on coloured texture (:func:`make_shapes_splits`).

Each generator's parameters are frozen dataclasses that check themselves on construction
(:class:`EdgeImages`, :class:`EdgesTask`, :class:`ShapeImages`, ...); the ``make_*_splits`` functions
also take them as flat keywords, the keys of a study's ``data:`` block. Everything is a pure function
of the seeds: each split draws from its own named stream of :mod:`downscalexr.seeding`, so the test set
depends only on ``test_seed``. Every split function returns the test images' ground-truth masks in
``ImageSplits.masks_test`` (where the planted signal is), for localisation scores.
"""

from downscalexr.data.synthetic._raster import correlated_noise
from downscalexr.data.synthetic._task import SplitTask
from downscalexr.data.synthetic.detection import (
    DETECTION_CLASSES,
    EDGE_TYPES,
    DetectionImages,
    DetectionTask,
    make_detection_splits,
)
from downscalexr.data.synthetic.edges import (
    EDGE_CLASSES,
    EDGE_CLASSES_3,
    EDGE_CLASSES_5,
    EdgeImages,
    EdgesTask,
    location_shift_regions,
    make_edges,
    make_edges_splits,
)
from downscalexr.data.synthetic.permutation import apply_permutation, pixel_permutation
from downscalexr.data.synthetic.shapes import SHAPE_CLASSES, ShapeImages, ShapesTask, make_shapes_splits

__all__ = [
    "DETECTION_CLASSES",
    "EDGE_CLASSES",
    "EDGE_CLASSES_3",
    "EDGE_CLASSES_5",
    "EDGE_TYPES",
    "SHAPE_CLASSES",
    "DetectionImages",
    "DetectionTask",
    "EdgeImages",
    "EdgesTask",
    "ShapeImages",
    "ShapesTask",
    "SplitTask",
    "apply_permutation",
    "correlated_noise",
    "location_shift_regions",
    "make_detection_splits",
    "make_edges",
    "make_edges_splits",
    "make_shapes_splits",
    "pixel_permutation",
]
