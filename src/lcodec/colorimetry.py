"""sRGB colorimetry shared by evaluation (ΔE00) and training (a ΔE00 loss term), so both
measure colour the same way: sRGB (IEC 61966-2-1) → linear → XYZ (D65) → CIELAB with the D65
white, and the CIEDE2000 difference of Sharma, Wu & Dalal, "The CIEDE2000 color-difference
formula: implementation notes, supplementary test data, and mathematical observations" (Color
Res. Appl. 30(1), 2005), whose test pairs it reproduces.

One implementation in torch, differentiable: evaluation calls it in float64 with ``eps = 0``
(the exact formula), training in float32 with a small ``eps`` under every square root so that
gradients stay finite at zero chroma (values then differ by < 1e-3).
"""

from __future__ import annotations

import numpy as np
import torch

# sRGB primaries, D65 white (IEC 61966-2-1), linear RGB -> XYZ with Y of white = 1.
RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
D65 = RGB_TO_XYZ.sum(axis=1)  # (0.95047, 1.0, 1.08883)

TRAINING_EPS = 1e-8  # the training loss's eps: square roots and atan2 differentiable at zero


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) sRGB in [0, 1] -> (N, 3, H, W) CIELAB (D65), differentiable; computed in
    the dtype of ``rgb`` (float64 for evaluation)."""
    c = rgb.clamp(0.0, 1.0)
    lin = torch.where(c <= 0.04045, c / 12.92,
                      ((c + 0.055) / 1.055).clamp_min(TRAINING_EPS) ** 2.4)
    m = (torch.tensor(RGB_TO_XYZ, dtype=rgb.dtype)
         / torch.tensor(D65, dtype=rgb.dtype).view(3, 1)).to(rgb.device)
    xyz = torch.einsum("ij,njhw->nihw", m, lin)
    eps, kappa = 216 / 24389, 24389 / 27
    f = torch.where(xyz > eps, xyz.clamp_min(eps) ** (1 / 3), (kappa * xyz + 16) / 116)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """CIEDE2000 ΔE between Lab tensors (channel dim 1), elementwise over the rest
    (k_L = k_C = k_H = 1; Sharma et al. 2005, eqs. 1-22).

    ``eps`` (training: :data:`TRAINING_EPS`) goes under every square root and into atan2 so
    that gradients stay finite at zero chroma. With ``eps = 0`` the zero-chroma rules of the
    paper hold without branches: atan2(0, 0) = 0 gives hue 0, and Δh and the mean hue only
    act through ΔH = 2·√(C'₁C'₂)·sin(Δh/2), which is 0 there.
    """

    def sqrt(x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(x + eps) if eps else torch.sqrt(x)

    l1, a1, b1 = lab1.unbind(1)
    l2, a2, b2 = lab2.unbind(1)
    c_bar = (sqrt(a1**2 + b1**2) + sqrt(a2**2 + b2**2)) / 2
    c7 = c_bar**7
    g = 0.5 * (1 - sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = sqrt(a1p**2 + b1**2), sqrt(a2p**2 + b2**2)
    h1p = torch.rad2deg(torch.atan2(b1, a1p + eps)) % 360
    h2p = torch.rad2deg(torch.atan2(b2, a2p + eps)) % 360
    dh = h2p - h1p
    dh = torch.where(dh > 180, dh - 360, torch.where(dh < -180, dh + 360, dh))
    d_h = 2 * sqrt(c1p * c2p) * torch.sin(torch.deg2rad(dh / 2))
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
    r_c = 2 * sqrt(cp7 / (cp7 + 25.0**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / torch.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -torch.sin(torch.deg2rad(2 * d_theta)) * r_c
    tl, tc, th = (l2 - l1) / s_l, (c2p - c1p) / s_c, d_h / s_h
    return sqrt((tl**2 + tc**2 + th**2 + r_t * tc * th).clamp_min(0))
