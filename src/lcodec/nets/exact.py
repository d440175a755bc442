"""Integer-exact layers: fixed-point weights and activations whose sums float64 holds exactly.

Every tensor here holds integers. An activation ``a`` on the grid of ``frac`` fractional bits
stands for the real number ``a · 2**-frac``; a weight row ``w_q = rint(w · 2**e)`` stands for
``w`` with the row's power-of-two exponent ``e``. Three rules make every result the same
integer on every CPU, GPU, BLAS, thread count and batch layout (docs/format.md, "Exact
synthesis"):

* sums of products are computed by plain float64 GEMMs (``torch.addmm``/``matmul``: no
  convolution kernel, so no Winograd, FFT or TF32) over operands bounded so that every
  product and every partial sum, in any order, is an integer of magnitude < 2**53: float64
  represents all of them, so the result is exact whatever order the GEMM sums in (the bound
  is checked when a layer is built; a reduction that could exceed it is split into groups of
  taps whose sums are added in int64);
* everything else (bias, requantization, the IGDN product, saturation) is int64 arithmetic:
  multiply, add and rounding shift ``(v + 2**(s-1)) >> s`` (round half up);
* weights are derived from the float weights with float64 operations that are exact
  (multiplying an fp16/fp32 value by a power of two) and round-half-even (``numpy.rint``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lcodec.errors import LcodecError

W_BITS = 16  # signed weights: |w_q| ≤ 2**15 - 1
W_MAX = 2 ** (W_BITS - 1) - 1
ACT_FRAC = 16  # activations: real value = a · 2**-16
ACT_MAX = 2**27 - 1  # |a| ≤ ACT_MAX (real ±2048), saturated after every layer
NORM_FRAC = 16  # IGDN normaliser: real value = n · 2**-16
NORM_MAX = 2**35 - 1  # so that |a · n| < 2**62
EXACT = 2**53  # float64 holds every integer of smaller magnitude
_BIAS_LIMIT = 2**61  # |bias_q| < 2**61: int64 sums with accumulators (< 2**53) cannot overflow
_MAX_LEFT_SHIFT = 20  # left shifts are applied to values pre-clamped to ±2**40


def row_exponents(w: np.ndarray, bits: int = W_BITS) -> np.ndarray:
    """Per row of ``w`` (float64, (O, K)): the largest ``e`` with ``max|rint(w·2**e)|`` ≤
    ``2**(bits-1) - 1`` (0 for an all-zero row). ``frexp`` and power-of-two scaling are exact."""
    top = 2 ** (bits - 1) - 1
    mx = np.abs(w).max(axis=1)
    _, k = np.frexp(mx)  # mx = m·2**k, 0.5 ≤ m < 1
    e = (bits - 1 - k).astype(np.int64)
    over = np.rint(np.ldexp(mx, e)) > top  # m·2**(bits-1) rounded up to 2**(bits-1)
    e[over] -= 1
    e[mx == 0] = 0
    return e


def limit_exponents(e: np.ndarray, values: np.ndarray, frac: int) -> np.ndarray:
    """Lower ``e`` where ``|values|·2**(e + frac)`` would reach ``2**61`` (bias headroom)."""
    _, k = np.frexp(np.abs(values))
    cap = 60 - frac - k  # |v| < 2**k, so |v|·2**(cap + frac) < 2**60
    return np.where(values == 0, e, np.minimum(e, cap)).astype(np.int64)


def scale_round(values: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``rint(values · 2**e)`` (round half to even) as int64; ``e`` broadcasts on axis 0."""
    e = np.asarray(e).reshape(-1, *([1] * (values.ndim - 1)))
    return np.rint(np.ldexp(values, e)).astype(np.int64)


