"""Training distortions on RGB in [0, 1] (seed 004 eqs. 5-6, seed 001, seed 002).

``mse``       1000·MSE on RGB (eq. 5, scaled so that 30 dB ≈ 1).
``msssim``    100·(1 − MS-SSIM) on RGB (eq. 6).
``ycbcr_l1``  100·(|ΔY| + γ·|ΔCb| + γ·|ΔCr|) (seed 001; mean absolute error per plane).

Any of them can add ``mse_weight``·1000·MSE (keeps an MS-SSIM model's colours from drifting)
and ``deltae_weight``·ΔE00 (mean CIEDE2000 in CIELAB units, seed 002), differentiable: the
evaluation's own formula (:mod:`lcodec.colorimetry`) with a small eps under the square roots.
"""

from __future__ import annotations

import math

import torch

from lcodec.color import rgb_to_ycbcr
from lcodec.colorimetry import TRAINING_EPS, ciede2000, srgb_to_lab

KINDS = ("mse", "msssim", "ycbcr_l1")


def per_image(x: torch.Tensor, x_hat: torch.Tensor, kind: str, mse_weight: float = 0.0,
              chroma_weight: float = 1.0, deltae_weight: float = 0.0) -> torch.Tensor:
    """The training distortion of each image of ``x_hat`` against ``x`` (both RGB in [0, 1],
    fp32): shape (N,)."""
    mse = 1000.0 * torch.mean((x - x_hat) ** 2, dim=(1, 2, 3))
    if kind == "mse":
        d = mse
    elif kind == "msssim":
        from pytorch_msssim import ms_ssim

        d = 100.0 * (1.0 - ms_ssim(x_hat.clamp(0, 1), x, data_range=1.0, win_size=7,
                                   size_average=False))
    elif kind == "ycbcr_l1":
        err = (rgb_to_ycbcr(x) - rgb_to_ycbcr(x_hat)).abs().mean(dim=(2, 3))
        d = 100.0 * (err[:, 0] + chroma_weight * (err[:, 1] + err[:, 2]))
    else:
        raise ValueError(f"unknown distortion {kind!r}; use one of {', '.join(KINDS)}")
    if mse_weight and kind != "mse":
        d = d + mse_weight * mse
    if deltae_weight:
        delta_e = ciede2000(srgb_to_lab(x), srgb_to_lab(x_hat), TRAINING_EPS)
        d = d + deltae_weight * delta_e.mean(dim=(1, 2))
    return d


def distortion(x: torch.Tensor, x_hat: torch.Tensor, kind: str, mse_weight: float = 0.0,
               chroma_weight: float = 1.0, deltae_weight: float = 0.0) -> torch.Tensor:
    """The batch mean of :func:`per_image`."""
    return per_image(x, x_hat, kind, mse_weight, chroma_weight, deltae_weight).mean()


def log_distortion(d: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale``·mean(ln d) of per-image distortions ``d``.

    With a random rate knob per image, low-rate images have distortions ten times larger than
    high-rate ones and would dominate a plain mean; in the log every image's gradient is its
    *relative* improvement, so each rate counts the same in dB — the scale of PSNR and
    MS-SSIM-dB, and of the BD-rate.
    """
    return scale * torch.log(d.clamp_min(1e-6)).mean()


def psnr(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """PSNR (dB) of a batch on [0, 1] after clamping the reconstruction."""
    mse = torch.mean((x - x_hat.clamp(0, 1)) ** 2).item()
    return -10 * math.log10(mse + 1e-12)
