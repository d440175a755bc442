"""A study for issue 15: an exact synthesis on int8 GEMMs (a candidate EXACT_INT_V2).

Not part of the codec (no file names this synthesis yet): the layers below are exact, like
EXACT_INT_V1, but computed with ``torch._int_mm`` (int8 operands, exact int32 sums) instead of
float64 GEMMs. Run

    OMP_NUM_THREADS=1 python scripts/int8_synthesis_study.py [IMAGE ...]

to print, per configuration, the PSNR change against EXACT_INT_V1 and the decoder's CPU
seconds against the float decoder (`v2-mse`, knobs −0.6 / 0 / 0.7). Results and the design
are in docs/format.md, "A narrower synthesis, measured (session 5)".

The layers
----------
Activations are integers ``a`` on a per-tensor grid (``a · 2**-frac``), *narrow* (|a| ≤ 127,
one int8 operand) or *wide* (|a| ≤ 16383, two int8 limbs ``a = 128·hi + lo``, lo in 0..127).
Weights are integers of up to 13 bits per output channel with a power-of-two row exponent
(``w ≈ w_q · 2**-e``, |w_q| ≤ 4063), split into two int8 digits ``w_q = 64·hi + lo``
(|hi| ≤ 63, −32 ≤ lo ≤ 31). A convolution is one GEMM per (input part, activation limb) on an
im2col of int8 values against both weight digits; each product sum is bounded by
128 · 63 · K < 2**24 (K ≤ 2048), so an int32 GEMM holds it exactly, in any order, and so does
a float64 GEMM (the fallback). The digit and limb sums are combined by shifts and adds in
int32, and requantized by ``((acc + B) << l + 2**(r−1)) >> r`` per row; when a layer is built,
each row's exponent is lowered until the bound of every such int32 value holds. The derived
integers come from exact float64 operations (``ldexp``, ``frexp``) and ``rint``.

Why digits of at most 6 bits and a sign: CPUs without VNNI multiply int8 pairs with
``vpmaddubsw``, which adds two u8 × s8 products into a saturating int16, after shifting one
s8 operand to u8 (+128, corrected afterwards). With the weight digits within ±63 and the
activations as the shifted side, a pair sum is at most 2 · 255 · 63 = 32130 < 2**15; in case
a backend shifts the other side, :func:`int_gemm` checks ``torch._int_mm`` once against
exact products on operands that would saturate otherwise, and falls back to float64 GEMMs
(the same integers) if it differs.

All tensors are channels-last, (H, W, C), so a GEMM's output rows are the positions.

The network
-----------
The same layers as :class:`~lcodec.nets.cwic2_exact.ExactSynthesis` (and the float decoder),
computed with the layers above, on per-tensor activation grids (:class:`GridSpec`, one byte
per tensor: a file would carry them) chosen from the float decoder's activations on the image
being coded (:func:`calibrate`), in :func:`tensor_names` order. The wide ones
(:data:`WIDE`: two limbs, 15 bits) are where 8 bits cost the most PSNR: the luma features at
1/8, 1/4 and 1/2 (the refinement stream), the last luma IGDN's input and the last chroma
conv's input.

```
s = (index − T/2)·m (int8) ─► conv (gains folded) ─► shuffle ─► IGDN ─► f8 ─► … ─► f2
f2 ─► refine: f2 + b(relu(a(f2))) ─► conv ─► shuffle ─► ŷ (2**-16)
chroma likewise, fuse convs on [x, f8 | f4 | f2] ─► ĉ (2**-16) ─► RGB as EXACT_INT_V1
```
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from lcodec.color import ycbcr_offsets_to_rgb8
from lcodec.errors import LcodecError
from lcodec.nets.cwic2_exact import KNOB_SCALE, exact_gains
from lcodec.quant import code_mask

DIGIT_MAX = 63  # |a weight digit|
DIGIT_BITS = 6
W_MAX = DIGIT_MAX * 64 + 31  # 4063: |w_q| for which both digits stay within ±63
NARROW_MAX = 127
WIDE_MAX = 128 * 127 + 127  # 16383
LIMB_BITS = 7
NORM_MAX = 2**16 - 1  # an IGDN normaliser: |x·n| ≤ 16383·(2**16 − 1) < 2**30
OUT_FRAC = 16  # the last layers' output grid (the colour conversion's input)
OUT_MAX = 2**26 - 1

_INT_MM: bool | None = None  # whether torch._int_mm is exact here (checked once)


def _int_mm_is_exact() -> bool:
    if not hasattr(torch, "_int_mm"):
        return False
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-128, 128, (64, 160), dtype=torch.int8, generator=g)
    a[:32] = 127  # pair sums that saturate an int16 if the weights were shifted to u8
    a[32:40] = -128
    b = torch.randint(-DIGIT_MAX, DIGIT_MAX + 1, (160, 48), dtype=torch.int8, generator=g)
    b[:, :16] = DIGIT_MAX
    b[:, 16:24] = -DIGIT_MAX
    try:
        got = torch._int_mm(a, b)
    except RuntimeError:
        return False
    return bool(torch.equal(got.long(), a.long() @ b.long()))


def int_gemm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, K) int8 activations × (K, O) int8 weights -> exact (N, O) int32 sums."""
    global _INT_MM
    if _INT_MM is None:
        _INT_MM = a.device.type == "cpu" and _int_mm_is_exact()
    if _INT_MM and a.device.type == "cpu":
        return torch._int_mm(a, b)
    return (a.double() @ b.double()).to(torch.int32)  # |sum| < 2**24: exact in float64


