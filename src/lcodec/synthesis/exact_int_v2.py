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

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch

from lcodec.color import ycbcr_offsets_to_rgb8
from lcodec.container import Synthesis
from lcodec.errors import LicError
from lcodec.quant import code_mask
from lcodec.synthesis.exact_int_v1 import (
    KNOB_SCALE,
    REACH_CODES,
    exact_gains,
    exact_window,
    has_exact_synthesis,
    require_exact_synthesis,
)
from lcodec.synthesis.exact_int_v2_layers import (
    FRAC_MAX,
    IGDN8,
    OUT_FRAC,
    Conv8,
    Grid,
    norm_frac,
    shuffle,
)
from lcodec.synthesis.registry import register_synthesis

if TYPE_CHECKING:
    from lcodec.models import LoadedModel
    from lcodec.nets.codes import Encoded

# The fuse convs' two inputs share a grid (and so a width): the luma features at 1/8, 1/4 and
# 1/2 are wide, so the chroma features beside them are too.
SHARED = (("c.x8", "y.f8"), ("c.x4", "y.f4"), ("c.x2", "y.f2"))
WIDE = frozenset({"y.f8", "y.f4", "y.in2", "y.f2", "c.fuse2", "c.x8", "c.x4", "c.x2"})
# The layers with 13-bit weights (two digits); the others have 7-bit weights. None: on
# held-out training crops 13-bit weights everywhere gained 0.06 dB for 1.6× the decode time
# (scripts/exact8_precision_sweep.py), and none of the six layers tried alone gained over 0.01 dB.
FINE: frozenset[str] = frozenset()
# How many grids finer than the one that holds 1.5× a tensor's largest value the encoder tries.
GRID_TRIALS = tuple(range(6))


def tensor_names(refine: int) -> tuple[str, ...]:
    """The activation tensors a grid spec names, in its byte order."""
    luma = ["y.in8", "y.norm8", "y.f8", "y.in4", "y.norm4", "y.f4", "y.in2", "y.norm2", "y.f2"]
    luma += [f"y.r{i}" for i in range(refine)]
    chroma = ["c.in8", "c.norm8", "c.x8", "c.fuse8", "c.in4", "c.norm4", "c.x4", "c.fuse4",
              "c.in2", "c.norm2", "c.x2", "c.fuse2"]
    return tuple(luma + chroma)


@dataclass(frozen=True)
class GridSpec:
    """The grids of one file: one byte per tensor of :func:`tensor_names` (a :class:`Grid`:
    bit 7 says wide; a normaliser's byte has it clear, its grid is 16 bits). The fuse convs'
    two inputs (:data:`SHARED`) have one ``frac``."""

    codes: bytes

    @classmethod
    def parse(cls, payload: bytes, refine: int) -> GridSpec:
        """Validate grid bytes (as a file carries them) for a network with ``refine``
        refinement blocks."""
        names = tensor_names(refine)
        if len(payload) != len(names):
            raise LicError(f"invalid synthesis grids: {len(payload)} bytes, expected "
                           f"{len(names)} for this model")
        grids = {n: Grid.decode(b) for n, b in zip(names, payload, strict=True)}
        for n, g in grids.items():
            if g.wide and ".norm" in n:
                raise LicError(f"invalid synthesis grids: the normaliser {n} has the wide bit")
        for c, y in SHARED:
            if grids[c].frac != grids[y].frac:
                raise LicError(f"invalid synthesis grids: {c} and {y} must share a grid")
        return cls(bytes(payload))

    def grid(self, names: tuple[str, ...], name: str) -> Grid:
        return Grid.decode(self.codes[names.index(name)])

    @classmethod
    def from_largest(cls, names: tuple[str, ...], largest: dict[str, float],
                     wide: frozenset[str] = WIDE) -> GridSpec:
        """The finest grids that hold 1.5× the largest values. A fuse conv's two inputs get
        one grid, the coarser of the two (with unequal grids one part's weights would lose
        the difference)."""
        grids = {n: Grid(norm_frac(largest[n])) if ".norm" in n
                 else Grid.fit(largest[n], n in wide) for n in names}
        for c, y in SHARED:
            frac = min(grids[c].frac, grids[y].frac)
            grids[c], grids[y] = Grid(frac, c in wide), Grid(frac, y in wide)
        return cls(bytes(grids[n].code() for n in names))


