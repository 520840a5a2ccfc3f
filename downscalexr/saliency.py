"""Grad-CAM maps and two measured saliency outcomes: localisation and deletion-curve faithfulness.

Grad-CAM (Selvaraju et al., ICCV 2017) weights each channel of a convolutional layer's output by the
spatial mean of the target score's gradient and keeps the positive part of their sum. The maps come
from captum's ``LayerGradCam``; this module decides what it is run on:

- **Which layer**: the output of the last convolutional stage (what the head sees) -- ``down2`` of a
  :class:`~downscalexr.models.lenet.LeNet`, ``stage3`` of a :class:`~downscalexr.models.resnet.ResNet`
  (its ``cam_layer``); any other model needs ``layer=`` (a module of that model).
- **Which score**: a single-logit binary model scores the positive class with its logit ``z``; the
  negative class is scored by ``-z`` (the logit of ``1 - sigmoid(z)``), so target 0 explains
  "negative" rather than silently explaining "positive" again. Multi-class models use their logits.
- **In-place activations** (``nn.ReLU(inplace=True)`` in the LeNet head) make module backward hooks
  fail ("Output 0 of BackwardHookFunction is a view and is being modified inplace"). captum 0.9's
  ``LayerGradCam`` uses a forward hook and clones the layer output, and gives the hand-computed map
  through an in-place ReLU (``tests/test_saliency.py``); the maps are nevertheless computed on a deep
  copy of the model with every module's ``inplace`` flag off, in eval mode, so a hook-based method or
  a future captum stays safe. The caller's model (weights, BatchNorm statistics, train/eval mode) is
  never modified. In-place *functional* calls in a ``forward`` (``x.relu_()``) cannot be switched off
  this way; no model of ours has them.

Maps are upsampled bilinearly to the input size and divided by their per-image maximum (values in
[0, 1]; an all-zero map stays zero). A layer whose valid convolutions crop the borders (the LeNet
without padding) is stretched over the whole image, as is usual for Grad-CAM.

Outcomes per image (both NaN where undefined, so a caller averages with ``nanmean`` and reports counts):

- :func:`localisation`: share of the (positive) map's mass inside a ground-truth mask, in [0, 1];
  higher = the evidence lies on the planted signal. NaN for an empty mask or a map without mass.
- :func:`deletion_area`: area under the deletion curve (Petsiuk et al., BMVC 2018, "RISE"): remove the
  most salient pixels first (set to ``baseline``, 0.0 = the training mean of standardised images) in
  ``steps`` equal stages and record the target-class probability; trapezoid area over the fraction
  removed, in [0, 1]. Lower = the map found the pixels the prediction depends on (more faithful).

:func:`saliency_subset` chooses the test images from ``test_seed`` alone, so every seed and variant of
a study explains the same images.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from downscalexr.models.lenet import LeNet
from downscalexr.seeding import numpy_rng


@dataclass(frozen=True)
class SaliencyResult:
    """Grad-CAM maps and outcomes of a batch of N images of side H x W.

    Attributes
    ----------
    targets : numpy.ndarray
        Class explained per image (int64, N).
    cams : torch.Tensor
        Maps, N x H x W, float32, each in [0, 1] (divided by its maximum).
    localisation : numpy.ndarray
        Share of map mass inside the mask (float64, N); all NaN without masks.
    deletion_area : numpy.ndarray
        Area under the deletion curve (float64, N).
    deletion_curves : numpy.ndarray
        Target-class probability after each deletion stage, N x (steps + 1), stage 0 = intact image.
    """

    targets: np.ndarray
    cams: torch.Tensor
    localisation: np.ndarray
    deletion_area: np.ndarray
    deletion_curves: np.ndarray


class _ClassScores(nn.Module):
    """``model`` with one score per class: ``[-z, z]`` for a single logit ``z``, else the logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return class_scores(self.model(x))  # (N, K), K >= 2


def class_scores(logits: torch.Tensor) -> torch.Tensor:
    """One score per class from a model's output (N x 1 logit, or N x K logits): N x max(2, K).

    A single logit ``z`` becomes ``[-z, z]``: ``-z`` is the logit of the negative class.
    """
    if logits.ndim != 2:
        raise ValueError(f"expected model outputs of shape (N, K), got {tuple(logits.shape)}")
    return torch.cat([-logits, logits], dim=1) if logits.shape[1] == 1 else logits


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities, N x max(2, K): ``[sigmoid(-z), sigmoid(z)]`` for one logit, else softmax."""
    if logits.ndim == 2 and logits.shape[1] == 1:
        return torch.sigmoid(class_scores(logits))
    return torch.softmax(class_scores(logits), dim=1)


def cam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM explains by default: the output of the model's last convolutional stage.

    Raises
    ------
    ValueError
        For a model family without a known layer (pass ``layer=`` to :func:`gradcam_maps` then).
    """
    layer = getattr(model, "cam_layer", None)
    if isinstance(layer, nn.Module):
        return layer
    if isinstance(model, LeNet):
        return model.down2
    raise ValueError(
        f"no default Grad-CAM layer for {type(model).__name__}; known: LeNet (down2), ResNet (stage3); "
        "pass layer=<a convolutional module of the model>"
    )


