"""The correction layer (format 1.3, a CORRECTION section): a low-resolution field added to the
decoded pixels.

The networks leave low-frequency errors: a colour cast over a region, a flat colour decoded a
few levels off. A field of one value per ``B × B`` block and per plane (YCoCg, or Y alone for
gray images), quantized with a step in quarter levels, bilinearly upsampled and added to the
decoded RGB, fixes them for a few bytes; at ``B = 1`` it is a pixel residual, the only way
left to spend more bits once the networks' largest file is reached.

Decoding is integer arithmetic only (spec: docs/format.md, "Correction layer"), so a file
decodes to the same pixels everywhere whenever its synthesis is exact. The symbols are coded
with a two-sided geometric table per plane whose parameters the payload carries.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from lcodec.entropy.coder import PRECISION, SymbolDecoder, SymbolStream
from lcodec.errors import LicError

MAX_LOG2_BLOCK = 8  # blocks of 1 … 256 pixels
MAX_SYMBOL = 4095  # |quantized value| bound
MAX_SHAPE = 255  # the geometric table's shape index s: ratio s / (s + 1)
STRIP_ROWS = 256  # pixel rows upsampled at a time (bounds the decoder's memory)

_PARAMS = struct.Struct("<BBBB")  # log2 block, luma step, chroma step, planes
_PLANE = struct.Struct("<hhhB")  # lowest symbol, highest symbol, centre, shape


@dataclass(frozen=True, eq=False)
class Correction:
    """A quantized field: ``values`` (h, w, planes) int32 at ``1 / 2**log2_block`` of the image
    size, planes YCoCg (or Y), in steps of ``step_luma`` / ``step_chroma`` quarter levels."""

    log2_block: int
    step_luma: int
    step_chroma: int
    values: np.ndarray

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Correction) and (
            self.log2_block, self.step_luma, self.step_chroma) == (
            other.log2_block, other.step_luma, other.step_chroma) and np.array_equal(
            self.values, other.values)

    __hash__ = None  # type: ignore[assignment]  # holds an array

    @property
    def block(self) -> int:
        return 1 << self.log2_block

    @property
    def planes(self) -> int:
        return int(self.values.shape[2])

    def steps(self) -> np.ndarray:
        return np.array([self.step_luma] + [self.step_chroma] * (self.planes - 1), np.int64)


def field_shape(width: int, height: int, log2_block: int) -> tuple[int, int]:
    """(h, w) of the field: one value per block, the last blocks partly outside the image."""
    b = 1 << log2_block
    return -(-height // b), -(-width // b)


# ------------------------------------------------------------------------------ the decoder


def axis_weights(n: int, m: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps along one axis (half-pixel centres, edges clamped): for each of ``n``
    pixels the two field indices and their integer weights, which sum to ``2 * b``."""
    num = 2 * np.arange(n, dtype=np.int64) + 1 - b
    k0 = num // (2 * b)
    w1 = num - k0 * 2 * b
    return np.clip(k0, 0, m - 1), np.clip(k0 + 1, 0, m - 1), 2 * b - w1, w1


def eighths(c: Correction) -> np.ndarray:
    """The field in eighths of a level, per RGB channel (h, w, 3), or (h, w, 1) for gray."""
    q = c.values.astype(np.int64) * c.steps()  # quarter levels
    if c.planes == 1:
        return 2 * q
    y, co, cg = q[..., 0], q[..., 1], q[..., 2]
    t = 2 * y - cg
    return np.stack([t + co, 2 * y + cg, t - co], axis=-1)


