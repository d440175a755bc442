"""What the three float TCAEs read: their configs for a codes file and the inputs of a batch
of code crops (input classes, active mask, side classes, knob buckets)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from lcodec.entropy.tcae_config import TcaeConfig
from lcodec.entropy.tcae_net import DEFAULT_CONFIGS, luma_activity_torch
from lcodec.entropy.tcae_net import side_classes_torch as _side
from lcodec.quant import code_mask

NAMES = ("importance", "luma", "chroma")


def configs_for(codes: dict[str, np.ndarray], overrides: dict | None = None
                ) -> dict[str, TcaeConfig]:
    """Default configs adapted to the channel counts and levels in the codes."""
    levels = int(codes["levels"])
    code_levels = int(codes.get("code_levels", 8))
    cfgs = {
        "importance": replace(DEFAULT_CONFIGS["importance"], classes=levels),
        "luma": replace(DEFAULT_CONFIGS["luma"], channels=int(codes["luma"].shape[1]),
                        classes=code_levels),
        "chroma": replace(DEFAULT_CONFIGS["chroma"], channels=int(codes["chroma"].shape[1]),
                          classes=code_levels),
    }
    for name, over in (overrides or {}).items():
        cfgs[name] = replace(cfgs[name], **over)
    return cfgs


def knob_buckets_torch(knob: torch.Tensor, buckets: int) -> torch.Tensor | None:
    """:func:`lcodec.entropy.tcae_config.knob_bucket` of (N,) float knobs (as a header
    stores them, in thousandths), or None for a model without knob buckets."""
    if not buckets:
        return None
    k = (knob.double() * 1000).round().long().clamp(-1000, 1000)
    return torch.div((k + 1000) * (buckets - 1) + 1000, 2000, rounding_mode="floor")


def batch_inputs(qi: torch.Tensor, luma: torch.Tensor, chroma: torch.Tensor, levels: int,
                 cfgs: dict[str, TcaeConfig], knob: torch.Tensor | None = None
                 ) -> dict[str, tuple]:
    """Model inputs (cls, active, side, knob buckets) for a batch of code crops (uint8
    tensors; ``knob``: (N,) the crops' rate knobs, needed by models with knob buckets)."""
    if knob is None:
        knob = torch.zeros(len(qi))
    qi = qi.long()[:, None]
    kb = knob_buckets_torch(knob, cfgs["importance"].knob_buckets)
    out = {"importance": (qi, torch.ones_like(qi, dtype=torch.bool), None, kb)}
    m_y = None
    for name, codes in (("luma", luma), ("chroma", chroma)):
        cfg = cfgs[name]
        m = code_mask(qi, codes.shape[1], levels)
        m_y = m if m_y is None else m_y
        cls = torch.where(m, codes.long() + 1, torch.zeros_like(m, dtype=torch.long))
        side = _side(m, cfg.side_classes) if cfg.side_classes else None
        if cfg.luma_classes:  # side class · Y + the co-located luma codes' activity class
            y = luma_activity_torch(luma, m_y, cfgs["luma"].classes, cfg.luma_classes)
            side = side * cfg.luma_classes + y[:, None]
        out[name] = (cls, m, side, knob_buckets_torch(knob, cfg.knob_buckets))
    return out
