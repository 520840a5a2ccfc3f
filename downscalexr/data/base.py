"""The in-memory form every data set takes: pre-tensorised train / validation / test splits."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class ImageSplits:
    """Train, validation and test images as tensors, ready for batching without a Dataset.

    Images are float32 ``N x C x H x W`` (C = 1 for grayscale) scaled to roughly [0, 1];
    labels are int64 ``N``. For binary tasks label 1 is the positive (abnormal) class.
    ``info`` carries provenance (generator parameters, file hashes, how the validation split was made).
    ``masks_test`` (synthetic data only, else None) is bool ``N_test x H x W``: the pixels where the
    generator planted each test image's signal (edge, segment, shape), for localisation scores.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]
    info: dict = field(default_factory=dict)
    masks_test: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 4:
                raise ValueError(f"x_{split} must be N x C x H x W, got shape {tuple(x.shape)}")
            if x.dtype != torch.float32:
                raise ValueError(f"x_{split} must be float32, got {x.dtype}")
            if y.dtype != torch.int64 or y.ndim != 1 or len(y) != len(x):
                raise ValueError(
                    f"y_{split} must be int64 of length {len(x)}, got {y.dtype} {tuple(y.shape)}"
                )
        masks, want = self.masks_test, (len(self.x_test), *self.x_test.shape[2:])
        if masks is not None and (masks.dtype != torch.bool or tuple(masks.shape) != want):
            got = f"{masks.dtype} {tuple(masks.shape)}"
            raise ValueError(f"masks_test must be bool of shape {want} (N_test x H x W), got {got}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.x_train.shape[1:])


def standardized(splits: ImageSplits, index: torch.Tensor | None = None) -> ImageSplits:
    """``splits`` with every image standardised by the mean and standard deviation of the training
    images (or of the training subset ``index``, so no statistic comes from outside what a run trains on).

    Without it the default LeNet sits at the majority class for its first hundreds of steps on
    [0, 1]-scaled inputs whose class signal is a small contrast.
    """
    x = splits.x_train if index is None else splits.x_train[torch.as_tensor(index, dtype=torch.long)]
    mean, std = x.mean(), x.std().clamp_min(1e-6)
    info = splits.info | {"standardized": {"mean": float(mean), "std": float(std)}}
    return ImageSplits(
        (splits.x_train - mean) / std,
        splits.y_train,
        (splits.x_val - mean) / std,
        splits.y_val,
        (splits.x_test - mean) / std,
        splits.y_test,
        class_names=splits.class_names,
        info=info,
        masks_test=splits.masks_test,
    )