def explainable_copy(model: nn.Module, layer: nn.Module | None = None) -> tuple[nn.Module, nn.Module]:
    """A deep copy of ``model`` in eval mode with in-place activations off, and the copy's CAM layer.

    Parameters
    ----------
    model : nn.Module
        The trained model (left untouched).
    layer : nn.Module, optional
        A module of ``model`` to explain; default :func:`cam_layer`.

    Returns
    -------
    (nn.Module, nn.Module)
        The copy and the module of the copy that corresponds to ``layer``.
    """
    layer = cam_layer(model) if layer is None else layer
    name = next((n for n, m in model.named_modules() if m is layer), None)
    if name is None:
        raise ValueError(f"layer {type(layer).__name__} is not a module of {type(model).__name__}")
    clone = _eval_copy(model)
    return clone, clone.get_submodule(name)


def _eval_copy(model: nn.Module) -> nn.Module:
    clone = copy.deepcopy(model).eval()
    for module in clone.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
    return clone


def gradcam_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | np.ndarray,
    *,
    layer: nn.Module | None = None,
    batch_size: int = 32,
) -> torch.Tensor:
    """Grad-CAM maps of ``images`` for the classes ``targets``, upsampled and normalised.

    Parameters
    ----------
    model : nn.Module
        Trained classifier: N x 1 logit (binary) or N x K logits.
    images : torch.Tensor
        N x C x H x W, as the model was trained on (standardised).
    targets : array of int
        Class to explain per image (N): 0/1 for a binary model (0 = negative), 0..K-1 otherwise.
    layer : nn.Module, optional
        Module of ``model`` to explain; default :func:`cam_layer`.
    batch_size : int
        Images per backward pass.

    Returns
    -------
    torch.Tensor
        N x H x W float32 on the CPU, each map divided by its maximum (in [0, 1]; all-zero maps stay zero).
    """
    from captum.attr import LayerAttribution, LayerGradCam  # here: ~0.5 s to import, for saliency only

    targets = _check_batch(images, targets)
    clone, clone_layer = explainable_copy(model, layer)
    device = _device_of(clone)
    _check_targets_fit(clone, images, targets)
    explainer = LayerGradCam(_ClassScores(clone), clone_layer)
    maps = []
    with torch.enable_grad():  # captum differentiates; a caller's no_grad() must not break it
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device)
            target = targets[start : start + batch_size].tolist()
            attr = explainer.attribute(x, target=target, relu_attributions=True)  # (n, 1, h, w)
            up = LayerAttribution.interpolate(attr, tuple(images.shape[-2:]), interpolate_mode="bilinear")
            maps.append(up[:, 0].detach().float().cpu())  # (n, H, W)
    cams = torch.cat(maps).clamp_min(0)  # (N, H, W); bilinear keeps >= 0, the clamp removes -0.0
    peak = cams.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cams / peak.clamp_min(torch.finfo(cams.dtype).tiny), cams)


def localisation(cams: torch.Tensor, masks: torch.Tensor | np.ndarray) -> np.ndarray:
    """Share of each map's positive mass inside its boolean mask.

    Parameters
    ----------
    cams : torch.Tensor
        Maps, N x H x W (negative values count as zero).
    masks : array of bool
        Ground-truth masks, N x H x W (or N x 1 x H x W).

    Returns
    -------
    numpy.ndarray
        float64, N, in [0, 1]; NaN where the mask is empty or the map has no positive mass.

    Examples
    --------
    >>> cam = torch.tensor([[[3.0, 1.0], [0.0, 0.0]]])
    >>> localisation(cam, torch.tensor([[[True, False], [False, False]]]))
    array([0.75])
    """
    cams = torch.as_tensor(cams).detach().cpu().double()
    masks = torch.as_tensor(masks).cpu()
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.dtype != torch.bool:
        raise ValueError(f"masks must be boolean (True inside the signal), got {masks.dtype}")
    if cams.ndim != 3 or masks.shape != cams.shape:
        raise ValueError(
            f"cams (N, H, W) and masks must have one shape, got {tuple(cams.shape)} and {tuple(masks.shape)}"
        )
    mass = cams.clamp_min(0)
    total = mass.sum(dim=(1, 2))
    inside = (mass * masks).sum(dim=(1, 2))
    share = inside / total
    undefined = (total == 0) | ~masks.any(dim=2).any(dim=1)
    return torch.where(undefined, torch.nan, share).numpy()


