"""The v2 training losses: the rate-distortion loss of a batch with a random rate knob per
image, and the distortion-only loss of a decoder-only run."""

from __future__ import annotations

import math

import torch

from lcodec.color import ycbcr_to_rgb
from lcodec.nets.cwic2 import CWIC2
from lcodec.train.qat import float_decode, qat_decode, symbols
from lcodec.train.v2.config import RDConfig
from lcodec.train.v2.context_rate import ContextRate


def lam_of(knob: torch.Tensor, lam_range: tuple[float, float]) -> torch.Tensor:
    lo, hi = lam_range
    return lo * (hi / lo) ** ((knob + 1) / 2)


def smooth_crops(n: int, size: int) -> torch.Tensor:
    """``n`` synthetic RGB crops in [0, 1]: a random flat colour, half of them with a linear
    ramp, all with a little sensor-like noise. Photos rarely hold a flat saturated region the
    size of a crop; without these the net paints flat colours with texture and a hue shift."""
    colour = torch.rand(n, 3, 1, 1)
    yy, xx = torch.meshgrid(torch.linspace(-0.5, 0.5, size), torch.linspace(-0.5, 0.5, size),
                            indexing="ij")
    angle = 2 * math.pi * torch.rand(n, 1, 1, 1)
    ramp = torch.cos(angle) * xx + torch.sin(angle) * yy  # (n, 1, size, size)
    amp = 0.4 * (torch.rand(n, 3, 1, 1) - 0.5) * (torch.rand(n, 1, 1, 1) < 0.5)
    noise = torch.randn(n, 3, size, size) * (3.0 / 255) * torch.rand(n, 1, 1, 1)
    return torch.round((colour + amp * ramp + noise).clamp(0, 1) * 255) / 255


# 1 − MS-SSIM is scaled so that λ means about the same rate as for MSE: along the shipped MSE
# model's held-out curve, d(255²·MSE)/d(1 − MS-SSIM) is 1,800–3,100 between knobs −1 and 0.6.
MSSSIM_SCALE = 2000.0


def distortion(x: torch.Tensor, x_hat: torch.Tensor, kind: str,
               mse_mix: float = 0.0, mean_weight: float = 0.0) -> torch.Tensor:
    """Per-image distortion on the RGB scale 0..255: MSE, or ``MSSSIM_SCALE``·(1 − MS-SSIM)
    (msssim, window 7 so that 112² crops have five scales) plus ``mse_mix``·MSE; plus
    ``mean_weight`` times the squared error of the crop's mean colour (a colour cast, which
    MSE weighs no more than noise of the same energy).

    Always fp32: under bf16 autocast the colour conversion would round to 8 mantissa bits.
    """
    with torch.autocast(x.device.type, enabled=False):
        return _distortion(x.float(), x_hat.float(), kind, mse_mix, mean_weight)


def _distortion(x: torch.Tensor, x_hat: torch.Tensor, kind: str, mse_mix: float,
                mean_weight: float) -> torch.Tensor:
    rgb, rgb_hat = ycbcr_to_rgb(x), ycbcr_to_rgb(x_hat)
    mse = 255.0**2 * ((rgb - rgb_hat) ** 2).mean((1, 2, 3))
    if mean_weight:
        cast = 255.0**2 * ((rgb - rgb_hat).mean((2, 3)) ** 2).mean(1)
        mse = mse + mean_weight * cast
    if kind == "mse":
        return mse
    from pytorch_msssim import ms_ssim

    ms = ms_ssim(rgb_hat.clamp(0, 1), rgb, data_range=1.0, size_average=False, win_size=7)
    return MSSSIM_SCALE * (1 - ms) + mse_mix * mse


def rd_loss(net: CWIC2, x: torch.Tensor, knob: torch.Tensor, cfg: RDConfig,
            decoder_noise: bool = False, dist_weight: torch.Tensor | None = None,
            context: ContextRate | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted RD loss of a batch; ``dist_weight`` (N,) scales each crop's distortion
    (the synthetic flat crops' ``flat_weight``). With ``context`` (rate ``context``) the
    network pays the context models' code length, the loss adds their hard code length
    (which trains only them), and that is the ``bpp`` logged."""
    lam_range = cfg.lam_range or net.cfg.lam_range
    out = net(x, knob, use_mask=cfg.use_mask, decoder_noise=decoder_noise,
              mask_count_rate=cfg.rate == "mask_count", rate_model=context)
    pixels = x.shape[2] * x.shape[3]
    bpp = out["bits"] / pixels
    dist = distortion(x, out["x_hat"], cfg.distortion, cfg.mse_mix, cfg.mean_weight)
    lam = lam_of(knob, lam_range)
    weight = torch.sqrt(math.sqrt(lam_range[0] * lam_range[1]) / lam)
    scaled = dist if dist_weight is None else dist * dist_weight
    loss = (weight * (bpp + lam * scaled)).mean() + out["range_loss"]
    logged = bpp
    if context is not None:
        logged = out["context_bits"] / pixels
        loss = loss + logged.mean()
    with torch.no_grad():
        stats = {"loss": float(loss), "bpp": float(logged.mean()), "dist": float(dist.mean()),
                 "coded": float(out["coded_fraction"])}
    return loss, stats


def decoder_loss(net: CWIC2, x: torch.Tensor, knob: torch.Tensor, cfg: RDConfig,
                 dist_weight: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted distortion term of :func:`rd_loss` for a decoder-only run (the rate is
    fixed by the frozen encoder): through the float decoder, or with ``cfg.qat`` the
    quantization-aware one. ``bpp`` is not computed (logged as 0)."""
    lam_range = cfg.lam_range or net.cfg.lam_range
    s_y, s_c = symbols(net, x, knob)
    if cfg.qat:
        x_hat = qat_decode(net, s_y, s_c, knob, frozenset(cfg.qat_wide))
    else:
        x_hat = float_decode(net, s_y, s_c, knob)
    dist = distortion(x, x_hat, cfg.distortion, cfg.mse_mix, cfg.mean_weight)
    lam = lam_of(knob, lam_range)
    weight = torch.sqrt(math.sqrt(lam_range[0] * lam_range[1]) / lam)
    scaled = dist if dist_weight is None else dist * dist_weight
    loss = (weight * lam * scaled).mean()
    stats = {"loss": float(loss.detach()), "bpp": 0.0, "dist": float(dist.detach().mean()),
             "coded": 0.0}
    return loss, stats


class Objective(torch.nn.Module):
    """The run's loss as a module, so that DistributedDataParallel can wrap it: ``forward(x,
    knob, decoder_noise, dist_weight)`` gives :func:`rd_loss`, or for a decoder-only run
    :func:`decoder_loss` (which has no decoder noise)."""

    def __init__(self, net: CWIC2, cfg: RDConfig, context: ContextRate | None = None) -> None:
        super().__init__()
        self.net = net
        self.cfg = cfg
        self.context = context

    def forward(self, x: torch.Tensor, knob: torch.Tensor, decoder_noise: bool = False,
                dist_weight: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
        if self.cfg.train_part == "decoder":
            return decoder_loss(self.net, x, knob, self.cfg, dist_weight)
        return rd_loss(self.net, x, knob, self.cfg, decoder_noise=decoder_noise,
                       dist_weight=dist_weight, context=self.context)
