"""The layers of synthesis EXACT_INT_V2: integers on 8-bit operands, exact sums in any order.

Activations are integers ``a`` on a per-tensor power-of-two grid (``a · 2**-frac``, a
:class:`Grid`), *narrow* (|a| ≤ 127: one 8-bit operand) or *wide* (|a| ≤ 16383: two limbs
``a = 128·hi + lo``, lo in 0…127, hi in −128…127). Weights are integers per output channel
(row) with a power-of-two row exponent (``w ≈ w_q · 2**-e``): 7-bit rows (|w_q| ≤ 63, one
digit) or 13-bit rows (|w_q| ≤ 4063, two digits ``w_q = 64·hi + lo``, |hi| ≤ 63,
−32 ≤ lo ≤ 31); which layers get 13 bits is part of the synthesis.

A 3×3 convolution is nine GEMMs (one per tap, on views of the padded input) per input part
and activation limb, against all weight digits. What makes every result the same integer
everywhere (docs/format.md, "The same layers on an AVX2 CPU"):

* every GEMM operand is an int8 value and every sum of products an integer below
  128 · 63 · K ≤ 128 · 63 · 2048 < 2**24 in magnitude. Two backends compute them, with the
  same results: float32 GEMMs on those values (numpy's BLAS), which are exact because
  float32 holds every such integer: in any order, blocking, FMA use or thread count, the
  result is the same integer; or int8 GEMMs with int32 sums (``torch._int_mm``, where torch
  is loaded anyway and the CPU has fast int8 dot products, AVX-512) (:func:`gemm_backend`);
* digit and limb sums combine by shifts and adds in int32, and requantize per row by
  ``((acc + B) << l + 2**(r−1)) >> r`` (round half up, arithmetic shift); when a layer is
  built each row's exponent is lowered until the bound of every such int32 value holds
  (Python integers), so nothing overflows;
* the IGDN normaliser is one GEMM of |x| against Γ, held on a 16-bit grid; its product with
  x is below 2**30.

Tensors are numpy arrays, channels-last, (H, W, C), so a GEMM's rows are positions; nothing
here needs torch (a decoder runs without it). Weights are derived from the float weights with
exact float64 operations (``ldexp``, ``frexp``) and ``rint``.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from lcodec.errors import LicError

DIGIT_MAX = 63  # |a weight digit|
DIGIT_BITS = 6
W_MAX = DIGIT_MAX * 64 + 31  # 4063: |w_q| for which both digits stay within ±63 / −32…31
K_MAX = 2048  # products per GEMM sum: 128 · 63 · 2048 < 2**24
NARROW_MAX = 127
WIDE_MAX = 128 * 127 + 127  # 16383
LIMB_BITS = 7
NORM_MAX = 2**16 - 1  # an IGDN normaliser: |x·n| ≤ 16383·(2**16 − 1) < 2**30
OUT_FRAC = 16  # the last layers' output grid (the colour conversion's input)
OUT_MAX = 2**26 - 1
ACC_MAX = 2**31 - 1  # every int32 value a layer computes stays within ±ACC_MAX
SHIFT_MAX = 30  # largest shift a requantization may use
FRAC_MIN, FRAC_MAX = -32, 95  # the grids one byte can name
THREE_ROW_MAX_O = 64  # int8 3×3 convs with at most this many outputs: three row GEMMs
NINE_VIEW_MAX_O = 16  # float32 3×3 convs with at most this many outputs: nine GEMMs on views

GEMM_ENV = "LCODEC_EXACT_GEMM"  # int8 | float32: force a backend (tests, measurements)


@functools.cache
def gemm_backend() -> str:
    """``"int8"`` (``torch._int_mm``) where torch is already loaded, the CPU has AVX-512 and
    its int8 GEMM gives the exact sums of operands at the limits (checked once), else
    ``"float32"`` (numpy; a decoder that has not loaded torch never loads it for this; on
    AVX2 CPUs oneDNN has no fast int8 kernel: 25× slower than float32 there). Both give the
    same integers; ``LCODEC_EXACT_GEMM`` overrides the choice."""
    forced = os.environ.get(GEMM_ENV)
    if forced in ("int8", "float32"):
        return forced
    torch = sys.modules.get("torch")
    if torch is None or not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return "float32"
    # operands at the limits: activation limbs ±127/−128, weight digits ±63, K = K_MAX
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (64, K_MAX)).astype(np.int8)
    a[:8] = 127
    a[8:16] = -128
    b = rng.integers(-DIGIT_MAX, DIGIT_MAX + 1, (K_MAX, 16)).astype(np.int8)
    b[:, :4] = DIGIT_MAX
    b[:, 4:8] = -DIGIT_MAX
    try:
        ok = np.array_equal(_int8_mm(a, b), a.astype(np.int64) @ b.astype(np.int64))
    except RuntimeError:
        ok = False
    return "int8" if ok else "float32"


def _int8_mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, K) × (K, O) int8 -> the (N, O) int32 sums, by torch's int8 GEMM (no copies)."""
    import torch

    return torch._int_mm(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def operand(x: np.ndarray, backend: str) -> np.ndarray:
    """Integer values of int8 range as the backend's GEMM operand dtype."""
    return x.astype(np.int8 if backend == "int8" else np.float32)


def int_gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, K) × (K, O) operands of int8 values (activation limbs, weight digits; int8 or
    float32 arrays) -> the exact (N, O) int32 sums."""
    if a.dtype == np.int8:
        return _int8_mm(np.ascontiguousarray(a), b)
    return np.matmul(a, b).astype(np.int32)


@dataclass(frozen=True)
class Grid:
    """An activation tensor's integer grid: value = a · 2**-frac, |a| ≤ bound."""

    frac: int
    wide: bool = False

    @property
    def bound(self) -> int:
        return WIDE_MAX if self.wide else NARROW_MAX

    def code(self) -> int:
        """One byte: bit 7 = wide, bits 0-6 = frac + 32."""
        return (0x80 if self.wide else 0) | (self.frac - FRAC_MIN)

    @classmethod
    def decode(cls, byte: int) -> Grid:
        return cls((byte & 0x7F) + FRAC_MIN, bool(byte & 0x80))

    @classmethod
    def fit(cls, largest: float, wide: bool, headroom: float = 1.5) -> Grid:
        """The finest grid on which ``headroom · largest`` still fits."""
        return cls(_finest_frac(WIDE_MAX if wide else NARROW_MAX, largest, headroom), wide)


