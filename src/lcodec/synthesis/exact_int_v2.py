"""Synthesis EXACT_INT_V2 (format 1.2) of network v2: exact on 8-bit operands, per-image grids.

The decoder of EXACT_INT_V1 on 8-bit operands (faster; measured in docs/format.md, "The same
layers on an AVX2 CPU"): the luma and fusion decoders of :class:`~lcodec.nets.cwic2.CWIC2`
rebuilt with the layers of :mod:`~lcodec.synthesis.exact_int_v2_layers`, and the colour
conversion of EXACT_INT_V1. Every activation tensor named by :func:`tensor_names` lives on a
power-of-two grid that the file carries (its SYNTHESIS_GRIDS, one byte per tensor: a
:class:`GridSpec`, which also says which tensors are wide, 15 bits, and which narrow, 8 bits);
the encoder picks, per tensor, the grid of least squared rounding error among the finest that
holds 1.5× the float decoder's largest value on the image and the next few finer ones
(:func:`calibrate`), with the wide tensors the model's card names. :data:`WIDE` is the set
measured for weights not fine-tuned with this rounding in the loop (``train/qat.py`` does).

```
s = (index − T/2)·m (int8) ─► conv (gains folded) ─► shuffle ─► IGDN ─► f8 ─► … ─► f2
f2 ─► refine: f2 + b(relu(a(f2))) ─► conv ─► shuffle ─► ŷ (2**-16)
chroma likewise, fuse convs on [x, f8 | f4 | f2] ─► ĉ (2**-16) ─► RGB as EXACT_INT_V1
```
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from lcodec.codemask import code_mask_np
from lcodec.container import Synthesis
from lcodec.exact_colour import ycbcr_offsets_to_rgb8
from lcodec.synthesis.exact_common import (
    KNOB_SCALE,
    REACH_CODES,
    exact_gains,
    exact_window,
    has_exact_synthesis,
    require_exact_synthesis,
)
from lcodec.synthesis.exact_int_v2_layers import IGDN8, OUT_FRAC, Conv8, Grid, shuffle
from lcodec.synthesis.exact_int_v2_spec import WIDE, GridSpec, tensor_names
from lcodec.synthesis.registry import register_synthesis

if TYPE_CHECKING:
    import torch

    from lcodec.config import NetConfig
    from lcodec.models import LoadedModel
    from lcodec.nets.codes import Encoded
    from lcodec.synthesis.registry import CodeWindow

# The layers with 13-bit weights (two digits); the others have 7-bit weights. None: on
# held-out training crops 13-bit weights everywhere gained 0.06 dB for 1.6× the decode time
# (scripts/exact8_precision_sweep.py), and none of the six layers tried alone gained over 0.01 dB.
FINE: frozenset[str] = frozenset()


DECODER_PREFIXES = ("luma_dec.", "chroma_dec.", "log_gain_dec")  # the weights it is built of


class ExactIntV2:
    """The EXACT_INT_V2 decoder of one ``cwic2`` network (numpy; no torch): its layers are
    built per (grid spec, knob) and cached. Reach: as EXACT_INT_V1 (3 code positions)."""

    reach_codes = REACH_CODES

    def __init__(self, cfg: NetConfig, params: dict[str, np.ndarray],
                 fine: frozenset[str] = FINE) -> None:
        """``params``: the network's weights named :data:`DECODER_PREFIXES` (float64, as the
        weights file holds them); ``fine``: the layers with 13-bit weights (the synthesis
        defines them: other sets are for measurements)."""
        self.fine = fine
        if 32 + 4 * cfg.refine > 16 * self.reach_codes:
            raise ValueError("too many refinement blocks for the exact decoder's reach")
        self.cfg = cfg
        self._p = {k: v for k, v in params.items() if k.startswith(DECODER_PREFIXES)}
        self.names = tensor_names(cfg.refine)
        self.half = cfg.levels // 2
        self.layers = lru_cache(maxsize=4)(self._build)

    @classmethod
    def from_net(cls, net: torch.nn.Module, fine: frozenset[str] = FINE) -> ExactIntV2:
        """The decoder of a float ``cwic2`` network's current weights."""
        return cls(net.cfg, {k: v.detach().cpu().double().numpy()
                             for k, v in net.state_dict().items()}, fine)

    def _build(self, spec: GridSpec, knob_thousandths: int) -> dict:
        p, cfg = self._p, self.cfg
        g = {n: spec.grid(self.names, n) for n in self.names}
        sym = Grid(0)  # the symbols: integers |s| ≤ T/2

        def conv(name: str, parts, out, relu: bool = False, w=None) -> Conv8:
            return Conv8(p[f"{name}.weight"] if w is None else w, p.get(f"{name}.bias"),
                         parts, out, relu, name in self.fine)

        def igdn(name: str, inp: str, norm: str, out: str) -> IGDN8:
            return IGDN8(p[f"{name}.gamma"], p[f"{name}.beta"], g[inp], g[norm].frac, g[out],
                         name in self.fine)

        gains = exact_gains(p["log_gain_dec"], knob_thousandths)
        n = cfg.n_luma
        c1, c2, c3 = cfg.widths
        d1, d2, d3 = cfg.chroma_widths
        wy = p["luma_dec.s8.0.conv.weight"] * gains[None, :n, None, None]
        wc = p["chroma_dec.s8.0.conv.weight"] * gains[None, n:, None, None]
        return {
            "y8": conv("luma_dec.s8.0.conv", [(n, sym)], g["y.in8"], w=wy),
            "y8n": igdn("luma_dec.s8.1", "y.in8", "y.norm8", "y.f8"),
            "y4": conv("luma_dec.s4.0.conv", [(c3, g["y.f8"])], g["y.in4"]),
            "y4n": igdn("luma_dec.s4.1", "y.in4", "y.norm4", "y.f4"),
            "y2": conv("luma_dec.s2.0.conv", [(c2, g["y.f4"])], g["y.in2"]),
            "y2n": igdn("luma_dec.s2.1", "y.in2", "y.norm2", "y.f2"),
            "refine": [(conv(f"luma_dec.refine.{i}.a", [(c1, g["y.f2"])], g[f"y.r{i}"], True),
                        conv(f"luma_dec.refine.{i}.b", [(c1, g[f"y.r{i}"])], g["y.f2"]))
                       for i in range(cfg.refine)],
            "y1": conv("luma_dec.s1.conv", [(c1, g["y.f2"])], None),
            "c8": conv("chroma_dec.s8.0.conv", [(cfg.n_chroma, sym)], g["c.in8"], w=wc),
            "c8n": igdn("chroma_dec.s8.1", "c.in8", "c.norm8", "c.x8"),
            "f8": conv("chroma_dec.fuse8", [(d3, g["c.x8"]), (c3, g["y.f8"])], g["c.fuse8"]),
            "c4": conv("chroma_dec.s4.0.conv", [(d3, g["c.fuse8"])], g["c.in4"]),
            "c4n": igdn("chroma_dec.s4.1", "c.in4", "c.norm4", "c.x4"),
            "f4": conv("chroma_dec.fuse4", [(d2, g["c.x4"]), (c2, g["y.f4"])], g["c.fuse4"]),
            "c2": conv("chroma_dec.s2.0.conv", [(d2, g["c.fuse4"])], g["c.in2"]),
            "c2n": igdn("chroma_dec.s2.1", "c.in2", "c.norm2", "c.x2"),
            "f2": conv("chroma_dec.fuse2", [(d1, g["c.x2"]), (c1, g["y.f2"])], g["c.fuse2"]),
            "c1": conv("chroma_dec.s1.conv", [(d1, g["c.fuse2"])], None),
            "f2_bound": g["y.f2"].bound,
        }

    def _symbols(self, idx: np.ndarray, qi: np.ndarray, channels: int) -> np.ndarray:
        m = code_mask_np(qi, channels, self.cfg.imp_levels)
        return np.ascontiguousarray(((idx - self.half) * m).transpose(1, 2, 0)).astype(np.int16)

    def pixels(self, qi, luma, chroma, knob: float, spec: GridSpec, gray: bool = False
               ) -> np.ndarray:
        """Codes of one window (qi (h, w), luma (n_luma, h, w), chroma (n_chroma, h, w),
        integer level indices; arrays, or a batch of one such as :class:`Encoded` holds) ->
        (16h, 16w, 3) uint8 RGB (gray: Y replicated)."""
        qi = np.asarray(qi).reshape(np.shape(qi)[-2:])
        luma = np.asarray(luma).reshape(-1, *qi.shape)
        chroma = np.asarray(chroma).reshape(-1, *qi.shape)
        L = self.layers(spec, round(knob * KNOB_SCALE))
        cfg = self.cfg
        f8 = L["y8n"](shuffle(L["y8"]([self._symbols(luma, qi, cfg.n_luma)])))
        f4 = L["y4n"](shuffle(L["y4"]([f8])))
        f2 = L["y2n"](shuffle(L["y2"]([f4])))
        bound = L["f2_bound"]
        for a, b in L["refine"]:  # both terms within ±16383: the int16 sum cannot overflow
            f2 += b([a([f2])])
            np.clip(f2, -bound, bound, out=f2)
        y = shuffle(L["y1"]([f2]))[..., 0].astype(np.int64)
        if gray:
            return ycbcr_offsets_to_rgb8(y, None, None, OUT_FRAC)
        x = L["c8n"](shuffle(L["c8"]([self._symbols(chroma, qi, cfg.n_chroma)])))
        x = L["f8"]([x, f8])
        x = L["f4"]([L["c4n"](shuffle(L["c4"]([x]))), f4])
        x = L["f2"]([L["c2n"](shuffle(L["c2"]([x]))), f2])
        c = shuffle(L["c1"]([x])).astype(np.int64)
        return ycbcr_offsets_to_rgb8(y, c[..., 0], c[..., 1], OUT_FRAC)


