"""Training-time augmentation of image batches: named policies, explicit generators, per-example draws.

A study crosses its variants with an ``augment`` factor (``none``, ``flip``, ``flip_rotate``, ...). The
trainer builds one :class:`Augmenter` per cell from the cell's seed and calls it on **training batches
only**; validation and test images are never passed to it (model selection and every reported metric
see the images as they are)::

    augment = make_augmenter("flip_rotate", seed)      # one per cell
    for xb, yb in training_batches:
        xb = augment(xb)                                # (B, C, H, W) -> (B, C, H, W), same dtype
        ...
    evaluate(model, x_val)                              # never augmented

Randomness. torchvision's v2 transform *classes* draw their parameters from torch's global RNG. This
module samples every parameter itself, from the explicit ``torch.Generator`` the caller owns, and
applies them with the deterministic functional API (:mod:`torchvision.transforms.v2.functional`), so
global RNG state is never read or changed and a cell's augmented batches repeat exactly for its seed.
Each example gets its own draws (flip or not, angle, contrast factor). Every policy draws the same
four uniforms per example in the same order, used or not, so for one seed ``flip`` and
``flip_rotate`` flip the same examples.

Operations (applied in this order):

- horizontal / vertical flip with a probability (``F.horizontal_flip`` / ``F.vertical_flip``);
- rotation by an angle uniform in ``[-degrees, degrees]`` about the centre, bilinear, corners filled
  with ``fill`` (default 0.0, the training mean of standardised images) (``F.rotate``, one call per
  example, since v2 rotates a whole batch by one angle);
- contrast: ``mean + factor * (x - mean)`` with ``factor`` uniform in ``[1 - contrast, 1 + contrast]``
  and ``mean`` the image's grayscale mean (``F.rgb_to_grayscale`` for 3 channels). This is
  ``F.adjust_contrast`` without its clamp to ``[0, 1]``, which would destroy standardised images whose
  values are negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from downscalexr.seeding import torch_generator

#: Uniform draws per example: horizontal flip, vertical flip, angle, contrast factor.
DRAWS_PER_EXAMPLE = 4


@dataclass(frozen=True)
class AugmentPolicy:
    """What a named augmentation does; ranges are validated on construction.

    Attributes
    ----------
    name : str
        Registry name.
    hflip, vflip : float
        Probability of a horizontal / vertical flip, in [0, 1].
    degrees : float
        Largest absolute rotation angle in degrees, in [0, 180]; 0 means no rotation.
    contrast : float
        Half-width of the contrast factor's range around 1, in [0, 1); 0 means no contrast change.
    """

    name: str
    hflip: float = 0.0
    vflip: float = 0.0
    degrees: float = 0.0
    contrast: float = 0.0

    def __post_init__(self) -> None:
        for field in ("hflip", "vflip"):
            value = getattr(self, field)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment policy {self.name!r}: {field} is a probability, got {value!r}")
        if not 0.0 <= self.degrees <= 180.0:
            raise ValueError(
                f"augment policy {self.name!r}: degrees must be in [0, 180], got {self.degrees!r}"
            )
        if not 0.0 <= self.contrast < 1.0:
            raise ValueError(
                f"augment policy {self.name!r}: contrast must be in [0, 1) (factor in [1 - c, 1 + c]), "
                f"got {self.contrast!r}"
            )

    @property
    def is_identity(self) -> bool:
        """Whether the policy changes nothing."""
        return self.hflip == self.vflip == self.degrees == self.contrast == 0.0


@dataclass(frozen=True)
class AugmentParams:
    """Per-example parameters of one batch, each a tensor of length B (on the CPU).

    Attributes
    ----------
    hflip, vflip : torch.Tensor
        Boolean, whether each example is flipped.
    angle : torch.Tensor
        Rotation angle in degrees (float64; 0 for no rotation).
    contrast : torch.Tensor
        Contrast factor (float64; 1 for no change).
    """

    hflip: torch.Tensor
    vflip: torch.Tensor
    angle: torch.Tensor
    contrast: torch.Tensor


_POLICIES: dict[str, AugmentPolicy] = {}


def register_augment(policy: AugmentPolicy) -> AugmentPolicy:
    """Add ``policy`` to the registry; a second entry under the same name is an error."""
    if policy.name in _POLICIES:
        raise ValueError(f"augment policy {policy.name!r} is already registered")
    _POLICIES[policy.name] = policy
    return policy


def list_augment() -> list[str]:
    """Names of the registered policies, in registration order."""
    return list(_POLICIES)


def get_augment(name: str | AugmentPolicy) -> AugmentPolicy:
    """Resolve a policy name (or pass a policy through).

    Raises
    ------
    ValueError
        For an unknown name, listing the valid ones.

    Examples
    --------
    >>> get_augment("flip_rotate").degrees
    10.0
    """
    if isinstance(name, AugmentPolicy):
        return name
    try:
        return _POLICIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown augment policy {name!r}; choose from {', '.join(_POLICIES)}") from None


def sample_params(policy: AugmentPolicy, n: int, generator: torch.Generator) -> AugmentParams:
    """Draw the parameters of ``n`` examples from ``generator`` (``4 n`` uniforms, whatever the policy)."""
    u = torch.rand(n, DRAWS_PER_EXAMPLE, generator=generator, dtype=torch.float64)  # (n, 4)
    return AugmentParams(
        hflip=u[:, 0] < policy.hflip,
        vflip=u[:, 1] < policy.vflip,
        angle=(2.0 * u[:, 2] - 1.0) * policy.degrees,
        contrast=1.0 + (2.0 * u[:, 3] - 1.0) * policy.contrast,
    )


def apply_params(images: torch.Tensor, params: AugmentParams, *, fill: float = 0.0) -> torch.Tensor:
    """Apply per-example ``params`` to ``images`` (B x C x H x W, floating point); a new tensor.

    Examples whose parameters are neutral (no flip, angle 0, factor 1) come back bit-identical.
    """
    out = images
    if params.hflip.any():
        out = _where(params.hflip, _tf().horizontal_flip(out), out)
    if params.vflip.any():
        out = _where(params.vflip, _tf().vertical_flip(out), out)
    if (params.angle != 0).any():
        out = _rotate_each(out, params.angle, fill)
    if (params.contrast != 1).any():
        out = _contrast_each(out, params.contrast)
    return out.clone() if out is images else out


def augment_batch(
    images: torch.Tensor, policy: str | AugmentPolicy, generator: torch.Generator, *, fill: float = 0.0
) -> torch.Tensor:
    """Augment one training batch with ``policy``, drawing from ``generator`` only.

    Parameters
    ----------
    images : torch.Tensor
        Training images, batch x channels x height x width, floating point, on any device.
    policy : str or AugmentPolicy
        Registry name (``none``, ``flip``, ``rotate``, ``contrast``, ``flip_rotate``,
        ``flip_rotate_contrast``) or a policy.
    generator : torch.Generator
        CPU generator the per-example parameters are drawn from (advanced by ``4 * batch`` draws,
        except for an identity policy, which draws nothing).
    fill : float
        Value of the corners a rotation uncovers.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``images``; ``images`` itself for an identity policy.

    Raises
    ------
    ValueError
        For an unknown policy, or images that are not a 4-D floating-point batch.
    """
    policy = get_augment(policy)
    _check_images(images)
    if policy.is_identity:
        return images
    return apply_params(images, sample_params(policy, images.shape[0], generator), fill=fill)


class Augmenter:
    """A policy bound to its own generator: call it on each training batch, in order.

    Parameters
    ----------
    policy : str or AugmentPolicy
        What to apply.
    generator : torch.Generator
        The stream the parameters come from (see :func:`make_augmenter` for one made from a seed).
    fill : float
        Value of the corners a rotation uncovers.
    """

    def __init__(self, policy: str | AugmentPolicy, generator: torch.Generator, *, fill: float = 0.0):
        self.policy = get_augment(policy)
        self.generator = generator
        self.fill = fill

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return augment_batch(images, self.policy, self.generator, fill=self.fill)

    def __repr__(self) -> str:
        return f"Augmenter({self.policy.name!r})"


def make_augmenter(policy: str | AugmentPolicy, seed: int, *, fill: float = 0.0) -> Augmenter:
    """The augmenter of a cell: ``policy`` drawing from the ``"augment"`` stream of ``seed``.

    Examples
    --------
    >>> a, b = make_augmenter("flip_rotate", 0), make_augmenter("flip_rotate", 0)
    >>> x = torch.arange(2 * 16.0).reshape(2, 1, 4, 4)
    >>> torch.equal(a(x), b(x))
    True
    """
    return Augmenter(policy, torch_generator(seed, "augment"), fill=fill)


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"augment expects a batch of images (B, C, H, W), got {shape}")
    if not images.is_floating_point():
        raise ValueError(
            f"augment expects floating-point images, got {images.dtype}; convert (and standardise) first"
        )


def _tf():
    """torchvision's functional transforms, imported on first use: the import takes ~1.4 s (it pulls in
    torch._dynamo), which every grid worker would pay at start-up for studies that never augment."""
    from torchvision.transforms.v2 import functional

    return functional


def _where(mask: torch.Tensor, changed: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.to(kept.device)[:, None, None, None], changed, kept)  # (B, C, H, W)


def _rotate_each(images: torch.Tensor, angles: torch.Tensor, fill: float) -> torch.Tensor:
    TF, rows = _tf(), []  # noqa: N806 (torchvision's usual name)
    for image, angle in zip(images, angles.tolist(), strict=True):
        if angle == 0:
            rows.append(image)
        else:
            rows.append(TF.rotate(image, angle, interpolation=TF.InterpolationMode.BILINEAR, fill=[fill]))
    return torch.stack(rows)  # (B, C, H, W)


def _contrast_each(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    gray = _tf().rgb_to_grayscale(images) if images.shape[1] == 3 else images
    mean = gray.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    factor = factors.to(device=images.device, dtype=images.dtype)[:, None, None, None]
    out = mean + factor * (images - mean)
    return torch.where(factor == 1, images, out)  # neutral examples bit-identical


register_augment(AugmentPolicy("none"))
register_augment(AugmentPolicy("flip", hflip=0.5))
register_augment(AugmentPolicy("rotate", degrees=10.0))
register_augment(AugmentPolicy("contrast", contrast=0.2))
register_augment(AugmentPolicy("flip_rotate", hflip=0.5, degrees=10.0))
register_augment(AugmentPolicy("flip_rotate_contrast", hflip=0.5, degrees=10.0, contrast=0.2))