def _finest_frac(bound: int, largest: float, headroom: float) -> int:
    """The largest nameable ``frac`` with ``headroom · largest · 2**frac`` ≤ ``bound``."""
    frac = math.floor(math.log2(bound / max(largest * headroom, 2.0**-60)))
    return min(max(frac, FRAC_MIN), FRAC_MAX)


def norm_frac(largest: float, headroom: float = 1.5) -> int:
    """The IGDN normaliser's grid: the finest on which ``headroom · largest`` fits 16 bits."""
    return _finest_frac(NORM_MAX, largest, headroom)


def limbs(x: np.ndarray, wide: bool, backend: str) -> list[tuple[np.ndarray, int]]:
    """GEMM operands and their bit weights: [(x, 0)], or for a wide array [(lo, 0),
    (hi, 7)] with x = 128·hi + lo, lo in 0…127 (arithmetic shift)."""
    if not wide:
        return [(operand(x, backend), 0)]
    return [(operand(x & 127, backend), 0), (operand(x >> LIMB_BITS, backend), LIMB_BITS)]


def limb_sum(x: np.ndarray, wide: bool, product, backend: str,
             acc: np.ndarray | None = None) -> np.ndarray:
    """``acc`` + Σ over the limbs of ``x`` of ``product(limb) << bits`` (int32)."""
    for limb, bits in limbs(x, wide, backend):
        part = product(limb)
        if bits:
            np.left_shift(part, bits, out=part)
        if acc is None:
            acc = part
        else:
            acc += part
    return acc


