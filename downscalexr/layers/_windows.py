"""Machinery shared by the window-based operators: 2x2 windows as tensor views, layout matching.

Every registered operator halves H and W with floor, like ``nn.AvgPool2d(2)``: an odd last row or
column is dropped. Splitting a dimension is always a view, so these helpers copy nothing, whatever
the memory layout (NCHW or channels_last) of the input.
"""

from __future__ import annotations

import torch


def crop_even(x: torch.Tensor) -> torch.Tensor:
    """Drop an odd last row and column: ``(B, C, H, W) -> (B, C, 2*(H//2), 2*(W//2))`` (a view)."""
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    if h < 1 or w < 1:
        raise ValueError(f"input of spatial size {tuple(x.shape[-2:])} is too small to halve; need H, W >= 2")
    return x[..., : 2 * h, : 2 * w]


def windows_2x2(x: torch.Tensor) -> torch.Tensor:
    """The non-overlapping 2x2 windows of ``x`` as a view.

    Returns
    -------
    torch.Tensor
        Shape ``(B, C, H//2, 2, W//2, 2)``: element ``[b, c, i, p, j, q]`` is ``x[b, c, 2i+p, 2j+q]``.
        Reduce over dims ``(3, 5)`` to pool each window.
    """
    x = crop_even(x)
    b, c, h2, w2 = x.shape
    return x.reshape(b, c, h2 // 2, 2, w2 // 2, 2)  # (B, C, h, 2, w, 2)


def like_input(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Return ``out`` in the memory layout of ``x`` (channels_last or contiguous).

    Reductions over window views return NCHW-contiguous tensors; handing a channels_last model an NCHW
    activation would make the next convolution convert it back, so the layout is restored here.
    """
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return out.contiguous(memory_format=torch.channels_last)
    return out
