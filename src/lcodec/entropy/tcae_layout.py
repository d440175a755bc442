"""Coding order of an inclined TCAE: the taps of its trimmed convolutions and the layout of a
cuboid's active positions (plane by plane, with gather indices and ring-buffer slots).

Specification: docs/format.md, "Section payloads (entropy method INCLINED_TCAE_V1)".
"""

from __future__ import annotations

import numpy as np

from lcodec.entropy.tcae_config import TcaeConfig


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


class Layout:
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

