"""Validation of a v1 run: distortion, raw rate and PSNR at three knobs (rows of ``log.csv``)."""

from __future__ import annotations

import numpy as np
import torch

from lcodec.color import rgb_to_ycbcr, ycbcr_to_rgb
from lcodec.nets import CWIC
from lcodec.train.losses import distortion, psnr
from lcodec.train.v1.config import TrainConfig
from lcodec.train.v1.objective import rate_bpp


@torch.no_grad()
def validate(model: CWIC, val: torch.Tensor, cfg: TrainConfig, step: int, writer, lr: float,
              sec: float, device: torch.device,
              layout: torch.memory_format = torch.contiguous_format) -> float:
    """Log distortion, raw rate and PSNR at three knobs; returns the mean loss (for plateaus)."""
    model.eval()
    losses = []
    for offset in (-0.2, 0.0, 0.2):
        ds, rs, ps = [], [], []
        for i in range(0, len(val), 8):
            x = val[i : i + 8].to(device).contiguous(memory_format=layout)
            ycc = rgb_to_ycbcr(x)
            with torch.autocast(device.type, dtype=torch.bfloat16,
                                enabled=device.type == "cuda" and cfg.amp):
                out = model(ycc, offset)
            x_hat = ycbcr_to_rgb(out["x_hat"]).clamp(0, 1)
            ds.append(distortion(x, x_hat, cfg.distortion, cfg.mse_weight, cfg.chroma_weight,
                                 cfg.deltae_weight).item())
            rs.append(rate_bpp(model, out).item())
            ps.append(psnr(x, x_hat))
        losses.append(np.mean(ds) + cfg.lam * max(0.0, np.mean(rs) - cfg.rate_threshold))
        writer.writerow([step, f"val{offset:+.1f}", "", f"{np.mean(ds):.4f}",
                         f"{np.mean(rs):.4f}", f"{np.mean(ps):.3f}", f"{lr:.2e}", f"{sec:.0f}"])
        print(f"step {step} val offset {offset:+.1f}: psnr {np.mean(ps):.2f} dB, "
              f"raw rate {np.mean(rs):.3f} bpp", flush=True)
    return float(np.mean(losses))
