"""The layers of synthesis EXACT_INT_V1: fixed-point integers whose sums float64 holds exactly.

Every tensor here holds integers, stored as float64. An activation ``a`` on the grid of
``frac`` fractional bits stands for the real number ``a · 2**-frac``; a weight row
``w_q = rint(w · 2**e)`` stands for ``w`` with the row's power-of-two exponent ``e``. Two
rules make every result the same integer on every CPU, GPU, BLAS, thread count and batch
layout (docs/format.md, "Exact synthesis"):

* sums of products are plain float64 GEMMs (``torch.addmm``/``matmul``: no convolution
  kernel, so no Winograd, FFT or TF32) over operands bounded, when a layer is built, so that
  every product and every partial sum, in any order, is an integer of magnitude < 2**52:
  float64 represents all of them, so the result is exact whatever order, blocking or FMA use
  the GEMM has (a row whose bound would not hold gets fewer weight bits);
* everything else is an elementwise float64 operation whose exact result is representable,
  hence the same under IEEE 754 everywhere: multiplication by a power of two, addition of
  ``1/2``, ``floor`` (requantization ``floor(v · 2**-s + 1/2)``, round half up, for
  |v| < 2**52), products bounded by 2**52 (the IGDN), and clamping (saturation).

Weights are derived from the float weights with float64 operations that are exact
(multiplying an fp16/fp32 value by a power of two) and round-half-even (``numpy.rint``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lcodec.errors import LcodecError

W_BITS = 16  # signed weights: |w_q| ≤ W_MAX
W_MAX = 2 ** (W_BITS - 1) - 1
ACT_FRAC = 16  # activations: real value = a · 2**-16
ACT_MAX = 2**26 - 1  # |a| ≤ ACT_MAX (real ±1024), saturated after every layer
NORM_FRAC = 16  # IGDN normaliser: real value = n · 2**-16
NORM_MAX = 2**26 - 1  # so that |a · n| < 2**52
EXACT = 2**52  # bound on every integer a layer computes (float64 holds up to 2**53 exactly)


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


def scale_round(values: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``rint(values · 2**e)`` (round half to even, exact) in float64; ``e`` per row."""
    e = np.asarray(e).reshape(-1, *([1] * (values.ndim - 1)))
    return np.rint(np.ldexp(values, e))


