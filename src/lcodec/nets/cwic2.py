"""Network v2: GDN transforms at stride 16, variable rate by learned gains, a base layer.

```
Y    ─► 4 × (5×5 conv stride 2, GDN) ─► y_Y (n_luma maps, 1/16) ─┐
        └─ features at 1/8 ─► importance head ─► a (1 map, 1/16)  │  u = y · g_enc(knob)
YCbCr ─► 4 × (5×5 conv stride 2, GDN) ─► y_C (n_chroma maps) ─────┤  index = round(u) + T/2
                                                                  │  QI = floor(L·σ(a + b(knob)))
z_Y = (index − T/2) · g_dec(knob) · m_Y ─► luma decoder (IGDN) ─► Ŷ, features at 1/8, 1/4, 1/2
z_C likewise + luma features ─► fusion decoder ─► Ĉb Ĉr
```

What stays from CWIC (seed 004, seeds 000/001): the luma/chroma branches with a fusion
decoder that borrows luma features, and the importance map whose level QI decides how many
code maps a position keeps (mask ``k·L < n·QI``, so the prefix structure and the entropy
methods are unchanged). What is new: every position keeps at least ``base_level`` levels
(no empty positions, hence no fixed pattern where the map is low), the quantizer is a uniform
integer grid scaled per channel by gains learned at ``rate_anchors`` knobs (one model covers
the whole rate range; knobs in between interpolate the gains geometrically), and training
minimises a code length: ``bits`` is −log2 of the symbols under per-anchor learned
categorical priors (:meth:`CWIC2.forward`).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from lcodec.config import NetConfig
from lcodec.nets.codes import Encoded
from lcodec.nets.registry import register_architecture
from lcodec.quant import code_mask, importance_levels, soft_mask


class GDN(nn.Module):
    """Simplified (inverse) generalised divisive normalisation, always computed in fp32.

    ``y = x / (β + Γ|x|)`` (inverse: ``x · (β + Γ|x|)``), the form of Johnston et al. 2019;
    β and Γ are kept non-negative by taking absolute values.
    """

    def __init__(self, ch: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(ch))
        self.gamma = nn.Parameter(0.1 * torch.eye(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            ch = x.shape[1]
            norm = F.conv2d(x.abs(), self.gamma.abs().view(ch, ch, 1, 1), self.beta.abs())
            return x * norm if self.inverse else x / norm


def down(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 5, stride=2, padding=2)


class Up(nn.Module):
    """3×3 conv to 4× the channels, then depth-to-space (no activation)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, 4 * cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


