"""Entropy method INCLINED_TCAE_V1: inclined trimmed-convolution context models, exact integers.

Seed 004 §4 (eqs. 21-27). Three frozen models give the probabilities of the three sections:
the importance map ``qi`` (h, w), the luma codes (n_y = 32, h, w) and the chroma codes
(n_c = 8, h, w). This module is the *inference* side: numpy only, integer arithmetic only.
The float model used for training lives in :mod:`lcodec.entropy.tcae_net`.

Symbols and schedule
--------------------
A model sees a cuboid ``C[k, i, j]`` with ``n`` channels (``n = 1`` for ``qi``). Position
(k, i, j) is *active* when it carries a symbol: every position of ``qi``; for luma / chroma the
eq. 4 prefix mask ``k·L < n·qi[i, j]`` (L = 16), which the decoder knows once ``qi`` is decoded.
The input class of an active position is ``symbol + offset`` (codes: ``o' = level + 1``, so
class 0 means "not coded"; ``qi``: offset 0). Inactive code positions have class 0.

Inclined plane t = {k + i + j = t}, t = 0 .. n + h + w - 3 (for ``qi``: the anti-diagonals
i + j = t). Symbols are coded plane by plane; within a plane in increasing flat index
``(k·h + i)·w + j``. Each section is one range-coded stream (:mod:`lcodec.entropy.coder`).

Network (paper §4.5)
--------------------
A *trimmed convolution* is a 2-D convolution over the n·g feature maps of the cuboid (map
index k·g + group) whose 5×5 kernel from input map (k', g') to output map (k, g) is masked to
the taps with ``(k'-k) + di + dj < 0`` in the first layer (eq. 26) and ``≤ 0`` in the hidden
layers (eq. 27), so every output at plane t depends only on planes < t. Two restrictions make it
affordable on a CPU: the kernel is block-Toeplitz in k (it depends on k'-k, not on k: a 3-D
convolution shared by all code channels, plus a bias per channel k and group in every layer),
and the channel reach is limited to ``-k_before ≤ k'-k ≤ k_after``. A tap is thus a triple
(dk, di, dj) with -k_before ≤ dk ≤ k_after, |di|, |dj| ≤ 2 and dk + di + dj < 0 (first) or
≤ 0 (hidden); taps are enumerated in lexicographic order of (dk, di, dj).

Layers: first trimmed conv → ReLU → trimmed conv → ReLU → 3 residual blocks
``x ← ReLU(x + conv(ReLU(conv x)))`` → final trimmed conv to ``classes`` logits → integer
softmax. The first layer reads the input classes one-hot (paper; outside the cuboid: the zero
vector) or, with ``embed = d``, a learned d-dimensional embedding of (input channel k', class),
because a level index means something different in each code channel (the LCMQ centres are
per channel). All hidden features of inactive positions are zero (never computed nor read).
Luma and chroma models add a *side* term to the first layer: over a 3×3 spatial window (same
k, no trimming), the class ``clip(K(i', j') - k, 0, S - 1)`` where K(i', j') is the number of
coded channels at (i', j') — known to the decoder from ``qi`` before the codes. A chroma model
with ``luma_classes = Y`` uses the side class ``c·Y + y`` instead, y the activity class of
the co-located luma codes (:func:`luma_activity`: Σ_k |level − T/2| over the coded luma
channels against fixed integer thresholds), known once luma is decoded. With
``knob_buckets = B > 0`` the first layer also adds a learned bias per (rate-knob bucket, k,
group): the bucket of the header's knob κ (thousandths, clamped to ±1000) is
``((κ + 1000)·(B − 1) + 1000) // 2000`` (integers), so the model knows the quantizer's scale
before it has seen a symbol. Models with ``knob_buckets = 0`` (all before network v2's TCAE)
have no such term.

Integer inference (what the bitstream depends on)
-------------------------------------------------
* Activations are integers 0..255 (8 bits), stored as float32. Weights are integers in
  [-127, 127] (int8) with one real scale per output group, used only at freeze time.
* First layer = table lookups, no multiplications: ``acc = Σ_taps T[k', tap, class] +
  Σ_side_taps S[tap, side_class]`` with int8 tables (k' = k + dk with ``embed``, else a single
  table; the "outside" class has a zero row). The tap sum is done as a 0/1 float32 GEMM.
* Every other layer gathers its taps with precomputed row indices (``np.take``) into a
  (rows, taps·g) matrix and multiplies it by the (taps·g, g_out) weight matrix with a plain
  float32 GEMM (numpy matmul; no convolution routine, no Winograd/FFT, no TF32). Overflow /
  exactness bound: every product and every partial sum, in any summation order, is an integer
  of magnitude ≤ Σ_r |w_r|·255 < 2**24 for each output column (first layer: Σ_taps max|T|
  + Σ_side_taps max|S| < 2**24) — checked when a model is frozen and again when it is loaded
  (int8 weights guarantee it for taps·g ≤ 518) — so float32 represents all of them exactly
  and the result is the same integer on every BLAS, CPU, thread count and batch layout.
* ``A = acc + bias[k, o]`` in int64 (|bias| < 2**30, one bias per code channel k and group o;
  in the first layer the knob bucket's bias is added to it, and the sum is what is bounded),
  then requantisation with a per-group integer multiplier and shift, round half up:
  ``y = (A·M + 2**(S-1)) >> S`` (arithmetic shift) with 1 ≤ M ≤ 2**15 and 1 ≤ S ≤ 62, so
  |A·M| < 2**46: no int64 overflow. (The implementation evaluates the same formula as
  ``floor(A·(M·2**-S) + 1/2)`` in float64: every intermediate there is an integer or a dyadic
  fraction of at most 47 significant bits, so it is bit-identical; a test checks it.) Hidden
  outputs are clamped to 0..255 (the ReLU); the second conv of a residual block adds the block
  input (same scale) before the clamp.
* The final layer's requantisation gives integer logits in units of 2**-6 nat. Integer
  softmax: with ``d = min(max(logits) - logit, 1023)``, ``e = EXP[d]`` from the table stored
  with the model, ``EXP[d] = round(2**24·exp(-d/64))`` (e ≤ 2**24, e·2**16 < 2**41); then
  ``f = 1 + (e·(2**16 - K)) // Σe`` and the remainder ``2**16 - Σf`` (≥ 0) is added to the
  first largest e. Every row sums to exactly 2**16 with every entry ≥ 1 (K ≤ 16 classes;
  ``lcodec.entropy.coder.PRECISION``), and the coder divides by 2**16 exactly.
* Decoder: plane by plane; for plane t each layer is computed once for the rows of plane t
  (reading earlier planes and plane t of the previous layer from the caches), then all of
  the plane's symbols are decoded with one batched call: total work ≈ one forward pass.
  Caches are ring buffers: a hidden tap reaches back at most k_before + 4 planes, so memory
  is a few planes' worth of activations, whatever the image size. Encoder: the same row
  computations over blocks of whole planes (about 8192 rows each), all layers of a block
  before the next block — one forward pass giving all frequency rows. Both produce identical
  frequency rows because every row is the same exact integer function of the rows it reads.

The three models, their configs, tables and requantisation constants are stored in one
safetensors file; the entropy model id written into a `.lic` header is ``sha256(file)[:8]``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lcodec.entropy.coder import PRECISION, SymbolDecoder, encode_symbols
from lcodec.errors import LcodecError
from lcodec.quant import code_mask_np

FORMAT = "inclined-tcae-v1"
ACT_MAX = 255  # activations are integers 0..ACT_MAX
WEIGHT_MAX = 127  # weights are integers -WEIGHT_MAX..WEIGHT_MAX
EXACT_LIMIT = 1 << 24  # float32 represents every integer of magnitude <= 2**24 exactly
BIAS_LIMIT = 1 << 30
LOGIT_FRAC_BITS = 6  # final logits are integers in units of 2**-6 nat
EXP_BITS = 24
EXP_TABLE_SIZE = 1024  # 16 nats: beyond that a symbol gets the minimum frequency anyway
SECTIONS = ("importance", "luma", "chroma")
_CHUNK = 8192  # rows per block in the encoder's full pass (memory only; results are exact)


def exp_table() -> np.ndarray:
    """``round(2**24·exp(-d/64))`` for d = 0..1023 (computed once at freeze, then stored)."""
    d = np.arange(EXP_TABLE_SIZE, dtype=np.float64)
    return np.floor(np.exp(-d / (1 << LOGIT_FRAC_BITS)) * (1 << EXP_BITS) + 0.5).astype(np.int64)


@dataclass(frozen=True)
class TcaeConfig:
    """Shape of one inclined TCAE.

    Args:
        channels: n, code channels of the cuboid (1 for the importance map).
        classes: symbol alphabet (T = 8 levels, or L = 16 importance levels).
        offset: input class of a coded symbol s is s + offset (1 for codes: class 0 is "not
            coded"; 0 for the importance map, where every position is coded).
        groups: g, feature groups per code channel in the hidden layers.
        k_before: taps reach channels down to k - k_before.
        k_after: taps reach channels up to k + k_after (only spatially earlier ones).
        kernel: spatial kernel size (5 in the paper).
        blocks: residual blocks (3 in the paper).
        side_classes: S classes of the side input clip(K(i', j') - k, 0, S - 1); 0 = none.
        side_kernel: spatial window of the side input.
        embed: 0: the first layer reads the one-hot input classes (paper); d > 0: it reads a
            learned d-dimensional embedding of (input channel k', class), so a level means
            something different in each code channel; frozen, both are the same table lookup.
        knob_buckets: B > 0: a first-layer bias per rate-knob bucket (:func:`knob_bucket`).
        luma_classes: Y > 0 (chroma): the side class also carries the co-located luma codes'
            activity class (:func:`luma_activity`), so the side input has S·Y classes.
    """

    channels: int
    classes: int
    offset: int
    groups: int
    k_before: int
    k_after: int
    kernel: int = 5
    blocks: int = 3
    side_classes: int = 0
    side_kernel: int = 3
    embed: int = 0
    knob_buckets: int = 0
    luma_classes: int = 0

    @property
    def in_classes(self) -> int:
        return self.classes + self.offset

    @property
    def side_count(self) -> int:
        """Classes of the side input: S, or S·Y with luma classes."""
        return self.side_classes * max(1, self.luma_classes)

    @property
    def table_channels(self) -> int:
        """First-layer tables per input channel k' (embedding) or one shared table."""
        return self.channels if self.embed else 1

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("knob_buckets", "luma_classes"):  # older configs keep their exact text
            if not d[key]:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, raw: dict) -> TcaeConfig:
        return cls(**{k: int(v) for k, v in raw.items()})


def knob_bucket(buckets: int, knob_thousandths: int) -> int:
    """The knob bucket of a header knob (thousandths): nearest of ``buckets`` evenly spaced
    knobs over [-1, 1], halves rounded up, in integer arithmetic (0 without buckets)."""
    if buckets <= 1:
        return 0
    k = min(max(int(knob_thousandths), -1000), 1000)
    return ((k + 1000) * (buckets - 1) + 1000) // 2000


def trimmed_taps(cfg: TcaeConfig, first: bool) -> np.ndarray:
    """(T, 3) taps (dk, di, dj) of a trimmed conv: dk+di+dj < 0 (first) or <= 0 (hidden)."""
    r = cfg.kernel // 2
    out = [
        (dk, di, dj)
        for dk in range(-cfg.k_before, cfg.k_after + 1)
        for di in range(-r, r + 1)
        for dj in range(-r, r + 1)
        if (dk + di + dj < 0 if first else dk + di + dj <= 0)
    ]
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def side_taps(cfg: TcaeConfig) -> np.ndarray:
    """(T, 3) taps of the untrimmed side input: dk = 0, the whole side_kernel window."""
    r = cfg.side_kernel // 2
    out = [(0, di, dj) for di in range(-r, r + 1) for dj in range(-r, r + 1)]
    return np.array(out, dtype=np.int64).reshape(-1, 3)




def side_classes(active: np.ndarray, classes: int) -> np.ndarray:
    """(n, h, w) side class clip(K(i, j) - k, 0, classes - 1), K = coded channels at (i, j)."""
    n = active.shape[0]
    count = active.sum(0, dtype=np.int64)
    k = np.arange(n, dtype=np.int64).reshape(n, 1, 1)
    return np.clip(count[None] - k, 0, classes - 1)


# luma activity classes: class c holds Σ|level − T/2| over the coded luma channels of a
# position in [LUMA_THRESHOLDS[c − 1], LUMA_THRESHOLDS[c]) (steps of about √2)
LUMA_THRESHOLDS = (1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512)


def luma_activity(luma: np.ndarray, active: np.ndarray, levels: int, classes: int
                  ) -> np.ndarray:
    """(h, w) class in 0..classes−1 of the coded luma codes at each position: how many of
    the first ``classes − 1`` thresholds Σ_k active·|luma − levels // 2| reaches (integers)."""
    act = (np.abs(luma.astype(np.int64) - levels // 2) * active).sum(0)
    t = np.asarray(LUMA_THRESHOLDS[: classes - 1], dtype=np.int64)
    return (act[..., None] >= t).sum(-1)


def combined_side(active: np.ndarray, cfg: TcaeConfig, luma_class: np.ndarray | None
                  ) -> np.ndarray:
    """The side classes of a cuboid: :func:`side_classes`, times Y plus the luma class of
    the position when the config has luma classes."""
    side = side_classes(active, cfg.side_classes)
    if not cfg.luma_classes:
        return side
    if luma_class is None:
        raise ValueError("this TCAE needs the luma classes of its positions")
    return side * cfg.luma_classes + luma_class[None]


def frequencies(logits: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Integer softmax: (m, K) int64 logits -> (m, K) int64 frequencies summing to 2**16."""
    m, k = logits.shape
    total = 1 << PRECISION
    d = np.minimum(logits.max(1, keepdims=True) - logits, len(table) - 1)
    e = table[d]
    f = 1 + (e * (total - k)) // e.sum(1, keepdims=True)
    top = np.argmax(e, axis=1)
    f[np.arange(m), top] += total - f.sum(1)
    return f


def _requant_constants(ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-group (M, S) with M / 2**S ≈ ratio, 2**14 <= M <= 2**15."""
    ratio = np.asarray(ratio, dtype=np.float64)
    if np.any(ratio <= 0) or not np.all(np.isfinite(ratio)):
        raise ValueError("requantisation ratios must be positive and finite")
    shift = np.clip(14 - np.floor(np.log2(ratio)).astype(np.int64), 1, 62)
    mult = np.floor(ratio * np.exp2(shift) + 0.5).astype(np.int64)
    if np.any(mult > 1 << 15) or np.any(mult < 1):
        raise ValueError("requantisation ratio out of range")
    return mult, shift


def _requant(a: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Round-half-up (a·M) / 2**S in int64 (arithmetic shift)."""
    return (a * mult + (np.int64(1) << (shift - 1))) >> shift


def _requant_float(a: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """:func:`_requant` evaluated in float64, bit for bit: ``floor(A·(M·2**-S) + 1/2)``.

    ``a`` holds integers with |a| < 2**31 and M ≤ 2**15, so A·M needs at most 46 bits and
    A·M·2**-S + 1/2 at most 47 significant bits: every operation is exact in float64.
    """
    a *= ratio
    a += 0.5
    return np.floor(a, out=a)


def _relu8(y: np.ndarray) -> np.ndarray:
    """Clamp to the activation range 0..255 (the ReLU), in place."""
    np.maximum(y, 0, out=y)
    return np.minimum(y, ACT_MAX, out=y)


def _gemm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (m, K) @ w (K, N) in float32; exact because every partial sum is an integer < 2**24.

    Split into stacked blocks small enough that a BLAS keeps each one on one thread: the result
    does not depend on it (exact integers), but a contended multi-threaded GEMM on a 2-core
    machine is ten times slower.
    """
    m, k = x.shape
    n = w.shape[1]
    bs = 1 << max(3, min(8, int(np.log2(max(1, (1 << 18) // max(1, k * n))))))
    out = np.empty((m, n), dtype=np.float32)
    full = (m // bs) * bs
    if full:
        np.matmul(x[:full].reshape(-1, bs, k), w, out=out[:full].reshape(-1, bs, n))
    if full < m:
        np.matmul(x[full:], w, out=out[full:])
    return out


@dataclass
class IntLayer:
    """One frozen integer layer. ``w``: (rows, N) float32 holding integers; bias (n, N)."""

    w: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray

    def check(self, name: str, column_bound: np.ndarray) -> None:
        n_out = self.bias.shape[-1]
        if self.bias.ndim != 2 or self.mult.shape != (n_out,) or self.shift.shape != (n_out,):
            raise LcodecError(f"TCAE layer {name}: malformed bias or requantisation constants")
        if np.any(np.abs(self.bias) >= BIAS_LIMIT):
            raise LcodecError(f"TCAE layer {name}: bias out of range")
        if np.any(self.mult < 1) or np.any(self.mult > 1 << 15):
            raise LcodecError(f"TCAE layer {name}: requantisation multiplier out of range")
        if np.any(self.shift < 1) or np.any(self.shift > 62):
            raise LcodecError(f"TCAE layer {name}: requantisation shift out of range")
        if np.any(np.abs(self.w) > WEIGHT_MAX) or np.any(self.w != np.round(self.w)):
            raise LcodecError(f"TCAE layer {name}: weights are not int8")
        if np.any(column_bound >= EXACT_LIMIT):
            raise LcodecError(f"TCAE layer {name}: accumulator bound exceeds 2**24")


class _Layout:
    """Active positions of one cuboid sorted by (plane, flat index), with gather indices.

    Row r is the r-th active position in coding order. Positions are addressed in a padded grid
    (channels padded by k_before / k_after, rows and columns by the kernel radius) so a tap is a
    constant offset of the flat padded index. Layer activations live in ring buffers of
    ``window`` slots (row r in slot r mod window; slot ``window`` is a zero row for positions
    outside the cuboid or inactive): a hidden tap reaches back at most ``lookback`` planes, so
    memory stays proportional to a few planes whatever the image size.
    """

    def __init__(self, cfg: TcaeConfig, active: np.ndarray, chunk: int) -> None:
        n, h, w = active.shape
        self.n, self.h, self.w = n, h, w
        r = max(cfg.kernel, cfg.side_kernel) // 2
        self.pad = (cfg.k_before, r, r)
        self.padded = (n + cfg.k_before + cfg.k_after, h + 2 * r, w + 2 * r)
        k, i, j = np.nonzero(active)
        t = k + i + j
        order = np.argsort(t, kind="stable")
        self.k = k[order]
        self.P = len(order)
        planes = n + h + w - 2
        counts = np.bincount(t[order], minlength=planes)
        b = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.bounds = b
        _, hp, wp = self.padded
        self.base = (((self.k + cfg.k_before) * hp + i[order] + r) * wp + j[order] + r)
        # encoder blocks: runs of whole planes with about ``chunk`` rows
        cuts = [0]
        for p in range(1, planes + 1):
            if b[p] - b[cuts[-1]] >= chunk or p == planes:
                cuts.append(p)
        self.blocks = list(zip(cuts[:-1], cuts[1:], strict=True))
        lookback = cfg.k_before + 2 * (cfg.kernel // 2)  # dk + di + dj >= -lookback
        self.window = max([1] + [int(b[t1] - b[max(0, t0 - lookback)])
                                 for t0, t1 in self.blocks])
        rowmap = np.full(int(np.prod(self.padded)), self.window, dtype=np.intp)
        rowmap[self.base] = np.arange(self.P) % self.window
        self.rowmap = rowmap

    def slots(self, s: int, e: int) -> slice | np.ndarray:
        """Ring-buffer slots of rows s:e (a slice unless they wrap around)."""
        a = s % self.window
        if a + (e - s) <= self.window:
            return slice(a, a + (e - s))
        return np.arange(s, e) % self.window

    def offsets(self, taps: np.ndarray) -> np.ndarray:
        _, hp, wp = self.padded
        return (taps[:, 0] * hp + taps[:, 1]) * wp + taps[:, 2]

    def grid(self, values: np.ndarray, fill: int) -> np.ndarray:
        """Flat padded int16 copy of an (n, h, w) map, ``fill`` outside."""
        out = np.full(self.padded, fill, dtype=np.int16)
        kb, r, _ = self.pad
        out[kb : kb + self.n, r : r + self.h, r : r + self.w] = values
        return out.ravel()


@dataclass
class _State:
    """Working arrays of one cuboid: layout, input and side classes, ring-buffer caches."""

    lay: _Layout
    cls_flat: np.ndarray
    side_flat: np.ndarray | None
    caches: list
    bias0: np.ndarray  # (n, g) first-layer bias of this cuboid's knob bucket
    pre: np.ndarray | None = None  # first-layer bias + side terms of rows pre_start..
    pre_start: int = 0


class IntTcae:
    """A frozen inclined TCAE: integer tables and weights, exact inference (see module doc)."""

    def __init__(self, cfg: TcaeConfig, first: np.ndarray, side: np.ndarray | None,
                 first_layer: IntLayer, layers: list[IntLayer], exp: np.ndarray,
                 knob_bias: np.ndarray | None = None) -> None:
        """``first``: (table_channels, taps0, in_classes, g) ints; ``side``: (side_taps, S, g)
        ints or None; ``knob_bias``: (knob_buckets, n, g) ints or None;
        ``first_layer``: its bias / requantisation (``w`` unused); ``layers``: the second conv,
        the 2·blocks block convs and the final conv; ``exp``: the softmax table."""
        self.cfg = cfg
        self.taps0 = trimmed_taps(cfg, first=True)
        self.taps = trimmed_taps(cfg, first=False)
        self.staps = side_taps(cfg)
        g = cfg.groups
        nt, t0 = cfg.table_channels, len(self.taps0)
        if first.shape != (nt, t0, cfg.in_classes, g):
            raise LcodecError("TCAE first-layer table has the wrong shape")
        self.first = first.astype(np.int64)
        # one zero row per (channel, tap) for "outside the cuboid"
        tab = np.concatenate([self.first, np.zeros((nt, t0, 1, g), np.int64)], 2)
        self._t0 = tab.reshape(-1, g).astype(np.float32)
        self._t0_row = np.arange(t0) * (cfg.in_classes + 1)
        self._t0_chan = t0 * (cfg.in_classes + 1)  # table stride of the input channel k'
        self._t0_dk = self.taps0[:, 0]
        self._t0_sum = np.tile(np.eye(g, dtype=np.float32), (t0, 1))
        self.side = None
        bound0 = np.abs(self.first).max((0, 2)).sum(0)
        if cfg.side_classes:
            if side is None or side.shape != (len(self.staps), cfg.side_count, g):
                raise LcodecError("TCAE side table has the wrong shape")
            self.side = side.astype(np.int64)
            stab = np.concatenate([self.side, np.zeros((len(self.staps), 1, g), np.int64)], 1)
            self._ts = stab.reshape(-1, g)
            self._ts_row = np.arange(len(self.staps)) * (cfg.side_count + 1)
            bound0 = bound0 + np.abs(self.side).max(1).sum(0)
        if np.any(np.abs(self.first) > WEIGHT_MAX) or (
                self.side is not None and np.any(np.abs(self.side) > WEIGHT_MAX)):
            raise LcodecError("TCAE first-layer tables are not int8")
        self.first_layer = first_layer
        if first_layer.bias.shape != (cfg.channels, g):
            raise LcodecError("TCAE first-layer bias has the wrong shape")
        first_layer.check("first", bound0)
        self.knob_bias = None
        self._bias0 = first_layer.bias[None].astype(np.int64)  # (buckets or 1, n, g)
        if cfg.knob_buckets:
            if knob_bias is None or knob_bias.shape != (cfg.knob_buckets, cfg.channels, g):
                raise LcodecError("TCAE knob bias has the wrong shape")
            self.knob_bias = knob_bias.astype(np.int64)
            self._bias0 = self._bias0 + self.knob_bias
            if np.any(np.abs(self._bias0) >= BIAS_LIMIT):
                raise LcodecError("TCAE layer first: bias out of range")
        if len(layers) != 2 + 2 * cfg.blocks:
            raise LcodecError("TCAE has the wrong number of layers")
        self.layers = layers
        k = len(self.taps) * g
        for idx, layer in enumerate(layers):
            n_out = cfg.classes if idx == len(layers) - 1 else g
            if layer.w.shape != (k, n_out) or layer.bias.shape != (cfg.channels, n_out):
                raise LcodecError(f"TCAE layer {idx} has the wrong shape")
            layer.check(str(idx), np.abs(layer.w).sum(0) * ACT_MAX)
        # float64 copies for the exact float requantisation (see _requant_float)
        self._ratio = [np.ldexp(x.mult.astype(np.float64), -x.shift) for x in layers]
        self._ratio0 = np.ldexp(first_layer.mult.astype(np.float64), -first_layer.shift)
        self._bias_all = np.concatenate([x.bias for x in layers], 1).astype(np.float64)
        widths = [x.bias.shape[1] for x in layers]
        ends = np.cumsum(widths)
        self._bias_cols = [slice(int(b - n), int(b)) for n, b in zip(widths, ends, strict=True)]
        self.exp = np.asarray(exp, dtype=np.int64)
        if self.exp.shape != (EXP_TABLE_SIZE,) or np.any(self.exp < 0) or np.any(
                self.exp > 1 << EXP_BITS) or self.exp[0] < 1:
            raise LcodecError("TCAE exponential table is malformed")

    # -- row computations (shared by the encoder's full pass and the decoder's planes) --

    def _pre_rows(self, st: _State, s: int, e: int) -> np.ndarray:
        """First-layer terms known before decoding (per-channel bias + side input), float64.

        Computed for a block of whole planes at a time and kept until the rows are used.
        """
        if st.pre is None or not (st.pre_start <= s and e <= st.pre_start + len(st.pre)):
            lay = st.lay
            b = lay.bounds
            t0, t1 = next(blk for blk in lay.blocks if b[blk[0]] <= s < b[blk[1]])
            bs, be = int(b[t0]), max(int(b[t1]), e)
            acc = np.take(st.bias0, lay.k[bs:be], axis=0)
            if self.side is not None and st.side_flat is not None:
                cls = np.take(st.side_flat, lay.base[bs:be, None] + self._offs)
                acc = acc + np.take(self._ts, cls + self._ts_row, axis=0).sum(1)
            st.pre, st.pre_start = acc.astype(np.float64), bs
        return st.pre[s - st.pre_start : e - st.pre_start]

    def _first_rows(self, st: _State, s: int, e: int) -> np.ndarray:
        cls = np.take(st.cls_flat, st.lay.base[s:e, None] + self._off0)
        idx = cls + self._t0_row
        if self.cfg.embed:  # table of input channel k' = k + dk (outside: the zero class)
            kk = np.clip(st.lay.k[s:e, None] + self._t0_dk, 0, self.cfg.channels - 1)
            idx += kk * self._t0_chan
        rows = np.take(self._t0, idx, axis=0).reshape(e - s, -1)
        a = _gemm(rows, self._t0_sum).astype(np.float64)  # Σ over taps as a 0/1 GEMM
        a += self._pre_rows(st, s, e)
        y = _requant_float(a, self._ratio0)
        return _relu8(y)

    @property
    def depth(self) -> int:
        """Number of layers: first, second, 2 per residual block, final."""
        return 3 + 2 * self.cfg.blocks

    def _forward_rows(self, st: _State, s: int, e: int) -> np.ndarray:
        """All layers on rows s:e (whole planes), each layer before the next; returns logits.

        Caches: 0 = first layer, 1 = second, then per block b the middle (2 + 2b) and the
        residual stream (3 + 2b); the final layer reads cache ``depth - 2``. Rows read are of
        planes <= those of s:e, already final in the ring buffers.
        """
        lay, c = st.lay, st.caches
        m = e - s
        nbr = np.take(lay.rowmap, lay.base[s:e, None] + self._offh)
        bias = np.take(self._bias_all, lay.k[s:e], axis=0)  # every layer's bias, one gather
        slots = lay.slots(s, e)
        c[0][slots] = self._first_rows(st, s, e)
        for li in range(1, self.depth):
            x = np.take(c[li - 1], nbr, axis=0).reshape(m, -1)
            a = _gemm(x, self.layers[li - 1].w).astype(np.float64)
            a += bias[:, self._bias_cols[li - 1]]
            y = _requant_float(a, self._ratio[li - 1])
            if li == self.depth - 1:
                return y.astype(np.int64)
            if li >= 3 and li % 2 == 1:  # second conv of a residual block
                y += c[li - 2][slots]
            c[li][slots] = _relu8(y)
        raise AssertionError("unreachable")

    def _setup(self, active: np.ndarray, cls: np.ndarray | None, bucket: int,
               luma_class: np.ndarray | None) -> _State:
        cfg = self.cfg
        if not 0 <= bucket < len(self._bias0):
            raise ValueError(f"knob bucket {bucket} out of range")
        lay = _Layout(cfg, active, _CHUNK)
        self._off0 = lay.offsets(self.taps0)
        self._offh = lay.offsets(self.taps)
        self._offs = lay.offsets(self.staps)
        cls_flat = lay.grid(0 if cls is None else cls, cfg.in_classes)
        side_flat = None
        if cfg.side_classes:
            side_flat = lay.grid(combined_side(active, cfg, luma_class), cfg.side_count)
        caches = [np.zeros((lay.window + 1, cfg.groups), np.float32)
                  for _ in range(self.depth - 1)]
        return _State(lay, cls_flat, side_flat, caches, self._bias0[bucket])

    # -- public entry points --

    def frequency_rows(self, symbols: np.ndarray, active: np.ndarray, bucket: int = 0,
                       luma_class: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Encoder: one forward pass over all planes (in blocks of whole planes).

        Returns (symbols (P,), frequencies (P, classes) int32) in coding order. ``bucket``:
        the knob bucket (:func:`knob_bucket`; 0 for a model without knob buckets);
        ``luma_class``: (h, w) :func:`luma_activity` for a model with luma classes.
        """
        cfg = self.cfg
        cls = np.where(active, symbols.astype(np.int64) + cfg.offset, 0)
        st = self._setup(active, cls, bucket, luma_class)
        b = st.lay.bounds
        freqs = np.empty((st.lay.P, cfg.classes), dtype=np.int32)
        for t0, t1 in st.lay.blocks:
            s, e = int(b[t0]), int(b[t1])
            if s < e:
                freqs[s:e] = frequencies(self._forward_rows(st, s, e), self.exp)
        syms = st.cls_flat[st.lay.base].astype(np.int64) - cfg.offset
        return syms, freqs

    def encode(self, symbols: np.ndarray, active: np.ndarray, bucket: int = 0,
               luma_class: np.ndarray | None = None) -> bytes:
        syms, freqs = self.frequency_rows(symbols, active, bucket, luma_class)
        return encode_symbols(syms, freqs)

    def decode(self, dec: SymbolDecoder, active: np.ndarray, bucket: int = 0,
               luma_class: np.ndarray | None = None) -> np.ndarray:
        """Decoder: plane by plane, one batched ``decode`` per plane; 0 where inactive."""
        cfg = self.cfg
        st = self._setup(active, None, bucket, luma_class)
        lay = st.lay
        b = lay.bounds
        for t in range(len(b) - 1):
            s, e = int(b[t]), int(b[t + 1])
            if s < e:
                syms = dec.decode(frequencies(self._forward_rows(st, s, e), self.exp))
                st.cls_flat[lay.base[s:e]] = syms + cfg.offset
        dec.finish()
        out = np.zeros(active.shape, dtype=np.int64)
        kb, r, _ = lay.pad
        grid = st.cls_flat.reshape(lay.padded)[kb : kb + lay.n, r : r + lay.h, r : r + lay.w]
        out[active] = grid[active].astype(np.int64) - cfg.offset
        return out

    def code_length_bits(self, symbols: np.ndarray, active: np.ndarray, bucket: int = 0,
                         luma_class: np.ndarray | None = None) -> float:
        syms, freqs = self.frequency_rows(symbols, active, bucket, luma_class)
        if len(syms) == 0:
            return 0.0
        f = freqs[np.arange(len(syms)), syms]
        return float(np.sum(PRECISION - np.log2(f)))

    # -- storage --

    def tensors(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}.first.table": self.first.astype(np.int8),
               f"{prefix}.exp": self.exp.astype(np.int64)}
        if self.side is not None:
            out[f"{prefix}.first.side"] = self.side.astype(np.int8)
        if self.knob_bias is not None:
            out[f"{prefix}.first.knob"] = self.knob_bias.astype(np.int64)
        named = [("first", self.first_layer)] + [(f"l{i}", x) for i, x in enumerate(self.layers)]
        for name, layer in named:
            if name != "first":
                out[f"{prefix}.{name}.w"] = layer.w.astype(np.int8)
            out[f"{prefix}.{name}.bias"] = layer.bias.astype(np.int64)
            out[f"{prefix}.{name}.mult"] = layer.mult.astype(np.int64)
            out[f"{prefix}.{name}.shift"] = layer.shift.astype(np.int64)
        return out

    @classmethod
    def from_tensors(cls, cfg: TcaeConfig, t: dict[str, np.ndarray], prefix: str) -> IntTcae:
        def layer(name: str, has_w: bool = True) -> IntLayer:
            w = t[f"{prefix}.{name}.w"].astype(np.float32) if has_w else np.zeros((0, 0))
            return IntLayer(w, t[f"{prefix}.{name}.bias"].astype(np.int64),
                            t[f"{prefix}.{name}.mult"].astype(np.int64),
                            t[f"{prefix}.{name}.shift"].astype(np.int64))

        try:
            side = t.get(f"{prefix}.first.side")
            knob = t[f"{prefix}.first.knob"].astype(np.int64) if cfg.knob_buckets else None
            return cls(cfg, t[f"{prefix}.first.table"].astype(np.int64),
                       None if side is None else side.astype(np.int64), layer("first", False),
                       [layer(f"l{i}") for i in range(2 + 2 * cfg.blocks)],
                       t[f"{prefix}.exp"], knob)
        except KeyError as exc:
            raise LcodecError(f"TCAE weights file lacks tensor {exc}") from None


class TcaeModels:
    """The frozen integer models of the three sections: ``importance``, ``luma``, ``chroma``.

    Codes are given and returned as in :class:`lcodec.nets.cwic.Encoded` (without the batch
    axis): ``qi`` (h, w) in 0..L-1, luma (n_y, h, w) and chroma (n_c, h, w) level indices in
    0..T-1, 0 where the eq. 4 mask is not set.
    """

    def __init__(self, importance: IntTcae, luma: IntTcae, chroma: IntTcae) -> None:
        if importance.cfg.channels != 1 or importance.cfg.offset != 0:
            raise LcodecError("the importance TCAE must be a one-channel model with offset 0")
        for m in (luma, chroma):
            if m.cfg.offset != 1:
                raise LcodecError("code TCAEs must use offset 1 (o' = level + 1)")
        if importance.cfg.luma_classes or luma.cfg.luma_classes:
            raise LcodecError("only the chroma TCAE can read luma classes")
        y = chroma.cfg.luma_classes
        if y and (not chroma.cfg.side_classes or y > len(LUMA_THRESHOLDS) + 1):
            raise LcodecError("the chroma TCAE's luma classes are malformed")
        self.importance, self.luma, self.chroma = importance, luma, chroma
        self.levels = importance.cfg.classes
        self.entropy_id: bytes | None = None

    @property
    def models(self) -> dict[str, IntTcae]:
        return {"importance": self.importance, "luma": self.luma, "chroma": self.chroma}

    # -- storage --

    def save(self, path: str | Path) -> bytes:
        """Write the safetensors file; returns (and remembers) its 8-byte entropy id."""
        from safetensors.numpy import save_file

        tensors: dict[str, np.ndarray] = {}
        meta = {"format": FORMAT}
        for name, m in self.models.items():
            tensors.update(m.tensors(name))
            meta[f"{name}.config"] = json.dumps(m.cfg.to_dict(), sort_keys=True)
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        # safetensors.numpy writes an array's memory as is: a transposed (Fortran-ordered)
        # array would come back scrambled, so every array is made C-contiguous first
        tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)
        self.entropy_id = file_id(path)
        return self.entropy_id

    @classmethod
    def load(cls, path: str | Path) -> TcaeModels:
        from safetensors import SafetensorError
        from safetensors.numpy import load

        path = Path(path)
        try:
            data = path.read_bytes()
            tensors = load(data)
            meta = _metadata(data)
        except (OSError, SafetensorError, ValueError) as exc:
            raise LcodecError(f"cannot read TCAE weights {path}: {exc}") from None
        if meta.get("format") != FORMAT:
            raise LcodecError(f"{path} is not an {FORMAT} weights file")
        try:
            cfgs = {n: TcaeConfig.from_dict(json.loads(meta[f"{n}.config"])) for n in SECTIONS}
        except (KeyError, TypeError, ValueError) as exc:
            raise LcodecError(f"{path} has a malformed TCAE config ({exc})") from None
        try:
            out = cls(*(IntTcae.from_tensors(cfgs[n], tensors, n) for n in SECTIONS))
        except (ValueError, TypeError, IndexError) as exc:
            raise LcodecError(f"{path} holds malformed TCAE tensors ({exc})") from None
        out.entropy_id = hashlib.sha256(data).digest()[:8]
        return out

    # -- coding --

    def masks(self, qi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (code_mask_np(qi, self.luma.cfg.channels, self.levels),
                code_mask_np(qi, self.chroma.cfg.channels, self.levels))

    def _arrays(self, qi, luma, chroma) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        qi = np.asarray(qi, dtype=np.int64)
        if qi.ndim != 2 or min(qi.shape) < 1:
            raise ValueError(f"qi must be a non-empty (h, w) map, got shape {qi.shape}")
        h, w = qi.shape
        if qi.min() < 0 or qi.max() >= self.levels:
            raise ValueError("qi values out of range")
        out = [qi]
        for name, x, m in (("luma", luma, self.luma), ("chroma", chroma, self.chroma)):
            if x is None and name == "chroma":
                out.append(None)
                continue
            x = np.asarray(x, dtype=np.int64)
            if x.shape != (m.cfg.channels, h, w):
                raise ValueError(f"{name} must have shape {(m.cfg.channels, h, w)}")
            if x.size and (x.min() < 0 or x.max() >= m.cfg.classes):
                raise ValueError(f"{name} level indices out of range")
            out.append(x)
        return out[0], out[1], out[2]

    def _luma_class(self, luma: np.ndarray, m_y: np.ndarray) -> np.ndarray | None:
        """The chroma model's luma classes (None when it has none)."""
        y = self.chroma.cfg.luma_classes
        return luma_activity(luma, m_y, self.luma.cfg.classes, y) if y else None

    def buckets(self, knob: int) -> dict[str, int]:
        """Each model's knob bucket for a header knob (thousandths)."""
        return {n: knob_bucket(m.cfg.knob_buckets, knob) for n, m in self.models.items()}

    def encode(self, qi: np.ndarray, luma: np.ndarray, chroma: np.ndarray | None,
               knob: int = 0) -> dict[str, bytes]:
        """Payloads ``importance``, ``luma`` and (unless ``chroma`` is None) ``chroma``.

        Only positions inside the eq. 4 mask are coded; other values are ignored (decoded as 0).
        ``knob``: the header's rate knob in thousandths (read by models with knob buckets).
        """
        qi, luma, chroma = self._arrays(qi, luma, chroma)
        m_y, m_c = self.masks(qi)
        b = self.buckets(knob)
        out = {"importance": self.importance.encode(qi[None], np.ones((1, *qi.shape), bool),
                                                    b["importance"]),
               "luma": self.luma.encode(luma, m_y, b["luma"])}
        if chroma is not None:
            out["chroma"] = self.chroma.encode(chroma, m_c, b["chroma"],
                                               self._luma_class(luma, m_y))
        return out

    def decode(self, payloads: dict[str, bytes], h: int, w: int, knob: int = 0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(qi (h, w), luma (n_y, h, w), chroma (n_c, h, w)) int64; LicError on bad data.

        Without a ``chroma`` payload (a gray image coded with ``chroma=None``) chroma is zero.
        """
        if h < 1 or w < 1:
            raise ValueError("code maps must be at least 1×1")
        for name in ("importance", "luma"):
            if name not in payloads:
                raise ValueError(f"missing {name} payload")
        b = self.buckets(knob)
        qi = self.importance.decode(SymbolDecoder(payloads["importance"]),
                                    np.ones((1, h, w), bool), b["importance"])[0]
        m_y, m_c = self.masks(qi)
        luma = self.luma.decode(SymbolDecoder(payloads["luma"]), m_y, b["luma"])
        if "chroma" in payloads:
            chroma = self.chroma.decode(SymbolDecoder(payloads["chroma"]), m_c, b["chroma"],
                                        self._luma_class(luma, m_y))
        else:
            chroma = np.zeros(m_c.shape, dtype=np.int64)
        return qi, luma, chroma

    def code_length_bits(self, qi: np.ndarray, luma: np.ndarray, chroma: np.ndarray | None,
                         knob: int = 0) -> dict[str, float]:
        """Σ -log2 p per section with the integer frequencies (the ideal coded size)."""
        qi, luma, chroma = self._arrays(qi, luma, chroma)
        m_y, m_c = self.masks(qi)
        ones = np.ones((1, *qi.shape), bool)
        b = self.buckets(knob)
        return {
            "importance": self.importance.code_length_bits(qi[None], ones, b["importance"]),
            "luma": self.luma.code_length_bits(luma, m_y, b["luma"]),
            "chroma": 0.0 if chroma is None else self.chroma.code_length_bits(
                chroma, m_c, b["chroma"], self._luma_class(luma, m_y)),
        }


def file_id(path: str | Path) -> bytes:
    """Entropy model id: the first 8 bytes of the file's SHA-256."""
    return hashlib.sha256(Path(path).read_bytes()).digest()[:8]


def _metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors byte string."""
    if len(data) < 8:
        raise ValueError("file too short")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError("bad header length")
    header = json.loads(data[8 : 8 + n])
    return header.get("__metadata__") or {}
