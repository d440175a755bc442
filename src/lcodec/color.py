"""RGB <-> YCbCr (ITU-R BT.601, full range) and edge-replicate padding.

Tensors are float in [0, 1], shape (N, 3, H, W); Cb and Cr are centred on 0.5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_RGB_TO_YCBCR = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ]
)
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR.double()).float()
_OFFSET = torch.tensor([0.0, 0.5, 0.5])


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) RGB in [0,1] -> YCbCr with chroma offset 0.5."""
    m = _RGB_TO_YCBCR.to(rgb)
    return torch.einsum("ij,njhw->nihw", m, rgb) + _OFFSET.to(rgb).view(1, 3, 1, 1)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (no clamping)."""
    m = _YCBCR_TO_RGB.to(ycc)
    return torch.einsum("ij,njhw->nihw", m, ycc - _OFFSET.to(ycc).view(1, 3, 1, 1))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad H and W up to a multiple of ``multiple`` by replicating the last row/column."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")