def _padded(x: np.ndarray, extra_rows: int = 0) -> np.ndarray:
    """(H, W, C) zero-padded by one position on every side (and ``extra_rows`` more rows at
    the bottom): (H + 2 + extra_rows, W + 2, C)."""
    h, w, c = x.shape
    out = np.zeros((h + 2 + extra_rows, w + 2, c), x.dtype)
    out[1 : h + 1, 1 : w + 1] = x
    return out


def conv3x3(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """(H, W, C) limb values × (9C, O) weight digits, ordered (tap, c) -> (H, W, O) int32:
    the zero-padded 3×3 convolution. int8 operands: one GEMM over an im2col copy ((H·W,
    9C)), or for few outputs three GEMMs, one per tap row, on views of a copy of the three
    column shifts. float32 operands: those three GEMMs, or for very few outputs nine GEMMs on
    views of the padded input, flattened with row length ``wp = W + 2`` (tap (di, dj) reads
    the ``H·wp`` rows from ``di·wp + dj``; the two extra columns per row are dropped): no
    copies. Each GEMM's sums and their running total stay below 2**24 (the bound of all 9·C
    products), so float32 accumulation is exact."""
    h, w, c = x.shape
    o = taps.shape[-1]
    if x.dtype != np.int8 and o <= NINE_VIEW_MAX_O:
        wp = w + 2
        flat = _padded(x, extra_rows=1).reshape(-1, c)  # one spare row for the last tap
        n = h * wp
        acc = np.matmul(flat[:n], taps[:c])
        part = np.empty_like(acc)
        for t in range(1, 9):
            off = (t // 3) * wp + t % 3
            acc += np.matmul(flat[off : off + n], taps[t * c : (t + 1) * c], out=part)
        return acc.reshape(h, wp, o)[:, :w].astype(np.int32)
    xp = _padded(x)
    s0, s1, s2 = xp.strides
    if x.dtype == np.int8 and o > THREE_ROW_MAX_O:  # cols[i, j, di, dj] = xp[i + di, j + dj]
        cols = as_strided(xp, (h, w, 3, 3, c), (s0, s1, s0, s1, s2)).reshape(h * w, 9 * c)
        return _int8_mm(cols, taps).reshape(h, w, o)
    # copy the three column shifts only; each tap row is then a view
    cols = as_strided(xp, (h + 2, w, 3, c), (s0, s1, s1, s2)).reshape((h + 2) * w, 3 * c)
    rows = taps.reshape(3, 3 * c, o)
    if x.dtype == np.int8:
        acc = _int8_mm(cols[: h * w], rows[0])
        for di in (1, 2):
            acc += _int8_mm(cols[di * w : di * w + h * w], rows[di])
        return acc.reshape(h, w, o)
    acc = np.matmul(cols[: h * w], rows[0])
    part = np.empty_like(acc)
    for di in (1, 2):
        acc += np.matmul(cols[di * w : di * w + h * w], rows[di], out=part)
    return acc.astype(np.int32).reshape(h, w, o)


def shuffle(x: np.ndarray) -> np.ndarray:
    """Depth-to-space of (H, W, 4C) -> (2H, 2W, C), as ``pixel_shuffle`` on (4C, H, W)."""
    h, w, c4 = x.shape
    c = c4 // 4
    return x.reshape(h, w, c, 2, 2).transpose(0, 3, 1, 4, 2).reshape(2 * h, 2 * w, c)


def digits(w_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``w_q = 64·hi + lo`` with −32 ≤ lo ≤ 31 and |hi| ≤ 63 (for |w_q| ≤ 4063)."""
    lo = np.mod(w_q + 32, 64) - 32
    return lo, (w_q - lo) / 64


@dataclass(frozen=True)
class WeightBlock:
    """(O, K) integer weights as GEMM operands of the backend's dtype: (K, O) single digits
    (7-bit weights, |w_q| ≤ 63) or (K, 2·O), the low digits then the high digits (13-bit
    weights)."""

    block: np.ndarray
    two_digits: bool
    backend: str

    @classmethod
    def of(cls, w_q: np.ndarray, two_digits: bool) -> WeightBlock:
        """``w_q`` (O, K), for a 3×3 convolution ordered (tap, c): a (K, O') block (O' = O
        or 2·O)."""
        backend = gemm_backend()
        block = np.concatenate(digits(w_q), 0).T if two_digits else w_q.T  # (K, O')
        return cls(operand(np.ascontiguousarray(block), backend), two_digits, backend)

    def combine(self, out: np.ndarray) -> np.ndarray:
        """Digit sums (…, O') int32 -> (…, O): lo + 64·hi for two digits."""
        if not self.two_digits:
            return out
        o = out.shape[-1] // 2
        return (out[..., o:] << DIGIT_BITS) + out[..., :o]

    def gemm(self, a: np.ndarray) -> np.ndarray:
        """(N, K) limb values × these weights -> (N, O) int32."""
        return self.combine(int_gemm(a, self.block))

    def conv(self, x: np.ndarray) -> np.ndarray:
        """(H, W, C) limb values × these 3×3 weights -> (H, W, O) int32."""
        return self.combine(conv3x3(x, self.block))


def _row_exponents(w: np.ndarray, w_max: int) -> np.ndarray:
    """Per row of ``w`` (O, K): the largest ``e`` with ``max|rint(w·2**e)|`` ≤ ``w_max``."""
    top = np.abs(w).max(axis=1)
    _, k = np.frexp(np.where(top > 0, top, 1.0))  # top = f·2**k, 0.5 ≤ f < 1
    e = (w_max.bit_length() - k).astype(np.int64)  # f·2**bits < 2**bits
    over = np.rint(np.ldexp(top, e)) > w_max
    e[over] -= 1
    return e


class Requant:
    """``((acc + B) << l + 2**(r−1)) >> r`` per output channel, in place on int32 sums."""

    def __init__(self, bias: np.ndarray, left: np.ndarray, right: np.ndarray) -> None:
        self.bias = bias.astype(np.int32)
        self.left = left.astype(np.int32) if left.any() else None
        self.right = right.astype(np.int32)
        self.half = np.left_shift(np.int64(1), right.astype(np.int64) - 1).astype(np.int32)

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        acc += self.bias
        if self.left is not None:
            np.left_shift(acc, self.left, out=acc)
        acc += self.half
        return np.right_shift(acc, self.right, out=acc)


def fit_rows(w: np.ndarray, b: np.ndarray, in_frac: int, in_bounds: np.ndarray,
             out_frac: int, two_digits: bool) -> tuple[np.ndarray, Requant]:
    """Quantize rows of ``w`` (O, K; inputs on the grid ``in_frac``, |x_k| ≤ in_bounds[k]) to
    13 bits (two digits) or 7 bits with per-row power-of-two exponents ``e``. A row's sum
    lies on the grid ``e + in_frac`` and moves to ``out_frac`` by the :class:`Requant` with
    ``r − l = e + in_frac − out_frac``, r ≥ 1, l ≥ 0. ``e`` is lowered until the row's int32
    bound ``(Σ|lo|·x + 64·Σ|hi|·x + |B|)·2**l + 2**(r−1)`` ≤ ``ACC_MAX`` holds (Python
    integers) with ``l, r ≤ SHIFT_MAX``; grids that no exponent fits are refused."""
    w_max = W_MAX if two_digits else DIGIT_MAX
    e = _row_exponents(w, w_max)
    w_q = np.empty_like(w)
    bq = np.empty(w.shape[0])
    for o in range(w.shape[0]):
        while True:
            w_q[o] = np.rint(np.ldexp(w[o], e[o]))
            bq[o] = np.rint(np.ldexp(b[o], e[o] + in_frac))
            s = int(e[o]) + in_frac - out_frac
            left, right = max(1 - s, 0), max(s, 1)
            lo, hi = digits(w_q[o]) if two_digits else (w_q[o], np.zeros_like(w_q[o]))
            total = (int((np.abs(lo) + 64 * np.abs(hi)) @ in_bounds) + int(abs(bq[o]))) << left
            if (np.abs(w_q[o]).max() <= w_max and left <= SHIFT_MAX and right <= SHIFT_MAX
                    and total + (1 << (right - 1)) <= ACC_MAX):
                break
            e[o] -= 1
            if e[o] < -200 or left > SHIFT_MAX:
                raise LicError("the synthesis grids are out of range for this model")
    s = e + in_frac - out_frac
    return w_q, Requant(bq, np.maximum(1 - s, 0), np.maximum(s, 1))


class Conv8:
    """A 3×3 convolution (stride 1, zero padding) on channels-last integer inputs made of
    parts (concatenated along channels), each on its own grid: a part's weights are scaled by
    2**(frac_ref − frac_part) (exact) so that one power-of-two row exponent serves the whole
    row, and the int32 sums of all parts and limbs add up directly."""

    def __init__(self, w: np.ndarray, b: np.ndarray | None, parts: Sequence[tuple[int, Grid]],
                 out: Grid | None, relu: bool, two_digits: bool) -> None:
        """``w`` (O, C, 3, 3) float64; ``parts``: (channels, grid) in input order; ``out``:
        the output grid (None: the last layers' grid 2**-16, saturated at ±(2**26 − 1));
        ``relu`` clamps at 0 as well; ``two_digits``: 13-bit weights, else 7-bit."""
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
        if 9 * c0 > K_MAX:
            raise ValueError(f"a conv of {9 * c0} products per sum is over {K_MAX}")
        w_q, self.requant = fit_rows(np.concatenate(cols, 1), b, ref, np.concatenate(bounds),
                                     out_frac, two_digits)
        self.parts = []
        k0 = 0
        for c, grid in parts:
            self.parts.append((WeightBlock.of(w_q[:, k0 : k0 + 9 * c], two_digits), grid.wide))
            k0 += 9 * c
        bound = OUT_MAX if out is None else out.bound
        self.lo, self.hi = (0 if relu else -bound), bound
        self.dtype = np.int32 if out is None else np.int16

    def __call__(self, xs: Sequence[np.ndarray]) -> np.ndarray:
        """Parts (H, W, C_p) int16 -> (H, W, O) int16 (int32 for the last layers)."""
        acc = None
        for x, (wt, wide) in zip(xs, self.parts, strict=True):
            acc = limb_sum(x, wide, wt.conv, wt.backend, acc)
        acc = np.clip(self.requant(acc), self.lo, self.hi, out=acc)
        return acc.astype(self.dtype, copy=False)


class IGDN8:
    """Inverse GDN ``y = x · (β + Γ|x|)``: the normaliser from one GEMM per limb of |x|
    (Γ ≥ 0, rows as the convolutions'), held on the grid ``2**-norm_frac`` (0 ≤ n < 2**16);
    the product (|x·n| < 2**30) rounded half up to ``out``."""

    def __init__(self, gamma: np.ndarray, beta: np.ndarray, inp: Grid, norm_frac: int,
                 out: Grid, two_digits: bool) -> None:
        c = gamma.shape[1]
        g_q, self.norm = fit_rows(np.abs(gamma), np.abs(beta), inp.frac,
                                  np.full(c, float(inp.bound)), norm_frac, two_digits)
        self.gamma = WeightBlock.of(g_q, two_digits)
        self.wide = inp.wide
        self.shift = inp.frac + norm_frac - out.frac
        if not 1 <= self.shift <= SHIFT_MAX:
            raise LicError("the synthesis grids are out of range for this model")
        self.bound = out.bound

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h, w, c = x.shape
        flat = x.reshape(h * w, c)
        norm = self.norm(limb_sum(np.abs(flat), self.wide, self.gamma.gemm, self.gamma.backend))
        y = np.clip(norm, 0, NORM_MAX, out=norm)
        y *= flat
        y += 1 << (self.shift - 1)
        np.right_shift(y, self.shift, out=y)
        return np.clip(y, -self.bound, self.bound, out=y).astype(np.int16).reshape(h, w, c)
