"""Synthesis EXACT_INT_V1 (format 1.1) of network v2: the same pixels on every machine.

The luma and fusion decoders of :class:`~lcodec.nets.cwic2.CWIC2`, rebuilt from the model's
float weights with the float64 integer layers of
:mod:`~lcodec.synthesis.exact_int_v1_layers`, and the colour conversion of
:func:`lcodec.exact_colour.ycbcr_offsets_to_rgb8`:

```
s_Y = (index − T/2) · m_Y            integers, |s| ≤ T/2
L1: conv3×3 with weights W·g_dec(knob) (gains folded in per knob) ─► shuffle ─► IGDN ─► f8
L2, L3: conv3×3 ─► shuffle ─► IGDN ─► f4, f2
refine blocks (if any): f2 ← sat(f2 + conv3×3(max(conv3×3(f2), 0)))
L4: conv3×3 ─► shuffle ─► ŷ                                          (grid 2**-16)
chroma likewise, with fuse convs on [x, f8 | f4 | f2]                 ─► ĉb ĉr
pixels = clamp(round_half_up(255 · BT.601⁻¹(ŷ + ½, ĉb, ĉr)), 0, 255)   (int64)
```

The decoder gains ``g_dec`` at the header's knob are computed exactly
(:func:`~lcodec.synthesis.exact_common.exact_gains`). Nothing here depends on a model id: any
``cwic2`` weights file gets its exact decoder on first use (kept with the loaded model).

Windows: ``EXACT_TILE_PIXELS``² (512²; float64 activations take twice the float decoder's
bytes) with a halo of ``EXACT_HALO_PIXELS`` (48), not a margin but the proven reach
(:data:`REACH_CODES` positions at stride 16); EXACT_INT_V2 shares both.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch

from lcodec.container import Synthesis
from lcodec.exact_colour import ycbcr_offsets_to_rgb8
from lcodec.nets.codes import Encoded
from lcodec.quant import code_mask
from lcodec.synthesis.exact_common import (
    KNOB_SCALE,
    REACH_CODES,
    exact_gains,
    exact_window,
    has_exact_synthesis,
    require_exact_synthesis,
)
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
    from lcodec.synthesis.registry import CodeWindow

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
               knob: float, gray: bool = False) -> np.ndarray:
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
        y = shuffle(self.luma_out(x))[0].to(torch.int64).cpu().numpy()  # integers < 2**26
        if gray:
            return ycbcr_offsets_to_rgb8(y, None, None, ACT_FRAC)
        x = self.chroma_igdn8(shuffle(first_c(self._symbols(chroma, qi, cfg.n_chroma))))
        x = self.fuse[0](concat([x, feats[0]]))
        for (conv, igdn), fuse, f in zip(self.chroma, self.fuse[1:], feats[1:], strict=True):
            x = fuse(concat([igdn(shuffle(conv(x))), f]))
        c = shuffle(self.chroma_out(x)).to(torch.int64).cpu().numpy()
        return ycbcr_offsets_to_rgb8(y, c[0], c[1], ACT_FRAC)


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

    def pixels(self, model: LoadedModel, state: None, codes: CodeWindow, gray: bool
               ) -> np.ndarray:
        enc = Encoded.from_window(codes, model.device)
        return decoder(model).pixels(enc.qi, enc.luma, enc.chroma, enc.knob, gray)

    def grids_size(self, model: LoadedModel) -> int:
        return 0

    def grids(self, model: LoadedModel, windows: Iterable[Encoded]) -> bytes:
        return b""
