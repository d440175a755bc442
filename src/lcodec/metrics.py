"""Image quality metrics on uint8 RGB arrays: PSNR (RGB) and MS-SSIM (RGB, data range 255)."""

from __future__ import annotations

import math

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, rows: int = 256) -> float:
    """PSNR in dB of two uint8 images, summed exactly in row blocks (bounded memory)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    total = 0
    for i in range(0, a.shape[0], rows):
        d = a[i : i + rows].astype(np.int32) - b[i : i + rows].astype(np.int32)
        total += int(np.sum(d * d, dtype=np.int64))
    mse = total / a.size
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM as in the anchors (pytorch_msssim, data range 255, default window)."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(x, dtype=np.float32)).permute(2, 0, 1)[None]

    return float(_ms_ssim(t(a), t(b), data_range=255.0))


def ms_ssim_db(value: float) -> float:
    return math.inf if value >= 1 else -10 * math.log10(1 - value)
