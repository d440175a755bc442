"""Entropy method STATIC_CONTEXT_V1: fixed context tables fitted on training codes.

Code cuboids (luma ``o``, chroma ``o``) are coded channel by channel; a symbol's context is
the levels of the same position in the two previous channels (+1, 0 = "none"), which the
prefix mask of eq. 4 guarantees are already decoded. The importance map QI is coded row by
row with the row above as context (the values above and above-left). Masked-out positions
are never coded: the decoder derives the mask from QI.

Tables are integer frequencies shipped with the model weights, so no side information is
stored in the file and each channel or row is decoded in one batched call.
"""

from __future__ import annotations

import numpy as np

from lcodec.entropy.coder import (
    SymbolDecoder,
    SymbolStream,
    frequencies_from_counts,
)

ROWS = 64  # importance-map rows per coding batch


def _code_contexts(codes: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Contexts (c1, c2) of channel k at every position: previous channels' level + 1, or 0."""
    def prev(j: int) -> np.ndarray:
        if j < 0:
            return np.zeros(codes.shape[1:], dtype=np.int64)
        return np.where(mask[j], codes[j] + 1, 0)

    return prev(k - 1), prev(k - 2)


def count_codes(codes: np.ndarray, mask: np.ndarray, counts: np.ndarray) -> None:
    """Add the (channel, c1, c2, level) counts of one (n, h, w) cuboid to ``counts``."""
    for k in range(codes.shape[0]):
        c1, c2 = _code_contexts(codes, mask, k)
        sel = mask[k]
        np.add.at(counts[k], (c1[sel], c2[sel], codes[k][sel]), 1)


def count_importance(qi: np.ndarray, counts: np.ndarray) -> None:
    """Add the (above, above-left, level) counts of one (h, w) QI map to ``counts``."""
    up, upleft = _importance_contexts(qi)
    np.add.at(counts, (up.ravel(), upleft.ravel(), qi.ravel()), 1)


def _importance_contexts(qi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = qi.shape
    up = np.zeros((h, w), dtype=np.int64)
    upleft = np.zeros((h, w), dtype=np.int64)
    up[1:] = qi[:-1] + 1
    upleft[1:, 1:] = qi[:-1, :-1] + 1
    return up, upleft


def fit_tables(counts: np.ndarray) -> np.ndarray:
    """Frozen int32 frequency tables from accumulated counts."""
    return frequencies_from_counts(counts).astype(np.int32)


def encode_codes(codes: np.ndarray, mask: np.ndarray, table: np.ndarray) -> bytes:
    """Encode the masked symbols of an (n, h, w) cuboid, channel by channel.

    Each channel is appended to one range-coder stream (memory stays one channel's worth).
    """
    stream = SymbolStream()
    for k in range(codes.shape[0]):
        c1, c2 = _code_contexts(codes, mask, k)
        sel = mask[k]
        stream.add(codes[k][sel], table[k][c1[sel], c2[sel]])
    return stream.finish()


def decode_codes(payload: bytes, mask: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_codes` (uint8); positions outside the mask come back as 0."""
    dec = SymbolDecoder(payload)
    codes = np.zeros(mask.shape, dtype=np.uint8)  # levels < T <= 255
    for k in range(mask.shape[0]):
        c1, c2 = _code_contexts(codes, mask, k)
        sel = mask[k]
        codes[k][sel] = dec.decode(table[k][c1[sel], c2[sel]])
    dec.finish()
    return codes


def encode_importance(qi: np.ndarray, table: np.ndarray) -> bytes:
    """Encode an (h, w) QI map in raster order, ``ROWS`` rows per batch (one stream: the same
    bytes as one batch, with the frequency rows of a few rows in memory, not of the map)."""
    up, upleft = _importance_contexts(qi)
    stream = SymbolStream()
    for r0 in range(0, qi.shape[0], ROWS):
        rows = slice(r0, r0 + ROWS)
        stream.add(qi[rows].ravel(), table[up[rows].ravel(), upleft[rows].ravel()])
    return stream.finish()


def decode_importance(payload: bytes, shape: tuple[int, int], table: np.ndarray) -> np.ndarray:
    """Decode an (h, w) uint8 QI map row by row (each row in one batched call)."""
    h, w = shape
    dec = SymbolDecoder(payload)
    qi = np.zeros((h, w), dtype=np.uint8)  # levels < L <= 255
    for i in range(h):
        up = qi[i - 1] + 1 if i else np.zeros(w, dtype=np.int64)
        upleft = np.zeros(w, dtype=np.int64)
        if i:
            upleft[1:] = qi[i - 1, :-1] + 1
        qi[i] = dec.decode(table[up, upleft])
    dec.finish()
    return qi


def code_length_bits(codes: np.ndarray, mask: np.ndarray, table: np.ndarray) -> float:
    """The model's own estimate Σ −log2 p of a cuboid's masked symbols."""
    total = 0.0
    scale = float(table.sum(-1).flat[0])
    for k in range(codes.shape[0]):
        c1, c2 = _code_contexts(codes, mask, k)
        sel = mask[k]
        f = table[k][c1[sel], c2[sel], codes[k][sel]]
        total += float(np.sum(np.log2(scale / f)))
    return total


def importance_code_length_bits(qi: np.ndarray, table: np.ndarray) -> float:
    """The model's own estimate Σ −log2 p of an (h, w) QI map."""
    up, upleft = _importance_contexts(qi.astype(np.int64))
    scale = float(table.sum(-1).flat[0])
    return float(np.sum(np.log2(scale / table[up, upleft, qi])))