@dataclass(frozen=True)
class Grid:
    """An activation tensor's integer grid: value = a · 2**-frac, |a| ≤ bound."""

    frac: int
    wide: bool = False

    @property
    def bound(self) -> int:
        return WIDE_MAX if self.wide else NARROW_MAX

    def code(self) -> int:
        """One byte: bit 7 = wide, bits 0-6 = frac + 32 (frac in −32 … 95)."""
        return (0x80 if self.wide else 0) | (self.frac + 32)

    @classmethod
    def decode(cls, byte: int) -> Grid:
        return cls((byte & 0x7F) - 32, bool(byte & 0x80))

    @classmethod
    def fit(cls, largest: float, wide: bool, headroom: float = 1.5) -> Grid:
        """The finest grid on which ``headroom · largest`` still fits."""
        bound = WIDE_MAX if wide else NARROW_MAX
        top = max(largest * headroom, 2.0**-60)
        frac = math.floor(math.log2(bound / top))
        return cls(min(max(frac, -32), 95), wide)


def limbs(x: torch.Tensor, wide: bool) -> list[tuple[torch.Tensor, int]]:
    """int8 operands and their bit weights: [(x, 0)] or [(lo, 0), (hi, 7)] (x = 128·hi + lo)."""
    if not wide:
        return [(x.to(torch.int8), 0)]
    return [((x & 127).to(torch.int8), 0), ((x >> LIMB_BITS).to(torch.int8), LIMB_BITS)]


def im2col(x: torch.Tensor) -> torch.Tensor:
    """(H, W, C) int8 -> (H·W, 9·C): the 3×3 zero-padded neighbourhood of every position,
    ordered (di, dj, c)."""
    h, w, c = x.shape
    xp = torch.nn.functional.pad(x, (0, 0, 1, 1, 1, 1))
    cols = torch.stack([xp[di : di + h, dj : dj + w] for di in range(3) for dj in range(3)], 2)
    return cols.reshape(h * w, 9 * c)


