"""The v1 training loss: distortion + λ·(rate above the threshold) + quantization loss, and the
two-stage importance target."""

from __future__ import annotations

import math

import torch

from lcodec.color import ycbcr_to_rgb
from lcodec.nets import CWIC
from lcodec.train.importance import best_levels, importance_loss
from lcodec.train.losses import log_distortion, per_image
from lcodec.train.v1.config import TrainConfig


def rate_bpp(model: CWIC, out: dict[str, torch.Tensor]) -> torch.Tensor:
    """Raw code bits per pixel implied by the mask (before entropy coding)."""
    cfg = model.cfg
    per_pos = out["rate_luma"] * cfg.n_luma + out["rate_chroma"] * cfg.n_chroma
    return per_pos * element_bits(model)


def element_bits(model: CWIC) -> float:
    """Bits per pixel of one coded code element per position (log2 T / stride²)."""
    return math.log2(model.cfg.levels) / model.cfg.stride**2


def training_loss(model: CWIC, cfg: TrainConfig, x: torch.Tensor, out: dict[str, torch.Tensor],
                  masked: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, distortion, rate bpp) of one batch; ``out`` is the model's training pass
    (``masked``: with the importance mask, i.e. not pre-training)."""
    x_hat = ycbcr_to_rgb(out["x_hat"])
    each = per_image(x, x_hat, cfg.distortion, cfg.mse_weight, cfg.chroma_weight,
                     cfg.deltae_weight)
    d = each.mean()
    d_loss = log_distortion(each, cfg.log_scale) if cfg.log_scale else d
    r = rate_bpp(model, out)
    over = torch.clamp(r - cfg.rate_threshold, min=0.0)
    loss = d_loss + cfg.lam * over + out["quant_loss"]
    if cfg.importance == "two_stage" and masked:
        g = torch.autograd.grad(d_loss, [out["z_y"], out["z_c"]], retain_graph=True)
        # γ of one coded element: d(λ·rate)/d(mask entry), or 0 below the threshold (eq. 15)
        gamma = 0.0 if float(over) == 0.0 else (
            cfg.lam * element_bits(model) / out["z_y"][:, :1].numel())
        target = best_levels(list(g), gamma, model.cfg.imp_levels, cfg.imp_xi)
        loss = loss + importance_loss(out["p_shifted"], target, model.cfg.imp_levels,
                                      cfg.imp_alpha)
    return loss, d, r