def rescale(v: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``round(v · 2**-shift)``, half up, in int64; a negative shift is an exact left shift
    (after clamping ``v`` to ±2**40, which only matters for values saturated anyway)."""
    right = torch.clamp(shift, min=0)
    left = torch.clamp(-shift, min=0)
    if bool((left > 0).any()):
        v = torch.bitwise_left_shift(torch.clamp(v, -(2**40), 2**40), left)
    half = torch.bitwise_right_shift(torch.bitwise_left_shift(torch.ones_like(right), right), 1)
    return torch.bitwise_right_shift(v + half, right)


def saturate(v: torch.Tensor, bound: int = ACT_MAX) -> torch.Tensor:
    return torch.clamp(v, -bound, bound)


def tap_groups(w_q: np.ndarray, in_max: int) -> list[list[tuple[int, int]]]:
    """Taps (di, dj) of an integer kernel (kh, kw, O, C) grouped so that within a group every
    output column's ``Σ|w_q|·in_max`` is < 2**53 (one group for every shipped layer)."""
    kh, kw = w_q.shape[:2]
    per_tap = np.abs(w_q).sum(axis=3).astype(object) * in_max  # (kh, kw, O), exact ints
    groups: list[list[tuple[int, int]]] = []
    load = None
    for di in range(kh):
        for dj in range(kw):
            tap = per_tap[di, dj]
            if max(tap, default=0) >= EXACT:
                raise LcodecError("a weight row is too large for the exact synthesis")
            if load is None or max(load + tap) >= EXACT:
                groups.append([])
                load = np.zeros_like(tap)
            groups[-1].append((di, dj))
            load = load + tap
    return groups


@dataclass
class IntConv:
    """A k×k convolution (stride 1, zero padding k//2) on integer activations.

    Input on grid ``in_frac`` with |x| ≤ ``in_max``; output on grid ``ACT_FRAC``, saturated.
    ``weight``: (kh, kw, O, C) float64 integers; ``shift`` (O,) = e + in_frac - ACT_FRAC.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    shift: torch.Tensor
    groups: list[list[tuple[int, int]]]

    @classmethod
    def from_float(cls, w: np.ndarray, b: np.ndarray | None, in_frac: int, in_max: int,
                   device: torch.device) -> IntConv:
        """Quantize a float64 kernel (O, C, kh, kw) and bias (O,) per output channel."""
        o = w.shape[0]
        b = np.zeros(o) if b is None else b
        e = limit_exponents(row_exponents(w.reshape(o, -1)), b, in_frac)
        w_q = scale_round(w, e).transpose(2, 3, 0, 1)  # (kh, kw, O, C)
        shift = e + in_frac - ACT_FRAC
        if shift.min() < -_MAX_LEFT_SHIFT or shift.max() > 62:
            raise LcodecError("the weights are out of range for the exact synthesis")
        return cls(torch.from_numpy(np.ascontiguousarray(w_q, dtype=np.float64)).to(device),
                   torch.from_numpy(scale_round(b, e + in_frac)).to(device),
                   torch.from_numpy(shift).to(device), tap_groups(w_q, in_max))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(C, H, W) int64 -> (O, H, W) int64.

        The input is zero-padded and flattened with row length ``wp = W + kw - 1``; tap
        (di, dj) then reads the contiguous run starting at ``di·wp + dj``, so each tap is one
        GEMM on a view (no copy, no unfold) and the ``kw - 1`` extra columns per row are
        dropped at the end."""
        kh, kw, o, c = self.weight.shape
        _, h, w = x.shape
        wp = w + kw - 1
        xp = F.pad(x.to(torch.float64), (kw // 2, kw - 1 - kw // 2, kh // 2, kh - kh // 2))
        flat = xp.reshape(c, -1)
        n = h * wp
        total = None
        for group in self.groups:
            acc = torch.zeros(o, n, dtype=torch.float64, device=x.device)
            for di, dj in group:
                off = di * wp + dj
                acc.addmm_(self.weight[di, dj], flat[:, off : off + n])
            acc = acc.to(torch.int64)
            total = acc if total is None else total + acc
        out = total.view(o, h, wp)[:, :, :w] + self.bias.view(o, 1, 1)
        return saturate(rescale(out, self.shift.view(o, 1, 1)))


@dataclass
class IntIGDN:
    """Inverse GDN ``y = x · (β + Γ|x|)`` on activations of grid ``ACT_FRAC``.

    ``gamma``: (O, C) float64 non-negative integers (row exponents ``e``), ``beta`` on grid
    ``e + ACT_FRAC``; the normaliser is requantized to ``NORM_FRAC`` bits, capped at
    ``NORM_MAX``, and the product rounded back to ``ACT_FRAC`` in int64 (|x·n| < 2**62).
    """

    gamma: torch.Tensor
    beta: torch.Tensor
    shift: torch.Tensor

    @classmethod
    def from_float(cls, gamma: np.ndarray, beta: np.ndarray, device: torch.device) -> IntIGDN:
        gamma, beta = np.abs(gamma), np.abs(beta)  # the float GDN uses |Γ| and |β|
        e = limit_exponents(row_exponents(gamma), beta, ACT_FRAC)
        g_q = scale_round(gamma, e)
        if int((g_q.sum(axis=1).astype(object) * ACT_MAX).max()) >= EXACT:
            raise LcodecError("a GDN row is too large for the exact synthesis")
        return cls(torch.from_numpy(g_q.astype(np.float64)).to(device),
                   torch.from_numpy(scale_round(beta, e + ACT_FRAC)).to(device),
                   torch.from_numpy(e + ACT_FRAC - NORM_FRAC).to(device))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = x.shape
        flat = x.reshape(c, h * w)
        acc = (self.gamma @ flat.abs().to(torch.float64)).to(torch.int64)
        norm = torch.clamp(rescale(acc + self.beta[:, None], self.shift[:, None]), 0, NORM_MAX)
        y = rescale(flat * norm, torch.tensor(NORM_FRAC, device=x.device))
        return saturate(y).view(c, h, w)


def shuffle(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Depth-to-space of a (C·f², H, W) integer tensor (a permutation, exact)."""
    return F.pixel_shuffle(x[None], factor)[0]


def concat(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat(list(xs), 0)