class ExactIntV2:
    """The EXACT_INT_V2 decoder of one ``cwic2`` network; its layers are built per (grid
    spec, knob) and cached. Reach: as EXACT_INT_V1 (3 code positions)."""

    reach_codes = REACH_CODES

    def __init__(self, net: torch.nn.Module, fine: frozenset[str] = FINE) -> None:
        """``fine``: the layers with 13-bit weights (the synthesis defines them: other sets
        are for measurements)."""
        cfg = net.cfg
        self.fine = fine
        if 32 + 4 * cfg.refine > 16 * self.reach_codes:
            raise ValueError("too many refinement blocks for the exact decoder's reach")
        self.cfg = cfg
        self.device = next(net.parameters()).device
        self._p = {k: v.detach().cpu().double().numpy() for k, v in net.state_dict().items()
                   if k.startswith(("luma_dec.", "chroma_dec.", "log_gain_dec"))}
        self.names = tensor_names(cfg.refine)
        self.half = cfg.levels // 2
        self.layers = lru_cache(maxsize=4)(self._build)

    def _build(self, spec: GridSpec, knob_thousandths: int) -> dict:
        p, cfg, dev = self._p, self.cfg, self.device
        g = {n: spec.grid(self.names, n) for n in self.names}
        sym = Grid(0)  # the symbols: integers |s| ≤ T/2

        def conv(name: str, parts, out, relu: bool = False, w=None) -> Conv8:
            return Conv8(p[f"{name}.weight"] if w is None else w, p.get(f"{name}.bias"),
                         parts, out, relu, name in self.fine, dev)

        def igdn(name: str, inp: str, norm: str, out: str) -> IGDN8:
            return IGDN8(p[f"{name}.gamma"], p[f"{name}.beta"], g[inp], g[norm].frac, g[out],
                         name in self.fine, dev)

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

    def _symbols(self, idx: torch.Tensor, qi: torch.Tensor, channels: int) -> torch.Tensor:
        m = code_mask(qi, channels, self.cfg.imp_levels)[0]
        return ((idx[0] - self.half) * m).permute(1, 2, 0).to(torch.int16).contiguous()

    @torch.no_grad()
    def pixels(self, qi: torch.Tensor, luma: torch.Tensor, chroma: torch.Tensor,
               knob: float, spec: GridSpec, gray: bool = False) -> torch.Tensor:
        """Codes of one window (qi (1, 1, h, w), luma (1, n_luma, h, w), chroma (1, n_chroma,
        h, w), level indices) -> (16h, 16w, 3) uint8 RGB (gray: Y replicated)."""
        L = self.layers(spec, round(knob * KNOB_SCALE))
        cfg = self.cfg
        f8 = L["y8n"](shuffle(L["y8"]([self._symbols(luma, qi, cfg.n_luma)])))
        f4 = L["y4n"](shuffle(L["y4"]([f8])))
        f2 = L["y2n"](shuffle(L["y2"]([f4])))
        bound = L["f2_bound"]
        for a, b in L["refine"]:  # both terms within ±16383: the int16 sum cannot overflow
            f2 = f2.add_(b([a([f2])])).clamp_(-bound, bound)
        y = shuffle(L["y1"]([f2]))[..., 0].long()
        if gray:
            return ycbcr_offsets_to_rgb8(y, None, None, OUT_FRAC)
        x = L["c8n"](shuffle(L["c8"]([self._symbols(chroma, qi, cfg.n_chroma)])))
        x = L["f8"]([x, f8])
        x = L["f4"]([L["c4n"](shuffle(L["c4"]([x]))), f4])
        x = L["f2"]([L["c2n"](shuffle(L["c2"]([x]))), f2])
        c = shuffle(L["c1"]([x])).long()
        return ycbcr_offsets_to_rgb8(y, c[..., 0], c[..., 1], OUT_FRAC)


def error_samples(t: torch.Tensor) -> torch.Tensor:
    """The positions a grid's error is measured on: every other row and column."""
    return t[..., ::2, ::2]


def rounding_errors(t: torch.Tensor, frac: torch.Tensor, bound: int) -> torch.Tensor:
    """Per image of ``t`` (N, ...: the positions :func:`error_samples` keeps), Σ (t − q(t))²
    for q the saturated rounding onto the grid ``frac + d`` (``frac`` (N,)), for each ``d`` of
    :data:`GRID_TRIALS`: (N, trials)."""
    out = []
    for d in GRID_TRIALS:
        scale = torch.exp2(frac + d).view(-1, *([1] * (t.dim() - 1)))
        q = torch.clamp(torch.round(t * scale), -bound, bound) / scale
        out.append(((q - t) ** 2).flatten(1).sum(1))
    return torch.stack(out, 1)


def least_error_fracs(start: dict[str, torch.Tensor], errors: dict[str, torch.Tensor]
                      ) -> dict[str, torch.Tensor]:
    """Per tensor and image, ``start`` (N,) plus the trial of least error (``errors`` (N,
    trials) from :func:`rounding_errors`); a fuse conv's two inputs, which start on one
    frac, take the trial of least summed error."""
    trials = torch.tensor(GRID_TRIALS, dtype=torch.float32)
    fracs = {n: start[n] + trials[e.argmin(1)] for n, e in errors.items()}
    for c, y in SHARED:
        fracs[c] = fracs[y] = start[c] + trials[(errors[c] + errors[y]).argmin(1)]
    return {n: f.clamp(max=FRAC_MAX) for n, f in fracs.items()}


_PROBE = threading.local()  # .visit: this thread's visitor while it runs _visit
_PROBE_LOCK = threading.Lock()


def _report(name: str, t: torch.Tensor) -> None:
    visit = getattr(_PROBE, "visit", None)
    if visit is not None:
        visit(name, t)