def apply(pixels: np.ndarray, c: Correction) -> np.ndarray:
    """``pixels`` (H, W, 3) uint8 plus the upsampled field, rounded half up and clamped (in
    place; returned). A one-plane field is added to all three channels."""
    height, width = pixels.shape[:2]
    b = c.block
    f = eighths(c)
    h, w = f.shape[:2]
    if (h, w) != field_shape(width, height, c.log2_block):
        raise ValueError("the correction field does not fit the image")
    r0, r1, rw0, rw1 = axis_weights(height, h, b)
    c0, c1, cw0, cw1 = axis_weights(width, w, b)
    denom = 8 * (2 * b) ** 2
    for y0 in range(0, height, STRIP_ROWS):
        rows = slice(y0, min(height, y0 + STRIP_ROWS))
        v = f[r0[rows]] * rw0[rows, None, None] + f[r1[rows]] * rw1[rows, None, None]
        v = v[:, c0] * cw0[None, :, None] + v[:, c1] * cw1[None, :, None]
        delta = (v + denom // 2) // denom
        out = pixels[rows].astype(np.int64) + delta
        pixels[rows] = np.clip(out, 0, 255).astype(np.uint8)
    return pixels


def geometric_frequencies(lo: int, hi: int, centre: int, shape: int) -> np.ndarray:
    """Integer frequencies (summing to ``2**PRECISION``, each ≥ 1) of symbols ``lo … hi``: a
    two-sided geometric table around ``centre`` with ratio ``shape / (shape + 1)`` per step,
    by integer arithmetic only."""
    ratio = (shape << 16) // (shape + 1)
    span = max(centre - lo, hi - centre)
    weights = np.zeros(span + 1, np.int64)
    weight = 1 << 24
    for k in range(span + 1):
        if not weight:
            break  # the rest stay zero
        weights[k] = weight
        weight = (weight * ratio) >> 16
    dist = np.abs(np.arange(lo, hi + 1, dtype=np.int64) - centre)
    counts = weights[dist]
    total = 1 << PRECISION
    k = len(counts)
    freqs = 1 + (counts * (total - k)) // counts.sum()
    freqs[centre - lo] += total - freqs.sum()
    return freqs


def unpack(payload: bytes, width: int, height: int, planes: int) -> Correction:
    """Parse and decode a CORRECTION payload for an image of ``width × height`` with
    ``planes`` planes (1 gray, 3 colour); :class:`LicError` on anything malformed."""
    if len(payload) < _PARAMS.size:
        raise LicError(f"invalid correction section: {len(payload)} bytes")
    log2_block, step_luma, step_chroma, n = _PARAMS.unpack_from(payload, 0)
    if log2_block > MAX_LOG2_BLOCK:
        raise LicError(f"invalid correction section: block 2^{log2_block} is over "
                       f"2^{MAX_LOG2_BLOCK} pixels")
    if step_luma == 0 or step_chroma == 0:
        raise LicError("invalid correction section: a quantization step of zero")
    if n != planes:
        raise LicError(f"invalid correction section: {n} planes for an image of {planes}")
    pos = _PARAMS.size + n * _PLANE.size
    if len(payload) < pos:
        raise LicError("invalid correction section: truncated plane parameters")
    tables = []
    for p in range(n):
        lo, hi, centre, shape = _PLANE.unpack_from(payload, _PARAMS.size + p * _PLANE.size)
        if not -MAX_SYMBOL <= lo <= centre <= hi <= MAX_SYMBOL:
            raise LicError(f"invalid correction section: plane {p} symbols {lo} … {hi} "
                           f"around {centre}")
        tables.append((lo, geometric_frequencies(lo, hi, centre, shape) if hi > lo else None))
    h, w = field_shape(width, height, log2_block)
    dec = SymbolDecoder(payload[pos:])
    values = np.empty((h, w, n), np.int32)
    for p, (lo, freqs) in enumerate(tables):
        values[..., p] = lo if freqs is None else (dec.decode_iid(freqs, h * w) + lo
                                                   ).reshape(h, w)
    dec.finish()
    return Correction(log2_block, step_luma, step_chroma, values)


# --------------------------------------------------------------------- the section payload


def pack(c: Correction) -> bytes:
    """The CORRECTION payload of ``c``: its parameters, each plane's table, the coded symbols
    (each plane's table shape chosen for the fewest bits)."""
    out = [_PARAMS.pack(c.log2_block, c.step_luma, c.step_chroma, c.planes)]
    stream = SymbolStream()
    for p in range(c.planes):
        v = c.values[..., p].ravel().astype(np.int64)
        lo, hi = int(v.min()), int(v.max())
        hist = np.bincount(v - lo, minlength=hi - lo + 1)
        centre = lo + int(np.argmax(hist))
        shape = _best_shape(hist, lo, hi, centre)
        out.append(_PLANE.pack(lo, hi, centre, shape))
        if hi > lo:  # a constant plane is its parameters alone
            stream.add_iid(v - lo, geometric_frequencies(lo, hi, centre, shape))
    return b"".join(out) + stream.finish()


def _best_shape(hist: np.ndarray, lo: int, hi: int, centre: int) -> int:
    """The shape index whose table codes ``hist`` in the fewest bits (a coarse scan, then
    its neighbourhood)."""
    def bits(shape: int) -> float:
        f = geometric_frequencies(lo, hi, centre, shape)
        return float(-(hist * np.log2(f / (1 << PRECISION))).sum())

    coarse = min(range(0, MAX_SHAPE + 1, 8), key=bits)
    return min(range(max(0, coarse - 7), min(MAX_SHAPE, coarse + 7) + 1), key=bits)
