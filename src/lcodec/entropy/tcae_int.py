"""The frozen integer TCAE: exact inference, the function every `.lic` section depends on.

Integer tables and weights, float32 GEMMs whose every partial sum is an exact integer, int64
requantisation and an integer softmax, so every BLAS, CPU and thread count gives the same
frequency rows. Numpy only; the float model it is frozen from is :mod:`lcodec.entropy.tcae_net`.
Specification: docs/format.md, "Section payloads (entropy method INCLINED_TCAE_V1)", "Integer
inference".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lcodec.entropy.coder import PRECISION, SymbolDecoder, encode_symbols
from lcodec.entropy.tcae_config import TcaeConfig, combined_side
from lcodec.entropy.tcae_layout import Layout, side_taps, trimmed_taps
from lcodec.errors import LcodecError

ACT_MAX = 255  # activations are integers 0..ACT_MAX
WEIGHT_MAX = 127  # weights are integers -WEIGHT_MAX..WEIGHT_MAX
EXACT_LIMIT = 1 << 24  # float32 represents every integer of magnitude <= 2**24 exactly
BIAS_LIMIT = 1 << 30
LOGIT_FRAC_BITS = 6  # final logits are integers in units of 2**-6 nat
EXP_BITS = 24
EXP_TABLE_SIZE = 1024  # 16 nats: beyond that a symbol gets the minimum frequency anyway
_CHUNK = 8192  # rows per block in the encoder's full pass (memory only; results are exact)


def exp_table() -> np.ndarray:
    """``round(2**24·exp(-d/64))`` for d = 0..1023 (computed once at freeze, then stored)."""
    d = np.arange(EXP_TABLE_SIZE, dtype=np.float64)
    return np.floor(np.exp(-d / (1 << LOGIT_FRAC_BITS)) * (1 << EXP_BITS) + 0.5).astype(np.int64)


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


def requant_constants(ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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

@dataclass
class _State:
    """Working arrays of one call on one cuboid: layout, tap offsets, input and side classes,
    ring-buffer caches. Everything a call changes lives here, never on the shared model."""

    lay: Layout
    off0: np.ndarray  # first-layer tap offsets in the padded grid
    offh: np.ndarray  # hidden-layer tap offsets
    offs: np.ndarray  # side-input tap offsets
    cls_flat: np.ndarray
    side_flat: np.ndarray | None
    caches: list
    bias0: np.ndarray  # (n, g) first-layer bias of this cuboid's knob bucket
    pre: np.ndarray | None = None  # first-layer bias + side terms of rows pre_start..
    pre_start: int = 0


class IntTcae:
    """A frozen inclined TCAE: integer tables and weights, exact inference (docs/format.md)."""

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
                cls = np.take(st.side_flat, lay.base[bs:be, None] + st.offs)
                acc = acc + np.take(self._ts, cls + self._ts_row, axis=0).sum(1)
            st.pre, st.pre_start = acc.astype(np.float64), bs
        return st.pre[s - st.pre_start : e - st.pre_start]

    def _first_rows(self, st: _State, s: int, e: int) -> np.ndarray:
        cls = np.take(st.cls_flat, st.lay.base[s:e, None] + st.off0)
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
        nbr = np.take(lay.rowmap, lay.base[s:e, None] + st.offh)
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
        lay = Layout(cfg, active, _CHUNK)
        cls_flat = lay.grid(0 if cls is None else cls, cfg.in_classes)
        side_flat = None
        if cfg.side_classes:
            side_flat = lay.grid(combined_side(active, cfg, luma_class), cfg.side_count)
        caches = [np.zeros((lay.window + 1, cfg.groups), np.float32)
                  for _ in range(self.depth - 1)]
        return _State(lay, lay.offsets(self.taps0), lay.offsets(self.taps),
                      lay.offsets(self.staps), cls_flat, side_flat, caches,
                      self._bias0[bucket])

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
