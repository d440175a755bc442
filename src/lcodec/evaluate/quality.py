"""Quality scores of a decoded image for ``lcodec eval``: PSNR, PSNR-Y, MS-SSIM, ΔE00.

All take (H, W, 3) uint8 sRGB arrays. PSNR and MS-SSIM come from
:mod:`lcodec.metrics` (RGB, data range 255, as in ``shared/anchors/kodak.md``).
PSNR-Y uses BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` on unrounded floats in
[0, 255]. ΔE00 is the mean CIEDE2000 difference over pixels, after sRGB → CIELAB (D65), both
from :mod:`lcodec.colorimetry` (the implementation training uses too), in float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lcodec.colorimetry import ciede2000, srgb_to_lab
from lcodec.metrics import ms_ssim, ms_ssim_db, psnr

METRICS = ("psnr", "psnr_y", "ms_ssim", "ms_ssim_db", "delta_e00")
HIGHER_IS_BETTER = {"psnr": True, "psnr_y": True, "ms_ssim": True, "ms_ssim_db": True,
                    "delta_e00": False}
MS_SSIM_MIN_SIDE = 161  # pytorch_msssim's 5 scales with an 11-tap window need > 160 pixels

_BT601 = np.array([0.299, 0.587, 0.114])


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of BT.601 luma (unrounded, peak 255)."""
    ya = a.astype(np.float64) @ _BT601
    yb = b.astype(np.float64) @ _BT601
    mse = float(np.mean((ya - yb) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def lab_of(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 (or float in [0, 255]) sRGB -> (1, 3, H, W) float64 CIELAB, D65."""
    t = torch.from_numpy(np.array(rgb, dtype=np.float64)).permute(2, 0, 1)[None] / 255.0
    return srgb_to_lab(t)


def delta_e00(a: np.ndarray, b: np.ndarray, lab_a: torch.Tensor | None = None,
              rows: int = 128) -> float:
    """Mean CIEDE2000 difference of two sRGB images (``lab_a``: ``a`` already through
    :func:`lab_of`), in float64 with the exact formula of :mod:`lcodec.colorimetry`.

    Computed in bands of ``rows`` rows, which keeps the temporaries in cache.
    """
    lab_a = lab_of(a) if lab_a is None else lab_a
    total = 0.0
    for i in range(0, a.shape[0], rows):
        band = ciede2000(lab_a[:, :, i:i + rows], lab_of(b[i:i + rows]))
        total += float(band.sum())
    return total / (a.shape[0] * a.shape[1])


class Scorer:
    """Scores decodings of one reference image (its Lab conversion is done once)."""

    def __init__(self, ref: np.ndarray) -> None:
        self.ref = ref
        self.lab = lab_of(ref)

    def __call__(self, dec: np.ndarray) -> dict[str, float]:
        """Every metric of :data:`METRICS` (MS-SSIM is NaN below 161 pixels on a side)."""
        ref = self.ref
        if dec.shape != ref.shape:
            raise ValueError(f"decoded shape {dec.shape} differs from the source {ref.shape}")
        if min(ref.shape[:2]) >= MS_SSIM_MIN_SIDE:
            msv = ms_ssim(ref, dec)
            msdb = ms_ssim_db(msv)
        else:
            msv = msdb = math.nan
        return {"psnr": psnr(ref, dec), "psnr_y": psnr_y(ref, dec), "ms_ssim": msv,
                "ms_ssim_db": msdb, "delta_e00": delta_e00(ref, dec, self.lab)}


def score(ref: np.ndarray, dec: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one decoding; see :class:`Scorer`."""
    return Scorer(ref)(dec)
