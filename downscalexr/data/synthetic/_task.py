"""What every synthetic task shares: split sizes, the fixed pixel permutation, options by name, assembly.

A task is a frozen dataclass (:class:`SplitTask` subclass) whose ``images`` field holds the image
generator's own frozen dataclass. A study's ``data:`` block is flat (``n_train``, ``edge_contrast``,
...): :meth:`SplitTask.from_options` sends each key to the task or to its image class and rejects unknown
names with the list of valid ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from downscalexr.data.base import ImageSplits
from downscalexr.data.synthetic._checks import count, flag, jsonable, normalise
from downscalexr.data.synthetic.permutation import apply_permutation, pixel_permutation
from downscalexr.seeding import numpy_rng

__all__ = ["SPLITS", "SplitTask", "assemble", "resolve"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitTask:
    """Split sizes and the pixel permutation; subclasses add their fields and ``images``.

    Parameters
    ----------
    n_train, n_val, n_test : int
        Split sizes, each at least 1.
    permute : bool
        Shuffle the pixels of every image (and every mask) by one fixed
        :func:`~downscalexr.data.synthetic.pixel_permutation`.
    permutation_seed : int
        Seed of that permutation.
    """

    n_train: int = 2000
    n_val: int = 500
    n_test: int = 1000
    permute: bool = False
    permutation_seed: int = 0

    generator: ClassVar[str] = ""  # the data set's name: errors, info["generator"], random stream names
    images_type: ClassVar[type]  # the frozen dataclass of the image parameters
    image_defaults: ClassVar[dict[str, Any]] = {}  # this task's defaults for image parameters
    image_fields_hidden: ClassVar[tuple[str, ...]] = ()  # image parameters the task sets itself

    def __post_init__(self) -> None:
        normalise(
            self,
            n_train=count("n_train", self.n_train),
            n_val=count("n_val", self.n_val),
            n_test=count("n_test", self.n_test),
            permute=flag("permute", self.permute),
            permutation_seed=count("permutation_seed", self.permutation_seed, 0),
        )
        images = getattr(self, "images", None)
        if not isinstance(images, self.images_type):
            raise ValueError(f"images must be a {self.images_type.__name__}, got {type(images).__name__}")

    @property
    def sizes(self) -> dict[str, int]:
        """``{split: number of examples}``."""
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}

    def rng(self, split: str, seed: int, test_seed: int) -> np.random.Generator:
        """The split's own random stream: train and validation from ``seed``, test from ``test_seed``."""
        return numpy_rng(test_seed if split == "test" else seed, self.generator, split)

    def provenance(self, seed: int, test_seed: int) -> dict:
        """The settings every task records in ``info`` (JSON-serialisable)."""
        return {
            "permute": self.permute,
            "permutation_seed": self.permutation_seed,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": self.n_test,
            "seed": seed,
            "test_seed": test_seed,
        }

    def image_info(self) -> dict:
        """The image parameters as JSON-serialisable values (without those the task sets itself)."""
        params = dataclasses.asdict(self.images)
        return jsonable({k: v for k, v in params.items() if k not in self.image_fields_hidden})

    @classmethod
    def _names(cls) -> tuple[list[str], list[str]]:
        own = [f.name for f in dataclasses.fields(cls) if f.name != "images"]
        hidden = cls.image_fields_hidden
        image = [f.name for f in dataclasses.fields(cls.images_type) if f.name not in hidden]
        return own, image

    @classmethod
    def option_names(cls) -> list[str]:
        """Every keyword :meth:`from_options` accepts: the task's own, then the image parameters."""
        own, image = cls._names()
        return own + image

    @classmethod
    def from_options(cls, **options):
        """The task from flat keyword options (a study's ``data:`` block).

        Raises
        ------
        ValueError
            For an unknown option (listing the valid ones) or a value a check rejects.
        """
        own, image = cls._names()
        unknown = sorted(set(options) - set(own) - set(image))
        if unknown:
            raise ValueError(
                f"data set {cls.generator!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"valid: {', '.join(own + image)}"
            )
        image_options = cls.image_defaults | {k: v for k, v in options.items() if k in image}
        task_options = {k: v for k, v in options.items() if k in own}
        return cls(images=cls.images_type(**image_options), **task_options)


def resolve(cls: type, given, options: dict):
    """``given`` (an instance of the frozen dataclass ``cls``) when set, else ``cls`` built from the
    keyword ``options``; tasks go through :meth:`SplitTask.from_options` (flat study keys).

    Raises
    ------
    ValueError
        When both or a wrong type are given, or for an unknown option (listing the valid ones).
    """
    if given is not None:
        if not isinstance(given, cls):
            raise ValueError(f"expected a {cls.__name__}, got {type(given).__name__}")
        if options:
            keys = ", ".join(sorted(options))
            raise ValueError(f"give either a {cls.__name__} or keyword options, not both (got {keys})")
        return given
    if issubclass(cls, SplitTask):
        return cls.from_options(**options)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listed = f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(valid)}"
        raise ValueError(f"{cls.__name__}: {listed}")
    return cls(**options)


def assemble(task: SplitTask, parts: dict, class_names: tuple[str, ...], info: dict) -> ImageSplits:
    """:class:`ImageSplits` from ``{split: (x, y, masks)}`` numpy arrays (``N x C x H x W`` float32,
    ``N`` int64, ``N x H x W`` bool), with every image and mask permuted when ``task.permute``.

    Only the test split's masks are kept (``masks_test``): they are what a localisation score needs.
    """
    tensors = {s: [torch.from_numpy(x), torch.from_numpy(y)] for s, (x, y, _) in parts.items()}
    masks = torch.from_numpy(parts["test"][2])
    if task.permute:
        perm = pixel_permutation(masks.shape[-1], task.permutation_seed)[0]
        tensors = {s: [apply_permutation(x, perm), y] for s, (x, y) in tensors.items()}
        masks = apply_permutation(masks[:, None], perm)[:, 0]
    flat = [t for s in SPLITS for t in tensors[s]]
    return ImageSplits(*flat, class_names=class_names, info=info, masks_test=masks)