def fit_rows(w: np.ndarray, b: np.ndarray, in_frac: int, in_max: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantize rows of ``w`` (O, K) and ``b`` (O,) with per-row exponents ``e`` (weights
    ``rint(w·2**e)``, bias ``rint(b·2**(e + in_frac))``), lowering a row's ``e`` until
    ``Σ|w_q|·in_max + |b_q| < 2**52`` holds exactly (Python integers): the bound on every
    partial sum of that row's GEMM. Returns (w_q, b_q, e)."""
    e = row_exponents(w)
    w_q, b_q = scale_round(w, e), scale_round(b, e + in_frac)
    for o in range(w.shape[0]):
        while (int(np.abs(w_q[o]).sum()) * in_max + int(abs(b_q[o])) >= EXACT):
            e[o] -= 1
            w_q[o] = np.rint(np.ldexp(w[o], e[o]))
            b_q[o] = np.rint(np.ldexp(b[o], e[o] + in_frac))
    return w_q, b_q, e


@dataclass
class Requant:
    """``clamp(floor(v · 2**-s + 1/2), ±bound)`` per channel, in place (round half up; for
    s ≤ 0 an exact multiplication, no rounding). Scales and halves are computed once with
    ``numpy.ldexp`` (exact); every step is exact in float64 for |v| < 2**52."""

    scale: torch.Tensor
    half: torch.Tensor
    bound: int

    @classmethod
    def of(cls, shift: np.ndarray, bound: int, device: torch.device) -> Requant:
        shift = np.asarray(shift, dtype=np.int64).reshape(-1)
        half = np.where(shift > 0, 0.5, 0.0)
        return cls(torch.from_numpy(np.ldexp(1.0, -shift)).to(device),
                   torch.from_numpy(half).to(device), bound)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        view = (-1,) + (1,) * (v.dim() - 1)
        v.mul_(self.scale.view(view)).add_(self.half.view(view)).floor_()
        return v.clamp_(-self.bound, self.bound)


@dataclass
class IntConv:
    """A k×k convolution (stride 1, zero padding k//2) on integer activations.

    Input on grid ``in_frac`` with |x| ≤ ``in_max``; output on grid ``ACT_FRAC``, saturated
    at ``ACT_MAX``. ``weight``: (kh, kw, O, C) integers; ``bias`` on grid ``e + in_frac``;
    ``shift`` (O,) = e + in_frac − ACT_FRAC.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    requant: Requant

    @classmethod
    def from_float(cls, w: np.ndarray, b: np.ndarray | None, in_frac: int, in_max: int,
                   device: torch.device) -> IntConv:
        """Quantize a float64 kernel (O, C, kh, kw) and bias (O,) per output channel."""
        o = w.shape[0]
        b = np.zeros(o) if b is None else b
        w_q, b_q, e = fit_rows(w.reshape(o, -1), b, in_frac, in_max)
        w_q = w_q.reshape(w.shape).transpose(2, 3, 0, 1)  # (kh, kw, O, C)
        if np.abs(e).max() > 1000:
            raise LcodecError("the weights are out of range for the exact synthesis")
        return cls(torch.from_numpy(np.ascontiguousarray(w_q)).to(device),
                   torch.from_numpy(b_q).to(device),
                   Requant.of(e + in_frac - ACT_FRAC, ACT_MAX, device))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(C, H, W) -> (O, H, W), float64 integers.

        The input is zero-padded and flattened with row length ``wp = W + kw - 1``; tap
        (di, dj) then reads the contiguous run starting at ``di·wp + dj``, so each tap is one
        GEMM on a view (no copy, no unfold), accumulated onto the bias; the ``kw - 1`` extra
        columns per row are dropped at the end."""
        kh, kw, o, c = self.weight.shape
        _, h, w = x.shape
        wp = w + kw - 1
        xp = F.pad(x, (kw // 2, kw - 1 - kw // 2, kh // 2, kh - kh // 2))
        flat = xp.reshape(c, -1)
        n = h * wp
        acc = self.bias[:, None].expand(o, n).contiguous()
        for di in range(kh):
            for dj in range(kw):
                off = di * wp + dj
                acc.addmm_(self.weight[di, dj], flat[:, off : off + n])
        return self.requant(acc.view(o, h, wp)[:, :, :w])


@dataclass
class IntIGDN:
    """Inverse GDN ``y = x · (β + Γ|x|)`` on activations of grid ``ACT_FRAC``.

    ``gamma``: (O, C) non-negative integers (row exponents ``e``), ``beta`` on grid
    ``e + ACT_FRAC``; the normaliser is requantized to ``NORM_FRAC`` bits and capped at
    ``NORM_MAX``, and the product (|x·n| < 2**52) rounded back to ``ACT_FRAC``.
    """

    gamma: torch.Tensor
    beta: torch.Tensor
    norm: Requant
    out: Requant

    @classmethod
    def from_float(cls, gamma: np.ndarray, beta: np.ndarray, device: torch.device) -> IntIGDN:
        # the float GDN uses |Γ| and |β|
        g_q, b_q, e = fit_rows(np.abs(gamma), np.abs(beta), ACT_FRAC, ACT_MAX)
        return cls(torch.from_numpy(g_q).to(device), torch.from_numpy(b_q).to(device),
                   Requant.of(e + ACT_FRAC - NORM_FRAC, NORM_MAX, device),
                   Requant.of(np.full(len(e), NORM_FRAC), ACT_MAX, device))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = x.shape
        flat = x.reshape(c, h * w)
        norm = self.norm(torch.addmm(self.beta[:, None], self.gamma, flat.abs()))  # ≥ 0
        return self.out(norm.mul_(flat)).view(c, h, w)


def shuffle(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Depth-to-space of a (C·f², H, W) tensor (a permutation, exact)."""
    return F.pixel_shuffle(x[None], factor)[0]


def concat(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat(list(xs), 0)