def shuffle(x: torch.Tensor) -> torch.Tensor:
    """Depth-to-space of (H, W, 4C) -> (2H, 2W, C), as ``pixel_shuffle`` on (4C, H, W)."""
    h, w, c4 = x.shape
    c = c4 // 4
    return x.view(h, w, c, 2, 2).permute(0, 3, 1, 4, 2).reshape(2 * h, 2 * w, c)


ACC_MAX = 2**31 - 1  # every int32 sum of a layer stays below this (checked when built)


TWO_DIGITS = True  # False: 7-bit weights (|w_q| ≤ 63), one GEMM per activation limb


def w_max() -> int:
    return W_MAX if TWO_DIGITS else DIGIT_MAX


def digits(w_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``w_q = 64·hi + lo`` with −32 ≤ lo ≤ 31 and |hi| ≤ 63 (for |w_q| ≤ 4063)."""
    lo = np.mod(w_q + 32, 64) - 32
    return lo, (w_q - lo) / 64


def weight_block(w_q: np.ndarray, device: torch.device) -> torch.Tensor:
    """(O, K) integer weights -> (K, 2·O) int8: the low digits, then the high digits."""
    lo, hi = digits(w_q) if TWO_DIGITS else (w_q, None)
    block = (np.concatenate([lo, hi], 0) if TWO_DIGITS else lo).T
    return torch.from_numpy(np.ascontiguousarray(block).astype(np.int8)).to(device)


def digit_gemm(a: torch.Tensor, block: torch.Tensor) -> torch.Tensor:
    """(N, K) int8 × a weight block -> (N, O) int32: lo-digit sums + 64 × hi-digit sums."""
    out = int_gemm(a, block)
    if not TWO_DIGITS:
        return out
    o = block.shape[1] // 2
    return out[:, o:].bitwise_left_shift(DIGIT_BITS).add_(out[:, :o])


def _row_exponents(w: np.ndarray) -> np.ndarray:
    """Per row of ``w`` (O, K): the largest ``e`` with ``max|rint(w·2**e)|`` ≤ 63 (``frexp``
    and power-of-two scaling are exact)."""
    top = np.abs(w).max(axis=1)
    _, k = np.frexp(np.where(top > 0, top, 1.0))  # top = f·2**k, 0.5 ≤ f < 1
    e = (w_max().bit_length() - k).astype(np.int64)  # f·2**12 < 4096
    over = np.rint(np.ldexp(top, e)) > w_max()
    e[over] -= 1
    return e


def _fit(w: np.ndarray, b: np.ndarray, in_frac: int, in_bounds: np.ndarray, out_frac: int
         ) -> tuple[np.ndarray, _Requant]:
    """Quantize rows of ``w`` (O, K; inputs on the grid ``in_frac``, |x_k| ≤ in_bounds[k]) to
    7 bits with per-row power-of-two exponents ``e``; the sum of a row lies on the grid
    ``e + in_frac`` and moves to ``out_frac`` by ``((acc + B) << l + 2**(r−1)) >> r`` with
    ``r − l = e + in_frac − out_frac``, r ≥ 1, l ≥ 0. ``e`` is lowered until the row's int32
    bound ``(Σ|w_q|·in_bounds + |B|)·2**l + 2**(r−1)`` ≤ 2**31 − 1 holds (Python integers)."""
    e = _row_exponents(w)
    w_q = np.empty_like(w)
    bq = np.empty(w.shape[0])
    for o in range(w.shape[0]):
        while True:
            w_q[o] = np.rint(np.ldexp(w[o], e[o]))
            bq[o] = np.rint(np.ldexp(b[o], e[o] + in_frac))
            s = int(e[o]) + in_frac - out_frac
            left, right = max(1 - s, 0), max(s, 1)
            lo, hi = digits(w_q[o]) if TWO_DIGITS else (w_q[o], np.zeros_like(w_q[o]))
            total = (int((np.abs(lo) + 64 * np.abs(hi)) @ in_bounds) + int(abs(bq[o]))) * 2**left
            if np.abs(w_q[o]).max() <= w_max() and total + 2 ** (right - 1) <= ACC_MAX:
                break
            e[o] -= 1
            if e[o] < -200:
                raise LcodecError("the weights are out of range for the exact synthesis")
    s = e + in_frac - out_frac
    return w_q, _Requant(bq, np.maximum(1 - s, 0), np.maximum(s, 1))


class _Requant:
    """``((acc + B) << l + 2**(r−1)) >> r`` per output channel, in place on int32 sums."""

    def __init__(self, bias: np.ndarray, left: np.ndarray, right: np.ndarray) -> None:
        self.bias = torch.from_numpy(bias.astype(np.int32))
        self.left = torch.from_numpy(left.astype(np.int32)) if left.any() else None
        self.right = torch.from_numpy(right.astype(np.int32))
        self.half = torch.from_numpy(np.ldexp(1.0, right - 1).astype(np.int32))

    def to(self, device: torch.device) -> _Requant:
        for k in ("bias", "left", "right", "half"):
            if getattr(self, k) is not None:
                setattr(self, k, getattr(self, k).to(device))
        return self

    def __call__(self, acc: torch.Tensor) -> torch.Tensor:
        acc.add_(self.bias)
        if self.left is not None:
            acc.bitwise_left_shift_(self.left)
        return acc.add_(self.half).bitwise_right_shift_(self.right)


class Conv8:
    """A 3×3 convolution (stride 1, zero padding) on channels-last integer inputs made of
    parts (concatenated along channels), each on its own grid: every part's weights are
    scaled by 2**(frac_ref − frac_part) (exact) so that one power-of-two row exponent serves
    the whole row, and the int32 sums of all parts and limbs add up directly."""

    def __init__(self, w: np.ndarray, b: np.ndarray | None, parts: Sequence[tuple[int, Grid]],
                 out: Grid | None, relu: bool, device: torch.device) -> None:
        """``w`` (O, C, 3, 3) float64; ``parts``: (channels, grid) in input order; ``out``:
        the output grid (None: the last layers' grid 2**-16, saturated at ±(2**26 − 1));
        ``relu`` clamps at 0 as well."""
        o = w.shape[0]
        b = np.zeros(o) if b is None else b
        out_frac = OUT_FRAC if out is None else out.frac
        ref = max(g.frac for _, g in parts)
        cols, bounds, c0 = [], [], 0
        for c, grid in parts:
            wp = w[:, c0 : c0 + c].transpose(0, 2, 3, 1).reshape(o, 9 * c)  # (di, dj, c)
            cols.append(np.ldexp(wp, ref - grid.frac))
            bounds.append(np.full(9 * c, float(grid.bound)))
            c0 += c
        if c0 != w.shape[1]:
            raise ValueError("the parts do not cover the kernel's input channels")
        w_q, self.requant = _fit(np.concatenate(cols, 1), b, ref, np.concatenate(bounds),
                                 out_frac)
        self.requant.to(device)
        self.parts = []
        k0 = 0
        for c, grid in parts:
            self.parts.append((weight_block(w_q[:, k0 : k0 + 9 * c], device), grid.wide))
            k0 += 9 * c
        bound = OUT_MAX if out is None else out.bound
        self.lo, self.hi = (0 if relu else -bound), bound
        self.dtype = torch.int32 if out is None else torch.int16

    def __call__(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Parts (H, W, C_p) int16 -> (H, W, O) int16 (int32 for the last layers)."""
        h, w = xs[0].shape[:2]
        acc = None
        for x, (wt, wide) in zip(xs, self.parts, strict=True):
            for limb, bits in limbs(x, wide):
                part = digit_gemm(im2col(limb), wt)
                if bits:
                    part.bitwise_left_shift_(bits)
                acc = part if acc is None else acc.add_(part)
        self.requant(acc).clamp_(self.lo, self.hi)
        return acc.to(self.dtype).view(h, w, -1)


class IGDN8:
    """Inverse GDN ``y = x · (β + Γ|x|)``: the normaliser from one GEMM per limb of |x|
    (Γ ≥ 0, rows as the convolutions'), held on the grid ``2**-norm_frac`` (|n| < 2**16);
    the product (|x·n| < 2**30) rounded to ``out``."""

    def __init__(self, gamma: np.ndarray, beta: np.ndarray, inp: Grid, norm_frac: int,
                 out: Grid, device: torch.device) -> None:
        c = gamma.shape[1]
        g_q, self.norm = _fit(np.abs(gamma), np.abs(beta), inp.frac,
                              np.full(c, float(inp.bound)), norm_frac)
        self.norm.to(device)
        self.gamma = weight_block(g_q, device)
        self.wide = inp.wide
        self.shift = inp.frac + norm_frac - out.frac
        if self.shift < 1:
            raise LcodecError("an IGDN grid is out of range for the exact synthesis")
        self.bound = out.bound

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w, c = x.shape
        flat = x.reshape(h * w, c)
        acc = None
        for limb, bits in limbs(flat.abs(), self.wide):
            part = digit_gemm(limb, self.gamma)
            if bits:
                part.bitwise_left_shift_(bits)
            acc = part if acc is None else acc.add_(part)
        norm = self.norm(acc).clamp_(0, NORM_MAX)
        y = norm.mul_(flat).add_(1 << (self.shift - 1)).bitwise_right_shift_(self.shift)
        return y.clamp_(-self.bound, self.bound).to(torch.int16).view(h, w, c)


def norm_frac(largest: float, headroom: float = 1.5) -> int:
    """The IGDN normaliser's grid: the finest on which ``headroom · largest`` fits 16 bits."""
    return math.floor(math.log2(NORM_MAX / max(largest * headroom, 2.0**-60)))


WIDE: tuple[str, ...] = ("y.f8", "y.f4", "y.in2", "y.f2", "c.fuse2")
SHARED = (("c.x8", "y.f8"), ("c.x4", "y.f4"), ("c.x2", "y.f2"))  # the fuse convs' inputs


def tensor_names(refine: int) -> tuple[str, ...]:
    """The activation tensors a grid spec names, in its byte order."""
    luma = ["y.in8", "y.norm8", "y.f8", "y.in4", "y.norm4", "y.f4", "y.in2", "y.norm2", "y.f2"]
    luma += [f"y.r{i}" for i in range(refine)]
    chroma = ["c.in8", "c.norm8", "c.x8", "c.fuse8", "c.in4", "c.norm4", "c.x4", "c.fuse4",
              "c.in2", "c.norm2", "c.x2", "c.fuse2"]
    return tuple(luma + chroma)


@dataclass(frozen=True)
class GridSpec:
    """One byte per tensor of :func:`tensor_names`: a :class:`Grid` (norms: bit 7 clear,
    bits 0-6 = frac + 32)."""

    codes: bytes

    def grid(self, names: tuple[str, ...], name: str) -> Grid:
        return Grid.decode(self.codes[names.index(name)])

    @classmethod
    def from_largest(cls, names: tuple[str, ...], largest: dict[str, float]) -> GridSpec:
        """The finest grids that hold 1.5× the largest values. A fuse conv's two inputs (the
        chroma IGDN output and the luma feature) get one grid, the coarser of the two at
        the wider width: with unequal grids one part's weights would lose the difference."""
        grids = {n: Grid(norm_frac(largest[n])) if ".norm" in n
                 else Grid.fit(largest[n], n in WIDE) for n in names}
        for c, y in SHARED:
            wide = grids[c].wide or grids[y].wide
            frac = min(Grid.fit(largest[c], wide).frac, Grid.fit(largest[y], wide).frac)
            grids[c] = grids[y] = Grid(frac, wide)
        return cls(bytes(grids[n].code() for n in names))


class ExactSynthesis8:
    """The EXACT_INT_V2 decoder of one loaded ``cwic2`` network; layers are built per
    (grid spec, knob) and cached."""

    def __init__(self, net: torch.nn.Module) -> None:
        cfg = net.cfg
        self.cfg = cfg
        self.device = next(net.parameters()).device
        self._p = {k: v.detach().cpu().double().numpy() for k, v in net.state_dict().items()
                   if k.startswith(("luma_dec.", "chroma_dec.", "log_gain_dec"))}
        self.names = tensor_names(cfg.refine)
        self.half = cfg.levels // 2
        self.layers = lru_cache(maxsize=8)(self._build)

    def _build(self, spec: GridSpec, knob_thousandths: int) -> dict:
        p, cfg, dev = self._p, self.cfg, self.device
        g = {n: spec.grid(self.names, n) for n in self.names}
        sym = Grid(0)  # the symbols: integers |s| ≤ T/2

        def conv(name: str, parts, out, relu: bool = False, w=None) -> Conv8:
            return Conv8(p[f"{name}.weight"] if w is None else w, p.get(f"{name}.bias"),
                         parts, out, relu, dev)

        def igdn(name: str, inp: str, norm: str, out: str) -> IGDN8:
            return IGDN8(p[f"{name}.gamma"], p[f"{name}.beta"], g[inp], g[norm].frac, g[out],
                         dev)

        gains = exact_gains(p["log_gain_dec"], knob_thousandths)
        n = cfg.n_luma
        c1, c2, c3 = cfg.widths
        d1, d2, d3 = cfg.chroma_widths
        wy = p["luma_dec.s8.0.conv.weight"] * gains[None, :n, None, None]
        wc = p["chroma_dec.s8.0.conv.weight"] * gains[None, n:, None, None]
        L = {
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
        return L

    def _symbols(self, idx: torch.Tensor, qi: torch.Tensor, channels: int) -> torch.Tensor:
        m = code_mask(qi, channels, self.cfg.imp_levels)[0]
        return ((idx[0] - self.half) * m).permute(1, 2, 0).to(torch.int16).contiguous()

    @torch.no_grad()
    def pixels(self, qi: torch.Tensor, luma: torch.Tensor, chroma: torch.Tensor,
               knob: float, spec: GridSpec, gray: bool = False) -> torch.Tensor:
        """Codes of one window -> (16h, 16w, 3) uint8 RGB, as ExactSynthesis.pixels."""
        L = self.layers(spec, round(knob * KNOB_SCALE))
        cfg = self.cfg
        f8 = L["y8n"](shuffle(L["y8"]([self._symbols(luma, qi, cfg.n_luma)])))
        f4 = L["y4n"](shuffle(L["y4"]([f8])))
        f2 = L["y2n"](shuffle(L["y2"]([f4])))
        bound = L["f2_bound"]
        for a, b in L["refine"]:
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


@torch.no_grad()
def calibrate(net: torch.nn.Module, codes) -> GridSpec:
    """The grid spec for these codes (an ``Encoded``): the largest magnitude of every tensor
    of :func:`tensor_names` in the float decoder (headroom 1.5×)."""
    from lcodec.nets.cwic2 import GDN

    largest: dict[str, float] = {}

    def seen(name: str, t: torch.Tensor) -> None:
        largest[name] = max(largest.get(name, 0.0), float(t.abs().max()))

    hooks = []

    def on(module, fn) -> None:
        hooks.append(module.register_forward_hook(fn))

    def gdn_hook(prefix: str, level: str, out_name: str):
        def fn(m: GDN, inp, out) -> None:
            x = inp[0].float()
            ch = x.shape[1]
            norm = torch.nn.functional.conv2d(x.abs(), m.gamma.abs().view(ch, ch, 1, 1),
                                              m.beta.abs())
            seen(f"{prefix}.in{level}", x)
            seen(f"{prefix}.norm{level}", norm)
            seen(out_name, out)
        return fn

    ld, cd = net.luma_dec, net.chroma_dec
    on(ld.s8[1], gdn_hook("y", "8", "y.f8"))
    on(ld.s4[1], gdn_hook("y", "4", "y.f4"))
    on(ld.s2[1], gdn_hook("y", "2", "y.f2"))
    for i, block in enumerate(ld.refine):
        on(block.a, lambda m, i_, o, i=i: seen(f"y.r{i}", o.clamp_min(0)))
        on(block, lambda m, i_, o: seen("y.f2", o))
    on(cd.s8[1], gdn_hook("c", "8", "c.x8"))
    on(cd.s4[1], gdn_hook("c", "4", "c.x4"))
    on(cd.s2[1], gdn_hook("c", "2", "c.x2"))
    for level in ("8", "4", "2"):
        on(getattr(cd, f"fuse{level}"), lambda m, i_, o, lv=level: seen(f"c.fuse{lv}", o))
    try:
        net.decompress(codes)
    finally:
        for h in hooks:
            h.remove()
    return GridSpec.from_largest(tensor_names(net.cfg.refine), largest)


def main(argv: list[str]) -> int:
    from PIL import Image

    from lcodec import models
    from lcodec.color import rgb_to_ycbcr, ycbcr_to_rgb

    global WIDE, TWO_DIGITS
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    lm = models.load(models.find("v2-mse-fffc224be2680914"))
    net = lm.net

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        return 10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))

    configs = {
        "A: 3 wide, 13-bit w": (("y.f4", "y.in2", "y.f2"), True),
        "B: 5 wide, 13-bit w": (("y.f8", "y.f4", "y.in2", "y.f2", "c.fuse2"), True),
        "C: 5 wide, 7-bit w": (("y.f8", "y.f4", "y.in2", "y.f2", "c.fuse2"), False),
        "D: all wide, 13-bit w": (tuple(n for n in tensor_names(net.cfg.refine)
                                        if ".norm" not in n), True),
    }
    images = argv or [f"../shared/data/kodak/{n}.png" for n in ("kodim05", "kodim15", "kodim23")]
    res: dict[str, list] = {k: [] for k in configs}
    float_s = []
    for path in images:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
        y_y, y_c, lg = net.analyse(rgb_to_ycbcr(x))
        for knob in (-0.6, 0.0, 0.7):
            enc = net.quantize(y_y, y_c, lg, knob)
            t0 = time.process_time()
            ycbcr_to_rgb(net.decompress(enc))
            float_s.append(time.process_time() - t0)
            ref = psnr(lm.exact.pixels(enc.qi, enc.luma, enc.chroma, knob).numpy(), rgb)
            for k, (wide, two) in configs.items():
                WIDE, TWO_DIGITS = wide, two
                e8, spec = ExactSynthesis8(net), calibrate(net, enc)
                e8.pixels(enc.qi, enc.luma, enc.chroma, knob, spec)  # builds the layers
                t0 = time.process_time()
                v2 = e8.pixels(enc.qi, enc.luma, enc.chroma, knob, spec).numpy()
                res[k].append((psnr(v2, rgb) - ref, time.process_time() - t0))
            print(path, knob, {k: f"{v[-1][0]:+.3f} dB {v[-1][1]:.2f} s" for k, v in res.items()},
                  f"float {float_s[-1]:.2f} s", flush=True)
    print(f"float decoder networks: {np.mean(float_s):.2f} CPU s per image")
    for k, v in res.items():
        d, t = np.array([a for a, _ in v]), np.array([b for _, b in v])
        print(f"{k}: PSNR vs EXACT_INT_V1 mean {d.mean():+.3f} dB, worst {d.min():+.3f} dB; "
              f"{t.mean():.2f} CPU s ({t.mean() / np.mean(float_s):.2f}x the float decoder)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