class Analysis(nn.Module):
    """4 stride-2 stages; returns the codes and the 1/8 features."""

    def __init__(self, cin: int, widths: tuple[int, int, int], n_out: int) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.s2 = nn.Sequential(down(cin, c1), GDN(c1))
        self.s4 = nn.Sequential(down(c1, c2), GDN(c2))
        self.s8 = nn.Sequential(down(c2, c3), GDN(c3))
        self.s16 = down(c3, n_out)
        with torch.no_grad():  # codes start at about unit scale, not 0.05
            self.s16.weight.mul_(10.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f8 = self.s8(self.s4(self.s2(x)))
        return self.s16(f8), f8


class Refine(nn.Module):
    """``x + b(relu(a(x)))`` with 3×3 convs; ``b`` starts at zero, so a block added to a
    trained decoder starts as the identity."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(ch, ch, 3, padding=1)
        self.b = nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.b.weight)
        nn.init.zeros_(self.b.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(F.relu(self.a(x)))


class LumaSynthesis(nn.Module):
    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.widths
        self.s8 = nn.Sequential(Up(cfg.n_luma, c3), GDN(c3, inverse=True))
        self.s4 = nn.Sequential(Up(c3, c2), GDN(c2, inverse=True))
        self.s2 = nn.Sequential(Up(c2, c1), GDN(c1, inverse=True))
        self.refine = nn.ModuleList(Refine(c1) for _ in range(cfg.refine))
        self.s1 = Up(c1, 1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f8 = self.s8(z)
        f4 = self.s4(f8)
        f2 = self.s2(f4)
        for block in self.refine:
            f2 = block(f2)
        return self.s1(f2), [f8, f4, f2]


class FusionSynthesis(nn.Module):
    """Chroma decoder that reads the luma decoder's features at 1/8, 1/4 and 1/2."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.chroma_widths
        l1, l2, l3 = cfg.widths
        self.s8 = nn.Sequential(Up(cfg.n_chroma, c3), GDN(c3, inverse=True))
        self.fuse8 = nn.Conv2d(c3 + l3, c3, 3, padding=1)
        self.s4 = nn.Sequential(Up(c3, c2), GDN(c2, inverse=True))
        self.fuse4 = nn.Conv2d(c2 + l2, c2, 3, padding=1)
        self.s2 = nn.Sequential(Up(c2, c1), GDN(c1, inverse=True))
        self.fuse2 = nn.Conv2d(c1 + l1, c1, 3, padding=1)
        self.s1 = Up(c1, 2)

    def forward(self, z: torch.Tensor, luma: list[torch.Tensor]) -> torch.Tensor:
        f8, f4, f2 = luma
        x = self.fuse8(torch.cat([self.s8(z), f8], 1))
        x = self.fuse4(torch.cat([self.s4(x), f4], 1))
        x = self.fuse2(torch.cat([self.s2(x), f2], 1))
        return self.s1(x)


class RateModel(Protocol):
    """A training rate term in place of the priors (:mod:`lcodec.train.v2.context_rate`):
    ``(noisy, hard, p, knob, n_luma, imp_levels)`` -> (code bits per position (N, C, h, w),
    importance bits (N,), hard code length (N,))."""

    def __call__(self, noisy: torch.Tensor, hard: torch.Tensor, p: torch.Tensor,
                 knob: torch.Tensor, n_luma: int, imp_levels: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


def anchor_weights(knob: torch.Tensor, anchors: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Knobs in [-1, 1] (any shape) -> (lower anchor index, weight of the upper one)."""
    s = (torch.clamp(knob, -1.0, 1.0) + 1.0) * 0.5 * (anchors - 1)
    lo = torch.clamp(torch.floor(s), 0, anchors - 2).long()
    return lo, s - lo


def interpolate(table: torch.Tensor, knob: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` (anchors, ...) linearly interpolated at each knob: (N, ...)."""
    lo, w = anchor_weights(knob.reshape(-1).float(), table.shape[0])
    w = w.view(-1, *([1] * (table.dim() - 1)))
    return (1 - w) * table[lo] + w * table[lo + 1]


def interp_cost(cost: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Code length of continuous symbols ``u`` (N, C, h, w) in 0..T-1 under per-image,
    per-channel costs (N, C, T): exact at integers, linear in between (differentiable)."""
    t = cost.shape[-1]
    u = torch.clamp(u, 0.0, t - 1.0)
    lo = torch.clamp(torch.floor(u.detach()), 0, t - 2).long()
    w = u - lo
    n, c, h, wd = u.shape
    flat = lo.view(n, c, h * wd)
    c_lo = torch.gather(cost, 2, flat).view_as(u)
    c_hi = torch.gather(cost, 2, flat + 1).view_as(u)
    return (1 - w) * c_lo + w * c_hi


@register_architecture("cwic2")
class CWIC2(nn.Module):
    """Network v2. Input and output are YCbCr in [0, 1], H and W multiples of 16.

    The rate knob (in [-1, 1]) selects gains and the importance offset; low knobs give small
    files. ``forward`` is the training pass; ``analyse``/``quantize``/``decompress`` are the
    codec's.
    """

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        if cfg.stride != 16 or cfg.rate_anchors < 2:
            raise ValueError("cwic2 needs stride 16 and at least two rate anchors")
        self.cfg = cfg
        k, t, lv = cfg.rate_anchors, cfg.levels, cfg.imp_levels
        self.luma_enc = Analysis(1, cfg.widths, cfg.n_luma)
        self.chroma_enc = Analysis(3, cfg.chroma_widths, cfg.n_chroma)
        c3 = cfg.widths[2]
        self.importance = nn.Sequential(
            nn.Conv2d(c3, c3 // 2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c3 // 2, 1, 3, padding=1),
        )  # fmt: skip
        self.luma_dec = LumaSynthesis(cfg)
        self.chroma_dec = FusionSynthesis(cfg)
        # Gains initialised apart: from e^-0.5 at knob −1 to e^2.5 at knob +1.
        spread = torch.linspace(-0.5, 2.5, k).view(k, 1)
        n_all = cfg.n_luma + cfg.n_chroma
        self.log_gain_enc = nn.Parameter(spread.repeat(1, n_all))
        self.log_gain_dec = nn.Parameter(-spread.repeat(1, n_all))
        self.imp_offset = nn.Parameter(torch.linspace(-1.0, 2.0, k))
        # Training priors (rate term): per anchor, per channel, logits over the T levels.
        centre = -0.5 * (torch.arange(t) - t // 2).float() ** 2
        self.prior_codes = nn.Parameter(centre.repeat(k, n_all, 1))
        self.prior_qi = nn.Parameter(torch.zeros(k, lv))

    # -- pieces shared by training and coding ------------------------------------------
    def analyse_logits(self, ycc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(y_Y, y_C, importance logits) before gains; windows may be computed apart."""
        y_y, f8 = self.luma_enc(ycc[:, :1])
        y_c, _ = self.chroma_enc(ycc)
        return y_y, y_c, self.importance(f8)

    @staticmethod
    def importance_map(logits: torch.Tensor) -> torch.Tensor:
        """What ``analyse`` returns as its third output: the logits (the knob adds its offset)."""
        return logits

    def _gains(self, knob: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.exp(interpolate(table, knob))  # (N, n_luma + n_chroma)
        n = self.cfg.n_luma
        return g[:, :n, None, None], g[:, n:, None, None]

    def _levels(self, logits: torch.Tensor, knob: torch.Tensor) -> torch.Tensor:
        """Importance p in [base_level/L, 1) at each knob (N,)."""
        cfg = self.cfg
        off = interpolate(self.imp_offset.view(-1, 1), knob).view(-1, 1, 1, 1)
        lo = cfg.base_level / cfg.imp_levels
        p = lo + (1.0 - lo) * torch.sigmoid(logits.float() + off)  # never stuck at the floor
        return torch.clamp(p, lo, 1.0 - 1e-6)

    def _synthesise(self, z_y: torch.Tensor, z_c: torch.Tensor | None) -> torch.Tensor:
        """YCbCr (or Y only) from dequantized codes; the nets predict offsets from mid-grey."""
        y, feats = self.luma_dec(z_y)
        if z_c is None:
            return y + 0.5
        return torch.cat([y, self.chroma_dec(z_c, feats)], 1) + 0.5

    # -- training ----------------------------------------------------------------------
    def forward(self, ycc: torch.Tensor, knob: torch.Tensor, use_mask: bool = True,
                decoder_noise: bool = False, mask_count_rate: bool = False,
                rate_model: RateModel | None = None) -> dict[str, torch.Tensor]:
        """Training pass at per-image knobs (N,).

        ``rate_model`` (with the mask): costs the symbols instead of the per-anchor priors
        (a context model, :class:`RateModel`); its hard code length comes back as
        ``context_bits``.

        ``mask_count_rate`` (an ablation): the rate the encoder sees is the v1 network's,
        log2(T) bits per coded symbol (the mask count), not the code length; the priors still
        learn the code length of the (detached) symbols, so validation can measure it.

        The decoder sees straight-through rounded codes (or, with ``decoder_noise``, the
        codes plus uniform noise, as in Ballé et al. 2017: smoother early learning); the rate
        term sees the codes plus uniform noise, costed by the interpolated per-anchor priors
        (or by ``rate_model``). Returns the
        reconstruction, ``bits`` (N,) (codes under the mask + importance map), and
        ``range_loss`` (codes pushed back inside the T levels).
        """
        cfg = self.cfg
        t, lv, half = cfg.levels, cfg.imp_levels, cfg.levels // 2
        y_y, y_c, logits = self.analyse_logits(ycc)
        y = torch.cat([y_y, y_c], 1).float()
        g_enc, g_dec = (torch.cat(g, 1) for g in (self._gains(knob, self.log_gain_enc),
                                                  self._gains(knob, self.log_gain_dec)))
        u = y * g_enc + half  # symbol scale: level index = round(u)
        range_loss = (F.relu(u - (t - 1)) ** 2 + F.relu(-u) ** 2).mean()
        # The clamp keeps its true gradient (zero outside the levels): passing it straight
        # through told the encoder that larger codes help where they are clipped, which
        # inflated the top anchors' gains (5.7 % of codes clipped at knob +1).
        u_c = torch.clamp(u, 0.0, t - 1.0)
        u_hat = u_c + (torch.round(u_c) - u_c).detach()
        noisy = u + torch.empty_like(u).uniform_(-0.5, 0.5)
        if decoder_noise:
            u_hat = torch.clamp(noisy, -0.5, t - 0.5)
        p = self._levels(logits, knob)
        n_y = cfg.n_luma
        if use_mask:
            m = torch.cat([soft_mask(p, n_y, lv), soft_mask(p, cfg.n_chroma, lv)], 1)
        else:
            m = torch.ones_like(u)
        out = {}
        if rate_model is not None:
            if not use_mask or mask_count_rate:
                raise ValueError("a rate model needs the importance mask and the code length")
            code_bits, qi_bits, out["context_bits"] = rate_model(
                noisy, torch.round(u_c).detach().long(), p, knob, n_y, lv)
        else:
            cost = -F.log_softmax(interpolate(self.prior_codes, knob), -1) / math.log(2)
            code_bits = interp_cost(cost, noisy.detach() if mask_count_rate else noisy)
            if use_mask:
                qi_cost = -F.log_softmax(interpolate(self.prior_qi, knob), -1) / math.log(2)
                qi_p = p.detach() if mask_count_rate else p
                qi_noisy = qi_p * lv - 0.5 + torch.empty_like(p).uniform_(-0.5, 0.5)
                qi_bits = interp_cost(qi_cost.unsqueeze(1), qi_noisy).sum((1, 2, 3))
            else:
                qi_bits = torch.zeros(u.shape[0], device=u.device)
        if mask_count_rate:  # the encoder pays per coded symbol; the priors fit the symbols
            bits = ((m * math.log2(t)).sum((1, 2, 3)) + (code_bits * m.detach()).sum((1, 2, 3))
                    + qi_bits)
        else:
            bits = (code_bits * m).sum((1, 2, 3)) + qi_bits
        z = (u_hat - half) * g_dec * m
        x_hat = self._synthesise(z[:, :n_y], z[:, n_y:])
        return {"x_hat": x_hat.float(), "bits": bits, "range_loss": range_loss,
                "importance": p, "coded_fraction": m.detach().mean(), **out}

    # -- codec (the integer decoders built from these weights: lcodec.synthesis) ---------
    @torch.no_grad()
    def analyse(self, ycc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.analyse_logits(ycc)

    def quantize(self, e_y: torch.Tensor, e_c: torch.Tensor, p: torch.Tensor, offset: float
                 ) -> Encoded:
        """Discrete codes at rate knob ``offset``; positions outside the mask are index 0."""
        cfg = self.cfg
        knob = torch.full((e_y.shape[0],), float(offset), device=e_y.device)
        g_y, g_c = self._gains(knob, self.log_gain_enc)
        qi = importance_levels(self._levels(p, knob), cfg.imp_levels)
        out = []
        for y, g, n in ((e_y, g_y, cfg.n_luma), (e_c, g_c, cfg.n_chroma)):
            idx = torch.clamp(torch.round(y.float() * g) + cfg.levels // 2, 0, cfg.levels - 1)
            out.append(idx.long() * code_mask(qi, n, cfg.imp_levels))
        return Encoded(qi, out[0], out[1], knob=float(offset))

    @torch.no_grad()
    def decompress(self, codes: Encoded, luma_only: bool = False) -> torch.Tensor:
        cfg = self.cfg
        knob = torch.full((codes.qi.shape[0],), float(codes.knob), device=codes.qi.device)
        g_y, g_c = self._gains(knob, self.log_gain_dec)
        half = cfg.levels // 2
        m_y = code_mask(codes.qi, cfg.n_luma, cfg.imp_levels)
        z_y = (codes.luma.float() - half) * g_y * m_y
        if luma_only:
            return self._synthesise(z_y, None)
        m_c = code_mask(codes.qi, cfg.n_chroma, cfg.imp_levels)
        z_c = (codes.chroma.float() - half) * g_c * m_c
        return self._synthesise(z_y, z_c)