def deletion_curves(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | np.ndarray,
    cams: torch.Tensor,
    *,
    steps: int = 20,
    baseline: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Target-class probability as the most salient pixels are removed, in ``steps`` stages.

    Stage ``k`` sets the ``floor(k * H * W / steps)`` most salient pixels (all channels) of each image
    to ``baseline``; ties in the map go to the earlier pixel in row-major order.

    Parameters
    ----------
    model : nn.Module
        Trained classifier (run on an eval-mode copy).
    images : torch.Tensor
        N x C x H x W.
    targets : array of int
        Class per image (N), as for :func:`gradcam_maps`.
    cams : torch.Tensor
        Saliency maps, N x H x W (any non-negative scale; only their order matters).
    steps : int
        Number of deletion stages (>= 1).
    baseline : float
        Value a removed pixel takes.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Probabilities, N x (steps + 1) (stage 0 = intact image), and the fraction of pixels removed
        at each stage, steps + 1, from 0 to 1.
    """
    targets = _check_batch(images, targets)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    n, _, h, w = images.shape
    if tuple(cams.shape) != (n, h, w):
        raise ValueError(f"cams must be (N, H, W) = {(n, h, w)}, got {tuple(cams.shape)}")
    clone = _eval_copy(model)
    device = _device_of(clone)
    _check_targets_fit(clone, images, targets)
    removed = torch.arange(steps + 1) * (h * w) // steps  # (steps + 1,) pixels removed per stage
    curves = np.empty((n, steps + 1))
    with torch.no_grad():
        for i in range(n):
            order = torch.argsort(cams[i].flatten().cpu(), descending=True, stable=True)  # (H*W,)
            rank = torch.empty_like(order)
            rank[order] = torch.arange(h * w)  # rank[p] = position of pixel p in the deletion order
            gone = (rank[None, :] < removed[:, None]).reshape(steps + 1, 1, h, w)  # (S+1, 1, H, W)
            x = images[i].cpu()[None].expand(steps + 1, -1, -1, -1)  # (S+1, C, H, W)
            x = torch.where(gone, torch.as_tensor(baseline, dtype=x.dtype), x)
            probs = class_probabilities(clone(x.to(device)))  # (S+1, K)
            curves[i] = probs[:, int(targets[i])].double().cpu().numpy()
    return curves, (removed.double() / (h * w)).numpy()


def deletion_area(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Trapezoid area under each deletion curve over the fraction of pixels removed (N curves -> N).

    Examples
    --------
    >>> deletion_area(np.array([[1.0, 0.5, 0.0]]), np.array([0.0, 0.5, 1.0]))
    array([0.5])
    """
    curves, fractions = np.asarray(curves, dtype=float), np.asarray(fractions, dtype=float)
    widths = np.diff(fractions)  # (S,)
    return ((curves[:, 1:] + curves[:, :-1]) / 2 * widths).sum(axis=1)


def saliency_outcomes(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | np.ndarray,
    masks: torch.Tensor | np.ndarray | None = None,
    *,
    layer: nn.Module | None = None,
    steps: int = 20,
    baseline: float = 0.0,
) -> SaliencyResult:
    """Grad-CAM maps, localisation (with ``masks``) and deletion-curve area of a batch, in one call.

    Explain the class each image truly has (or the predicted one, by the study's choice) and pass the
    images of :func:`saliency_subset`; see :func:`gradcam_maps`, :func:`localisation` and
    :func:`deletion_curves` for the parameters.
    """
    targets = _check_batch(images, targets)
    cams = gradcam_maps(model, images, targets, layer=layer)
    if masks is None:
        local = np.full(len(images), np.nan)
    else:
        local = localisation(cams, masks)
    curves, fractions = deletion_curves(model, images, targets, cams, steps=steps, baseline=baseline)
    return SaliencyResult(
        targets=targets.numpy(),
        cams=cams,
        localisation=local,
        deletion_area=deletion_area(curves, fractions),
        deletion_curves=curves,
    )


def saliency_subset(n_test: int, n_images: int, test_seed: int) -> np.ndarray:
    """Indices of the ``n_images`` test images to explain, fixed by ``test_seed`` alone (sorted, int64).

    The same indices come back for every seed, variant and fraction of a study.

    Examples
    --------
    >>> saliency_subset(1000, 5, 0).tolist() == saliency_subset(1000, 5, 0).tolist()
    True
    """
    for name, value in (("n_test", n_test), ("n_images", n_images)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if n_images > n_test:
        raise ValueError(f"n_images ({n_images}) exceeds the test set ({n_test}); lower saliency.n_images")
    chosen = numpy_rng(test_seed, "saliency").choice(n_test, size=n_images, replace=False)
    return np.sort(chosen).astype(np.int64)


def _check_batch(images: torch.Tensor, targets: torch.Tensor | np.ndarray) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or len(images) == 0:
        raise ValueError("images must be a non-empty tensor of shape (N, C, H, W)")
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.long).reshape(-1)
    if len(targets) != len(images):
        raise ValueError(f"one target per image: {len(targets)} targets for {len(images)} images")
    if (targets < 0).any():
        raise ValueError("targets are class indices >= 0 (0 = negative class of a binary model)")
    return targets


def _check_targets_fit(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> None:
    with torch.no_grad():
        k = class_scores(model(images[:1].to(_device_of(model)))).shape[1]
    if int(targets.max()) >= k:
        raise ValueError(f"target {int(targets.max())} out of range for a model with {k} classes")


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
