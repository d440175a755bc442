"""Synthesis EXACT_INT_V1 (format 1.1) of network v2: the same pixels on every machine.

The luma and fusion decoders of :class:`~lcodec.nets.cwic2.CWIC2`, rebuilt from the model's
float weights with the float64 integer layers of
:mod:`~lcodec.synthesis.exact_int_v1_layers`, and the colour conversion of
:func:`lcodec.color.ycbcr_offsets_to_rgb8`:

```
s_Y = (index − T/2) · m_Y            integers, |s| ≤ T/2
L1: conv3×3 with weights W·g_dec(knob) (gains folded in per knob) ─► shuffle ─► IGDN ─► f8
L2, L3: conv3×3 ─► shuffle ─► IGDN ─► f4, f2
refine blocks (if any): f2 ← sat(f2 + conv3×3(max(conv3×3(f2), 0)))
L4: conv3×3 ─► shuffle ─► ŷ                                          (grid 2**-16)
chroma likewise, with fuse convs on [x, f8 | f4 | f2]                 ─► ĉb ĉr
pixels = clamp(round_half_up(255 · BT.601⁻¹(ŷ + ½, ĉb, ĉr)), 0, 255)   (int64)
```

The decoder gains ``g_dec = exp(interpolated log gains)`` at the header's knob (thousandths)
are computed exactly: the interpolation in rationals, ``exp`` by Python's ``decimal`` (which
the General Decimal Arithmetic specification defines to round correctly, so every platform
gets the same digits), then rounded half-even to 28 significant bits. A 28-bit gain times an
fp16 weight (11 significant bits) is exact in float64, so the folded first-layer weights are
the same everywhere. Nothing here depends on a model id: any ``cwic2`` weights file gets its
exact decoder on first use (kept with the loaded model).

Windows: ``EXACT_TILE_PIXELS``² (512²; float64 activations take twice the float decoder's
bytes) with a halo of ``EXACT_HALO_PIXELS`` (48), not a margin but the proven reach
(:data:`REACH_CODES` positions at stride 16); EXACT_INT_V2 shares both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch

from lcodec.color import ycbcr_offsets_to_rgb8
from lcodec.container import Synthesis
from lcodec.errors import LcodecError, LicError
from lcodec.nets.cwic2 import CWIC2
from lcodec.quant import code_mask
from lcodec.synthesis.exact_int_v1_layers import (
    ACT_FRAC,
    ACT_MAX,
    IntConv,
    IntIGDN,
    concat,
    shuffle,
)
from lcodec.synthesis.registry import register_synthesis

if TYPE_CHECKING:
    from lcodec.models import LoadedModel
    from lcodec.nets.codes import Encoded

GAIN_BITS = 28  # significant bits of an exact decoder gain
_DECIMAL = Context(prec=40, rounding=ROUND_HALF_EVEN)
KNOB_SCALE = 1000  # the header stores the knob in thousandths
EXACT_TILE_PIXELS = 512
EXACT_HALO_PIXELS = 48
REACH_CODES = 3  # a pixel depends only on codes at most this many positions away


def exact_exp(x: Fraction) -> float:
    """``exp(x)`` rounded half-even to ``GAIN_BITS`` significant bits, the same on every
    platform (decimal's exp is correctly rounded; the rest is rational arithmetic)."""
    d = _DECIMAL.divide(Decimal(x.numerator), Decimal(x.denominator))
    e = Fraction(_DECIMAL.exp(d))
    k = GAIN_BITS - 1 - math.floor(math.log2(e))  # a first guess, corrected exactly below
    while e * Fraction(2) ** k >= 2**GAIN_BITS:
        k -= 1
    while e * Fraction(2) ** k < 2 ** (GAIN_BITS - 1):
        k += 1
    return math.ldexp(round(e * Fraction(2) ** k), -k)  # round(Fraction) is half-even


def exact_gains(log_gains: np.ndarray, knob_thousandths: int) -> np.ndarray:
    """Gains ``exp((1 − w)·L[lo] + w·L[lo+1])`` (the float decoder's :func:`interpolate` at
    the same knob, clamped to [-1, 1]) for every channel, as float64 values of 28 bits."""
    anchors = log_gains.shape[0]
    k = min(max(knob_thousandths, -KNOB_SCALE), KNOB_SCALE)
    s = Fraction(k + KNOB_SCALE, 2 * KNOB_SCALE) * (anchors - 1)
    lo = min(max(math.floor(s), 0), anchors - 2)
    w = s - lo
    return np.array([exact_exp((1 - w) * Fraction(float(a)) + w * Fraction(float(b)))
                     for a, b in zip(log_gains[lo], log_gains[lo + 1], strict=True)])


class ExactIntV1:
    """The EXACT_INT_V1 decoder of one ``cwic2`` network (built once per loaded model).

    ``reach_codes``: a pixel depends only on codes at most this many positions away. Each
    3×3 conv reaches one position of its resolution: 16 + 8 + 4 + 2 px for luma, 16 + 2·(8 +
    4 + 2) = 44 px for chroma (fuse convs included), and each refinement block adds 2·2 px
    to luma (and to the luma features chroma reads at 1/2). Up to 48 px (4 blocks), a pixel
    at offset 0..15 in its code cell reads cells −3..+3. A window's zero padding never
    reaches its core through a halo of ≥ 3 positions, so tiled decoding equals untiled
    decoding exactly.
    """

    reach_codes = REACH_CODES

    def __init__(self, net: torch.nn.Module) -> None:
        cfg = net.cfg
        if 32 + 4 * cfg.refine > 16 * self.reach_codes:
            raise ValueError("too many refinement blocks for the exact decoder's reach")
        self.cfg = cfg
        self.device = next(net.parameters()).device
        p = {k: v.detach().cpu().double().numpy() for k, v in net.state_dict().items()
             if k.startswith(("luma_dec.", "chroma_dec.", "log_gain_dec"))}
        self._p = p
        self.log_gains = p["log_gain_dec"]
        self.half = cfg.levels // 2
        self.in_max = max(self.half, cfg.levels - 1 - self.half)  # |index − T/2|

        def conv(name: str) -> IntConv:
            return IntConv.from_float(p[f"{name}.weight"], p.get(f"{name}.bias"), ACT_FRAC,
                                      ACT_MAX, self.device)

        def igdn(name: str) -> IntIGDN:
            return IntIGDN.from_float(p[f"{name}.gamma"], p[f"{name}.beta"], self.device)

        self.luma = [(conv("luma_dec.s4.0.conv"), igdn("luma_dec.s4.1")),
                     (conv("luma_dec.s2.0.conv"), igdn("luma_dec.s2.1"))]
        self.refine = [(conv(f"luma_dec.refine.{i}.a"), conv(f"luma_dec.refine.{i}.b"))
                       for i in range(cfg.refine)]
        self.luma_igdn8 = igdn("luma_dec.s8.1")
        self.luma_out = conv("luma_dec.s1.conv")
        self.chroma_igdn8 = igdn("chroma_dec.s8.1")
        self.fuse = [conv("chroma_dec.fuse8"), conv("chroma_dec.fuse4"), conv("chroma_dec.fuse2")]
        self.chroma = [(conv("chroma_dec.s4.0.conv"), igdn("chroma_dec.s4.1")),
                       (conv("chroma_dec.s2.0.conv"), igdn("chroma_dec.s2.1"))]
        self.chroma_out = conv("chroma_dec.s1.conv")
        self.first = lru_cache(maxsize=8)(self._first_layers)

    def _first_layers(self, knob_thousandths: int) -> tuple[IntConv, IntConv]:
        """The luma and chroma first convs with the knob's gains folded into their weights:
        ``conv(s · g) = conv_{W·g}(s)``, and W·g is exact in float64 (11 + 28 bits)."""
        g = exact_gains(self.log_gains, knob_thousandths)
        n = self.cfg.n_luma
        out = []
        for name, gains in (("luma_dec.s8.0.conv", g[:n]), ("chroma_dec.s8.0.conv", g[n:])):
            w = self._p[f"{name}.weight"] * gains[None, :, None, None]
            out.append(IntConv.from_float(w, self._p[f"{name}.bias"], 0, self.in_max,
                                          self.device))
        return out[0], out[1]

    def _symbols(self, idx: torch.Tensor, qi: torch.Tensor, channels: int) -> torch.Tensor:
        m = code_mask(qi, channels, self.cfg.imp_levels)[0]
        return (idx[0] - self.half).to(torch.float64) * m

    @torch.no_grad()
    def pixels(self, qi: torch.Tensor, luma: torch.Tensor, chroma: torch.Tensor,
               knob: float, gray: bool = False) -> torch.Tensor:
        """Codes of one window (qi (1, 1, h, w), luma (1, n_luma, h, w), chroma (1, n_chroma,
        h, w), level indices) -> (16h, 16w, 3) uint8 RGB (gray: Y replicated)."""
        cfg = self.cfg
        first_y, first_c = self.first(round(knob * KNOB_SCALE))
        f8 = self.luma_igdn8(shuffle(first_y(self._symbols(luma, qi, cfg.n_luma))))
        feats = [f8]
        x = f8
        for conv, igdn in self.luma:
            x = igdn(shuffle(conv(x)))
            feats.append(x)
        for a, b in self.refine:  # x + b(relu(a(x))): |sum| < 2**27, saturated like a layer
            x = x.add_(b(a(x).clamp_min_(0))).clamp_(-ACT_MAX, ACT_MAX)
        feats[-1] = x
        y = shuffle(self.luma_out(x))[0].to(torch.int64)  # integers < 2**26: exact
        if gray:
            return ycbcr_offsets_to_rgb8(y, None, None, ACT_FRAC)
        x = self.chroma_igdn8(shuffle(first_c(self._symbols(chroma, qi, cfg.n_chroma))))
        x = self.fuse[0](concat([x, feats[0]]))
        for (conv, igdn), fuse, f in zip(self.chroma, self.fuse[1:], feats[1:], strict=True):
            x = fuse(concat([igdn(shuffle(conv(x))), f]))
        c = shuffle(self.chroma_out(x)).to(torch.int64)
        return ycbcr_offsets_to_rgb8(y, c[0], c[1], ACT_FRAC)


def exact_window(stride: int, reach: int = REACH_CODES) -> tuple[int, int]:
    """(window core, halo) in code positions of the exact syntheses, whose halo must be at
    least their reach: then any window layout gives the very same pixels."""
    tile, halo = max(1, EXACT_TILE_PIXELS // stride), EXACT_HALO_PIXELS // stride
    if halo < reach:
        raise LcodecError("internal error: the window halo is below the exact decoder's reach")
    return tile, halo


def has_exact_synthesis(model: LoadedModel) -> bool:
    """Whether ``model``'s network has the exact syntheses (network v2 does)."""
    return isinstance(model.net, CWIC2)


def require_exact_synthesis(model: LoadedModel) -> None:
    """Refuses a file naming an exact synthesis for a model without one."""
    if not has_exact_synthesis(model):
        raise LicError(f"the file asks for the exact synthesis, which model {model.info.name} "
                       "does not have")


def decoder(model: LoadedModel) -> ExactIntV1:
    """``model``'s EXACT_INT_V1 decoder (built on first use, kept with the model)."""
    return model.cached("exact_int_v1", lambda: ExactIntV1(model.net))


@register_synthesis(Synthesis.EXACT_INT_V1)
class ExactIntV1Synthesis:
    """EXACT_INT_V1 for the codec: the model's :class:`ExactIntV1` in :func:`exact_window`s."""

    exact = True

    def available(self, model: LoadedModel) -> bool:
        return has_exact_synthesis(model)

    def encodes(self, model: LoadedModel) -> bool:
        return has_exact_synthesis(model)

    def window(self, stride: int) -> tuple[int, int]:
        return exact_window(stride, ExactIntV1.reach_codes)

    def check(self, model: LoadedModel, grids: bytes) -> None:
        require_exact_synthesis(model)

    def pixels(self, model: LoadedModel, state: None, codes: Encoded, gray: bool
               ) -> np.ndarray:
        rgb = decoder(model).pixels(codes.qi, codes.luma, codes.chroma, codes.knob, gray)
        return rgb.cpu().numpy()

    def grids_size(self, model: LoadedModel) -> int:
        return 0

    def grids(self, model: LoadedModel, windows: Iterable[Encoded]) -> bytes:
        return b""
