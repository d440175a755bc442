"""RGB <-> YCbCr (ITU-R BT.601, full range) and edge-replicate padding.

Tensors are float in [0, 1], shape (N, 3, H, W); Cb and Cr are centred on 0.5.
"""

from __future__ import annotations

from fractions import Fraction

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


# Exact inverse (BT.601 full range, K_R = 0.299, K_B = 0.114) as rationals:
# R = Y + 2(1−K_R)·Cr, B = Y + 2(1−K_B)·Cb, G = Y − (2K_B(1−K_B)·Cb + 2K_R(1−K_R)·Cr)/K_G.
_KR, _KB = Fraction(299, 1000), Fraction(114, 1000)
_KG = 1 - _KR - _KB
COLOUR_FRAC = 20  # the integer inverse's coefficients are rounded half-even to 2**-20
_EXACT_INVERSE = tuple(
    (round(cb * 2**COLOUR_FRAC), round(cr * 2**COLOUR_FRAC))
    for cb, cr in (
        (Fraction(0), 2 * (1 - _KR)),  # R
        (-2 * _KB * (1 - _KB) / _KG, -2 * _KR * (1 - _KR) / _KG),  # G
        (2 * (1 - _KB), Fraction(0)),  # B
    )
)


def ycbcr_offsets_to_rgb8(y: torch.Tensor, cb: torch.Tensor | None, cr: torch.Tensor | None,
                          frac: int) -> torch.Tensor:
    """Exact integer YCbCr -> 8-bit RGB: (H, W) int64 offsets from mid-grey on the grid
    2**-frac (Y = y + 1/2, Cb − 1/2 = cb, Cr − 1/2 = cr) -> (H, W, 3) uint8, each sample
    ``clamp(floor(255·v + 1/2), 0, 255)`` of ``v = Y + c_cb·cb + c_cr·cr`` with the
    coefficients on the grid 2**-20; all in int64 (|255·v| < 2**60 for |y|, |cb|, |cr| <
    2**27 and frac ≤ 27). ``cb = cr = None``: gray, every channel is Y."""
    shift = frac + COLOUR_FRAC
    luma = (y + (1 << (frac - 1))) << COLOUR_FRAC
    planes = []
    for c_cb, c_cr in _EXACT_INVERSE if cb is not None else ((0, 0),):
        v = luma if cb is None else luma + c_cb * cb + c_cr * cr
        planes.append(torch.clamp((v * 255 + (1 << (shift - 1))) >> shift, 0, 255))
    if cb is None:
        planes *= 3
    return torch.stack(planes, -1).to(torch.uint8)