def _install_probes(net: torch.nn.Module) -> None:
    """Forward hooks on ``net``'s decoder, installed once per network, that hand every tensor
    of :func:`tensor_names` to the calling thread's visitor (none outside :func:`_visit`).

    Hooks live on the network, which a loaded model shares across threads: installed once and
    never removed, they report only to the thread whose decode produced the tensor, so
    concurrent encodes and decodes never see each other's values."""
    with _PROBE_LOCK:
        if getattr(net, "_grid_probes", False):
            return

        def on(module: torch.nn.Module, fn) -> None:
            module.register_forward_hook(fn)

        def gdn_hook(prefix: str, level: str, out_name: str):
            def fn(m: torch.nn.Module, inp, out) -> None:  # a GDN
                if getattr(_PROBE, "visit", None) is None:
                    return
                x = inp[0].float()
                ch = x.shape[1]
                norm = torch.nn.functional.conv2d(x.abs(), m.gamma.abs().view(ch, ch, 1, 1),
                                                  m.beta.abs())
                _report(f"{prefix}.in{level}", x)
                _report(f"{prefix}.norm{level}", norm)
                _report(out_name, out)
            return fn

        ld, cd = net.luma_dec, net.chroma_dec
        on(ld.s8[1], gdn_hook("y", "8", "y.f8"))
        on(ld.s4[1], gdn_hook("y", "4", "y.f4"))
        on(ld.s2[1], gdn_hook("y", "2", "y.f2"))
        for i, block in enumerate(ld.refine):
            on(block.a, lambda m, i_, o, i=i: _report(f"y.r{i}", o.clamp_min(0)))
            on(block, lambda m, i_, o: _report("y.f2", o))
        on(cd.s8[1], gdn_hook("c", "8", "c.x8"))
        on(cd.s4[1], gdn_hook("c", "4", "c.x4"))
        on(cd.s2[1], gdn_hook("c", "2", "c.x2"))
        for level in ("8", "4", "2"):
            on(getattr(cd, f"fuse{level}"), lambda m, i_, o, lv=level: _report(f"c.fuse{lv}", o))
        net._grid_probes = True


def _visit(net: torch.nn.Module, windows: list, visit) -> None:
    """Run the float decoder on ``windows``, calling ``visit(name, tensor)`` for every tensor
    of :func:`tensor_names` it computes (``y.f2`` once per refinement block and before)."""
    _install_probes(net)
    _PROBE.visit = visit
    try:
        for win in windows:
            net.decompress(win)
    finally:
        _PROBE.visit = None


@torch.no_grad()
def calibrate(net: torch.nn.Module, windows: Iterable, wide: frozenset[str] = WIDE,
              least_error: bool = True) -> GridSpec:
    """The grid spec for an image's codes, given as windows (``Encoded``), from two passes of
    the float decoder: the finest grids that hold 1.5× each tensor's largest magnitude, then,
    per tensor (``least_error``), the grid among those and the next :data:`GRID_TRIALS` finer
    ones on which rounding and saturating its values costs the least squared error (a few
    outliers would otherwise make the grid of a whole image coarse); a fuse conv's two inputs
    get the grid of least joint error, no finer than the coarser one's start. ``wide``: the
    wide tensors."""
    windows = list(windows)
    names = tensor_names(net.cfg.refine)
    largest: dict[str, float] = {}
    kept: list[tuple[str, torch.Tensor]] = []  # one window: its samples, for the errors
    one = least_error and len(windows) == 1

    def seen(name: str, t: torch.Tensor) -> None:
        largest[name] = max(largest.get(name, 0.0), float(t.abs().max()))
        if one and ".norm" not in name:
            kept.append((name, error_samples(t).clone()))

    _visit(net, windows, seen)
    spec = GridSpec.from_largest(names, largest, wide)
    if not least_error:
        return spec
    start = {n: spec.grid(names, n) for n in names if ".norm" not in n}
    errors: dict[str, torch.Tensor] = {}

    def err(name: str, t: torch.Tensor) -> None:
        if name in start:
            g = start[name]
            e = rounding_errors(t if one else error_samples(t), torch.tensor([float(g.frac)]),
                                g.bound)
            errors[name] = e if name not in errors else errors[name] + e

    if one:
        for name, t in kept:
            err(name, t)
    else:
        _visit(net, windows, err)
    fracs = least_error_fracs({n: torch.tensor([float(g.frac)]) for n, g in start.items()},
                              errors)
    codes = bytearray(spec.codes)
    for name, f in fracs.items():
        codes[names.index(name)] = Grid(int(f[0]), start[name].wide).code()
    return GridSpec(bytes(codes))


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
    return model.cached("exact_int_v2", lambda: ExactIntV2(model.net))


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

    def pixels(self, model: LoadedModel, state: GridSpec, codes: Encoded, gray: bool
               ) -> np.ndarray:
        rgb = decoder(model).pixels(codes.qi, codes.luma, codes.chroma, codes.knob, state, gray)
        return rgb.cpu().numpy()

    def grids_size(self, model: LoadedModel) -> int:
        return len(tensor_names(model.config.refine))

    def grids(self, model: LoadedModel, windows: Iterable[Encoded]) -> bytes:
        wide = card_wide(model)
        return calibrate(model.net, windows, WIDE if wide is None else wide).codes
