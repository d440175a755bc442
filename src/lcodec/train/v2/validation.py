"""Held-out validation of a v2 run at six rate knobs (the rows of ``val.csv``)."""

from __future__ import annotations

import math

import torch

from lcodec.color import rgb_to_ycbcr, ycbcr_to_rgb
from lcodec.nets.cwic2 import CWIC2, interpolate
from lcodec.quant import code_mask
from lcodec.train.qat import psnr8, qat_decode
from lcodec.train.v2.context_rate import ContextRate

VAL_KNOBS = (-1.0, -0.6, -0.2, 0.2, 0.6, 1.0)


@torch.no_grad()
def validate(net: CWIC2, val: torch.Tensor, qat_wide: frozenset[str] | None = None,
             context: ContextRate | None = None) -> list[dict[str, float]]:
    """Held-out PSNR and MS-SSIM (8-bit RGB) and estimated bpp (the training priors' code
    length of the actual symbols, mask and importance map included) at :data:`VAL_KNOBS`;
    with ``qat_wide`` also ``psnr_qat``, the PSNR through the quantization-aware decoder with
    those wide tensors; with ``context`` also ``bpp_context``, the code length under the
    run's context models."""
    from pytorch_msssim import ms_ssim

    net.eval()
    cfg = net.cfg
    rows = []
    ycc = rgb_to_ycbcr(val)
    e_y, e_c, logits = net.analyse(ycc)
    for knob in VAL_KNOBS:
        codes = net.quantize(e_y, e_c, logits, knob)
        rec = ycbcr_to_rgb(net.decompress(codes))
        rec8 = torch.floor(torch.clamp(rec, 0, 1) * 255 + 0.5)
        mse = ((rec8 - torch.round(val * 255)) ** 2).mean((1, 2, 3))
        psnr = float((10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))).mean())
        msv = None  # five scales of a 7-tap window need more than 96 px
        if min(val.shape[2:]) > 96:
            msv = float(ms_ssim(rec8, torch.round(val * 255), data_range=255.0,
                                win_size=7).mean())
        k = torch.full((val.shape[0],), knob)
        cost = -torch.log_softmax(interpolate(net.prior_codes, k), -1)
        sym = torch.cat([codes.luma, codes.chroma], 1)
        mask = torch.cat([code_mask(codes.qi, cfg.n_luma, cfg.imp_levels),
                          code_mask(codes.qi, cfg.n_chroma, cfg.imp_levels)], 1)
        n, c, h, w = sym.shape
        bits = torch.gather(cost, 2, sym.view(n, c, -1)).view_as(sym) * mask
        qcost = -torch.log_softmax(interpolate(net.prior_qi, k), -1)
        qbits = torch.gather(qcost, 1, codes.qi.view(n, -1))
        total = (bits.sum((1, 2, 3)) + qbits.sum(1)) / math.log(2)
        bpp = float((total / (val.shape[2] * val.shape[3])).mean())
        row = {"knob": knob, "psnr": psnr, "bpp": bpp, "coded": float(mask.float().mean()),
               "msssim": msv, "psnr_qat": None, "bpp_context": None}
        if context is not None:
            context.eval()
            ctx = context.code_length(codes.qi, codes.luma, codes.chroma, k, cfg.imp_levels)
            row["bpp_context"] = float((ctx / (val.shape[2] * val.shape[3])).mean())
            context.train()
        if qat_wide is not None:
            half = cfg.levels // 2
            s_y = (codes.luma - half) * mask[:, : cfg.n_luma]
            s_c = (codes.chroma - half) * mask[:, cfg.n_luma :]
            rec = ycbcr_to_rgb(qat_decode(net, s_y.float(), s_c.float(), k, qat_wide))
            row["psnr_qat"] = float(psnr8(val, rec).mean())
        rows.append(row)
    net.train()
    return rows
