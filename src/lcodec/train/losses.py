"""Training distortions on RGB in [0, 1] (seed 004 eqs. 5-6, seed 001, seed 002).

``mse``       1000·MSE on RGB (eq. 5, scaled so that 30 dB ≈ 1).
``msssim``    100·(1 − MS-SSIM) on RGB (eq. 6).
``ycbcr_l1``  100·(|ΔY| + γ·|ΔCb| + γ·|ΔCr|) (seed 001; mean absolute error per plane).

Any of them can add ``mse_weight``·1000·MSE (keeps an MS-SSIM model's colours from drifting)
and ``deltae_weight``·ΔE00 (mean CIEDE2000 in CIELAB units, seed 002), differentiable.
"""

from __future__ import annotations

import math

import torch

from lcodec.color import rgb_to_ycbcr
from lcodec.colorimetry import D65, RGB_TO_XYZ

KINDS = ("mse", "msssim", "ycbcr_l1")

# The evaluation's sRGB (D65) matrix and white, so that training and eval measure the same ΔE.
_RGB_TO_XYZ = torch.tensor(RGB_TO_XYZ, dtype=torch.float32)
_D65 = torch.tensor(D65, dtype=torch.float32)
_EPS = 1e-8  # keeps square roots and atan2 differentiable at zero chroma


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) sRGB in [0, 1] -> (N, 3, H, W) CIELAB (D65), differentiable."""
    c = rgb.clamp(0.0, 1.0)
    lin = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055).clamp_min(_EPS) ** 2.4)
    m = (_RGB_TO_XYZ / _D65.view(3, 1)).to(rgb)
    xyz = torch.einsum("ij,njhw->nihw", m, lin)
    eps, kappa = 216 / 24389, 24389 / 27
    f = torch.where(xyz > eps, xyz.clamp_min(eps) ** (1 / 3), (kappa * xyz + 16) / 116)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x + _EPS)


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 between Lab tensors (channel dim 1), elementwise over the rest.

    The formula of Sharma et al. 2005 (k_L = k_C = k_H = 1) as in
    :func:`lcodec.evaluate.quality.ciede2000`, with a tiny epsilon under every square root so
    that gradients stay finite at zero chroma (values differ from it by < 1e-3).
    """
    l1, a1, b1 = lab1.unbind(1)
    l2, a2, b2 = lab2.unbind(1)
    c_bar = (_sqrt(a1**2 + b1**2) + _sqrt(a2**2 + b2**2)) / 2
    c7 = c_bar**7
    g = 0.5 * (1 - _sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = _sqrt(a1p**2 + b1**2), _sqrt(a2p**2 + b2**2)
    h1p = torch.rad2deg(torch.atan2(b1, a1p + _EPS)) % 360
    h2p = torch.rad2deg(torch.atan2(b2, a2p + _EPS)) % 360
    dh = h2p - h1p
    dh = torch.where(dh > 180, dh - 360, torch.where(dh < -180, dh + 360, dh))
    d_h = 2 * _sqrt(c1p * c2p) * torch.sin(torch.deg2rad(dh / 2))
    l_bar = (l1 + l2) / 2
    cp_bar = (c1p + c2p) / 2
    hsum = h1p + h2p
    h_bar = torch.where((h1p - h2p).abs() <= 180, hsum / 2,
                        torch.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2))
    t = (1 - 0.17 * torch.cos(torch.deg2rad(h_bar - 30))
         + 0.24 * torch.cos(torch.deg2rad(2 * h_bar))
         + 0.32 * torch.cos(torch.deg2rad(3 * h_bar + 6))
         - 0.20 * torch.cos(torch.deg2rad(4 * h_bar - 63)))
    d_theta = 30 * torch.exp(-(((h_bar - 275) / 25) ** 2))
    cp7 = cp_bar**7
    r_c = 2 * _sqrt(cp7 / (cp7 + 25.0**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / torch.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -torch.sin(torch.deg2rad(2 * d_theta)) * r_c
    tl, tc, th = (l2 - l1) / s_l, (c2p - c1p) / s_c, d_h / s_h
    return _sqrt((tl**2 + tc**2 + th**2 + r_t * tc * th).clamp_min(0))


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
        d = d + deltae_weight * ciede2000(srgb_to_lab(x), srgb_to_lab(x_hat)).mean(dim=(1, 2))
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
