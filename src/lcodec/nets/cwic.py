"""Dual-branch content-weighted image compression network (seed 004 §3.1, seeds 000/001).

```
Y ──► trunk E_s (3 × stride 2, dense blocks) ─┬─► E_p ─► sigmoid ─► e_Y (n_luma maps, 1/8)
                                              └─► P   ─► sigmoid ─► p   (1 map, 1/8)
YCbCr + trunk features ─► chroma encoder ─────────► sigmoid ─► e_C (n_chroma maps, 1/8)
z_Y = Q(e_Y)·m_Y ─► luma decoder ─► Ŷ, features at 1/8, 1/4, 1/2
z_C = Q(e_C)·m_C + luma features ─► fusion decoder ─► Ĉb Ĉr
```
"""

from __future__ import annotations

import torch
from torch import nn

from lcodec.config import NetConfig
from lcodec.nets.blocks import DenseBlock, ResBlock, Up, conv3
from lcodec.nets.codes import Encoded
from lcodec.nets.registry import register_architecture
from lcodec.quant import ChannelQuantizer, code_mask, importance_levels, soft_mask


class LumaEncoder(nn.Module):
    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.widths
        g = cfg.dense_growth
        self.trunk = nn.Sequential(
            conv3(1, c1, 2), nn.ReLU(inplace=True), DenseBlock(c1, g),
            conv3(c1, c2, 2), nn.ReLU(inplace=True), DenseBlock(c2, g),
            conv3(c2, c3, 2), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.specific = nn.Sequential(DenseBlock(c3, g), conv3(c3, cfg.n_luma), nn.Sigmoid())
        self.importance = nn.Sequential(ResBlock(c3), ResBlock(c3), conv3(c3, 1))

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.trunk(y)
        return self.specific(f), self.importance(f), f


def centred_importance(logits: torch.Tensor) -> torch.Tensor:
    """Importance map p = σ(a − mean(a)) per image, shape (N, 1, h, w).

    Centring fixes the image's mean logit, so the subnet decides *where* bits go while the
    rate knob (an offset added to p) decides *how many*. Without it, the distortion gradient
    drives p to 1 early in training, the sigmoid saturates and the map stops learning.
    """
    return torch.sigmoid(logits - logits.mean(dim=(2, 3), keepdim=True))


class ChromaEncoder(nn.Module):
    """Lighter encoder of the full YCbCr image that also reads the luma trunk features."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.chroma_widths
        self.down = nn.Sequential(
            conv3(3, c1, 2), nn.ReLU(inplace=True),
            conv3(c1, c2, 2), nn.ReLU(inplace=True), ResBlock(c2),
            conv3(c2, c3, 2), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.head = nn.Sequential(
            conv3(c3 + cfg.widths[2], c3), nn.ReLU(inplace=True), ResBlock(c3),
            conv3(c3, cfg.n_chroma), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, ycc: torch.Tensor, trunk: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.down(ycc), trunk], 1))


class LumaDecoder(nn.Module):
    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.widths
        g = cfg.dense_growth
        self.s8 = nn.Sequential(conv3(cfg.n_luma, c3), nn.ReLU(inplace=True), DenseBlock(c3, g))
        self.s4 = nn.Sequential(Up(c3, c2), DenseBlock(c2, g))
        self.s2 = nn.Sequential(Up(c2, c1), DenseBlock(c1, g))
        self.s1 = nn.Sequential(Up(c1, c1 // 2), conv3(c1 // 2, 1))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f8 = self.s8(z)
        f4 = self.s4(f8)
        f2 = self.s2(f4)
        return self.s1(f2), [f8, f4, f2]


class FusionDecoder(nn.Module):
    """Chroma decoder that borrows luma decoder features at each scale (seeds 000/001)."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.chroma_widths
        l1, l2, l3 = cfg.widths
        self.inp = nn.Sequential(conv3(cfg.n_chroma, c3), nn.ReLU(inplace=True))
        self.fuse8 = nn.Sequential(conv3(c3 + l3, c3), nn.ReLU(inplace=True), ResBlock(c3))
        self.up4 = Up(c3, c2)
        self.fuse4 = nn.Sequential(conv3(c2 + l2, c2), nn.ReLU(inplace=True), ResBlock(c2))
        self.up2 = Up(c2, c1)
        self.fuse2 = nn.Sequential(conv3(c1 + l1, c1), nn.ReLU(inplace=True))
        self.out = nn.Sequential(Up(c1, c1), conv3(c1, 2))

    def forward(self, z: torch.Tensor, luma_feats: list[torch.Tensor]) -> torch.Tensor:
        f8, f4, f2 = luma_feats
        x = self.fuse8(torch.cat([self.inp(z), f8], 1))
        x = self.fuse4(torch.cat([self.up4(x), f4], 1))
        x = self.fuse2(torch.cat([self.up2(x), f2], 1))
        return self.out(x)


@register_architecture("cwic")
class CWIC(nn.Module):
    """The whole autoencoder. Input and output are YCbCr in [0, 1], H and W multiples of 8.

    ``forward`` is the training path (straight-through quantization and mask); ``compress``
    gives the discrete codes and ``decompress`` rebuilds the image from them.
    """

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.luma_enc = LumaEncoder(cfg)
        self.chroma_enc = ChromaEncoder(cfg)
        self.luma_dec = LumaDecoder(cfg)
        self.chroma_dec = FusionDecoder(cfg)
        self.luma_q = ChannelQuantizer(cfg.n_luma, cfg.levels)
        self.chroma_q = ChannelQuantizer(cfg.n_chroma, cfg.levels)

    def analyse_logits(self, ycc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(e_Y, e_C, importance logits); tiled encoders centre the logits over the image."""
        e_y, logits, trunk = self.luma_enc(ycc[:, :1])
        e_c = self.chroma_enc(ycc, trunk)
        return e_y, e_c, logits

    def _analyse(self, ycc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e_y, e_c, logits = self.analyse_logits(ycc)
        return e_y, e_c, centred_importance(logits)

    def _synthesise(self, z_y: torch.Tensor, z_c: torch.Tensor | None) -> torch.Tensor:
        y, feats = self.luma_dec(z_y)
        if z_c is None:
            return y
        return torch.cat([y, self.chroma_dec(z_c, feats)], 1)

    def forward(self, ycc: torch.Tensor, offset: torch.Tensor | float = 0.0, use_mask: bool = True,
                hard_mask: bool = False) -> dict[str, torch.Tensor]:
        """Training pass. ``offset`` (scalar or (N,1,1,1)) shifts the importance map (rate knob).

        Returns the reconstruction, the coded fraction of luma and chroma codes (the rate proxy
        of eq. 8, differentiable through the straight-through mask) and the quantization loss.
        With ``hard_mask`` no gradient reaches the importance map through the mask (for the
        two-stage relaxation of :mod:`lcodec.train.importance`, which needs the masked codes
        ``z_y``, ``z_c`` and the shifted map ``p_shifted`` also returned).
        """
        cfg = self.cfg
        e_y, e_c, p = (t.float() for t in self._analyse(ycc))  # fp32 under bf16 autocast
        zq_y, _, ql_y = self.luma_q(e_y)
        zq_c, _, ql_c = self.chroma_q(e_c)
        pe = torch.clamp(p + offset, 0.0, 1.0 - 1e-6)
        if not use_mask:
            m_y = torch.ones_like(zq_y)
            m_c = torch.ones_like(zq_c)
        elif hard_mask:
            qi = importance_levels(pe.detach(), cfg.imp_levels)
            m_y = code_mask(qi, cfg.n_luma, cfg.imp_levels).to(zq_y.dtype)
            m_c = code_mask(qi, cfg.n_chroma, cfg.imp_levels).to(zq_c.dtype)
        else:
            m_y = soft_mask(pe, cfg.n_luma, cfg.imp_levels)
            m_c = soft_mask(pe, cfg.n_chroma, cfg.imp_levels)
        z_y, z_c = zq_y * m_y, zq_c * m_c
        x_hat = self._synthesise(z_y, z_c)
        return {
            "x_hat": x_hat.float(),
            "rate_luma": m_y.mean(),
            "rate_chroma": m_c.mean(),
            "quant_loss": ql_y + ql_c,
            "importance": p,
            "p_shifted": pe,
            "z_y": z_y,
            "z_c": z_c,
        }

    def quantize(self, e_y: torch.Tensor, e_c: torch.Tensor, p: torch.Tensor, offset: float
                 ) -> Encoded:
        """Quantize analysis outputs at a rate offset (cheap: rate control reuses ``analyse``)."""
        cfg = self.cfg
        qi = importance_levels(torch.clamp(p + offset, 0.0, 1.0 - 1e-6), cfg.imp_levels)
        m_y = code_mask(qi, cfg.n_luma, cfg.imp_levels)
        m_c = code_mask(qi, cfg.n_chroma, cfg.imp_levels)
        return Encoded(qi, self.luma_q.indices(e_y) * m_y, self.chroma_q.indices(e_c) * m_c)

    @torch.no_grad()
    def analyse(self, ycc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Continuous encoder outputs (e_Y, e_C, p) before quantization."""
        return self._analyse(ycc)

    @torch.no_grad()
    def decompress(self, codes: Encoded, luma_only: bool = False) -> torch.Tensor:
        """YCbCr reconstruction (not clamped) from discrete codes; only Y if ``luma_only``."""
        cfg = self.cfg
        m_y = code_mask(codes.qi, cfg.n_luma, cfg.imp_levels)
        z_y = self.luma_q.dequantize(codes.luma) * m_y
        if luma_only:
            return self._synthesise(z_y, None)
        m_c = code_mask(codes.qi, cfg.n_chroma, cfg.imp_levels)
        z_c = self.chroma_q.dequantize(codes.chroma) * m_c
        return self._synthesise(z_y, z_c)

    @staticmethod
    def importance_map(logits: torch.Tensor) -> torch.Tensor:
        """The map ``analyse`` returns, from logits computed over windows of the image."""
        return centred_importance(logits)
