"""Quality scores of a decoded image for ``lcodec eval``: PSNR, PSNR-Y, MS-SSIM, ΔE00.

All take (H, W, 3) uint8 sRGB arrays. PSNR and MS-SSIM come from
:mod:`lcodec.metrics` (RGB, data range 255, as in ``shared/anchors/kodak.md``).
PSNR-Y uses BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` on unrounded floats in
[0, 255]. ΔE00 is the mean CIEDE2000 difference over pixels, after sRGB (IEC 61966-2-1)
→ linear → XYZ (D65) → CIELAB with the D65 white; the formula follows Sharma, Wu & Dalal,
"The CIEDE2000 color-difference formula: implementation notes, supplementary test data, and
mathematical observations" (Color Res. Appl. 30(1), 2005), whose test pairs it reproduces.
"""

from __future__ import annotations

import math

import numpy as np

from lcodec.colorimetry import D65, RGB_TO_XYZ
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


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB transfer function inverse, c in [0, 1]."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


_LINEAR_LUT = _srgb_to_linear(np.arange(256) / 255.0)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(…, 3) uint8 (or float in [0, 255]) sRGB -> (…, 3) CIELAB, D65 white."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        lin = _LINEAR_LUT[rgb]
    else:
        lin = _srgb_to_linear(rgb.astype(np.float64) / 255.0)
    xyz = lin @ (RGB_TO_XYZ.T / D65)
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 ΔE between (…, 3) Lab arrays (k_L = k_C = k_H = 1), elementwise.

    Sharma et al. 2005, eqs. 1-22: hue angles of zero-chroma colours are 0; the mean hue and
    Δh take the short way round the circle.
    """
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    c7 = c_bar**7
    g = 0.5 * (1 - np.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.where((a1p == 0) & (b1 == 0), 0.0, np.degrees(np.arctan2(b1, a1p)) % 360)
    h2p = np.where((a2p == 0) & (b2 == 0), 0.0, np.degrees(np.arctan2(b2, a2p)) % 360)

    dl = l2 - l1
    dc = c2p - c1p
    cc = c1p * c2p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(cc == 0, 0.0, dh)
    d_h = 2 * np.sqrt(cc) * np.sin(np.radians(dh / 2))

    l_bar = (l1 + l2) / 2
    cp_bar = (c1p + c2p) / 2
    hsum = h1p + h2p
    h_bar = np.where(np.abs(h1p - h2p) <= 180, hsum / 2,
                     np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2))
    h_bar = np.where(cc == 0, hsum, h_bar)
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    cp7 = cp_bar**7
    r_c = 2 * np.sqrt(cp7 / (cp7 + 25.0**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    tl, tc, th = dl / s_l, dc / s_c, d_h / s_h
    return np.sqrt(tl**2 + tc**2 + th**2 + r_t * tc * th)


def delta_e00(a: np.ndarray, b: np.ndarray, lab_a: np.ndarray | None = None,
              rows: int = 128) -> float:
    """Mean CIEDE2000 difference of two sRGB images (``lab_a``: ``a`` already in Lab).

    Computed in bands of ``rows`` rows, which keeps the temporaries in cache.
    """
    lab_a = srgb_to_lab(a) if lab_a is None else lab_a
    total = 0.0
    for i in range(0, a.shape[0], rows):
        total += float(ciede2000(lab_a[i:i + rows], srgb_to_lab(b[i:i + rows])).sum())
    return total / (a.shape[0] * a.shape[1])


class Scorer:
    """Scores decodings of one reference image (its Lab conversion is done once)."""

    def __init__(self, ref: np.ndarray) -> None:
        self.ref = ref
        self.lab = srgb_to_lab(ref)

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