def card_wide(model: LoadedModel) -> frozenset[str] | None:
    """The tensors ``model``'s new EXACT_INT_V2 files hold in 15 bits (the encoder's choice,
    from the card's ``synthesis`` entry ``{"exact": "exact_int_v2", "wide": [...]}``), or None
    when the card does not opt the model into EXACT_INT_V2. Decoders read each file's choice
    from its grids."""
    entry = model.info.card.get("synthesis", {})
    if not has_exact_synthesis(model) or entry.get("exact") != "exact_int_v2":
        return None
    return frozenset(entry.get("wide", ()))


def decoder(model: LoadedModel) -> ExactIntV2:
    """``model``'s EXACT_INT_V2 decoder (built on first use, kept with the model)."""
    return model.cached("exact_int_v2", lambda: ExactIntV2(
        model.config, model.float64_weights(DECODER_PREFIXES)))


@register_synthesis(Synthesis.EXACT_INT_V2)
class ExactIntV2Synthesis:
    """EXACT_INT_V2 for the codec: the model's :class:`ExactIntV2` on the file's grids (a
    :class:`GridSpec`, which the encoder calibrates) in the windows of EXACT_INT_V1."""

    exact = True

    def available(self, model: LoadedModel) -> bool:
        return has_exact_synthesis(model)

    def encodes(self, model: LoadedModel) -> bool:
        return card_wide(model) is not None

    def window(self, stride: int) -> tuple[int, int]:
        return exact_window(stride, ExactIntV2.reach_codes)

    def check(self, model: LoadedModel, grids: bytes) -> GridSpec:
        require_exact_synthesis(model)
        return GridSpec.parse(grids, model.config.refine)

    def pixels(self, model: LoadedModel, state: GridSpec, codes: CodeWindow, gray: bool
               ) -> np.ndarray:
        return decoder(model).pixels(codes.qi, codes.luma, codes.chroma, codes.knob, state, gray)

    def grids_size(self, model: LoadedModel) -> int:
        return len(tensor_names(model.config.refine))

    def grids(self, model: LoadedModel, windows: Iterable[Encoded]) -> bytes:
        from lcodec.synthesis.exact_int_v2_grids import calibrate  # the encoder's: torch

        wide = card_wide(model)
        return calibrate(model.net, windows, WIDE if wide is None else wide).codes
