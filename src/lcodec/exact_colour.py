"""The exact colour conversion of the exact syntheses: integer YCbCr offsets to 8-bit RGB
(ITU-R BT.601, full range), in integers, the same on every machine (numpy; no torch)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

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


def ycbcr_offsets_to_rgb8(y: np.ndarray, cb: np.ndarray | None, cr: np.ndarray | None,
                          frac: int) -> np.ndarray:
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
        planes.append(np.clip((v * 255 + (1 << (shift - 1))) >> shift, 0, 255))
    if cb is None:
        planes *= 3
    return np.stack(planes, -1).astype(np.uint8)
