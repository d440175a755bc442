"""The traditional codecs timed at the setting of their ``lcodec eval`` sweep whose bpp is
closest to lcodec's file."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class BaselineTiming:
    codec: str
    setting: float
    bpp: float
    encode_s: float
    decode_s: float


def time_baseline(name: str, rgb: np.ndarray, bpp: float, repeat: int) -> BaselineTiming:
    """Time the codec at the sweep setting whose bpp is nearest ``bpp`` (bisection on the
    sweep, which is monotone in rate)."""
    from lcodec.evaluate import baselines

    b = baselines.get(name)
    px = rgb.shape[0] * rgb.shape[1]
    sizes: dict[float, float] = {}

    def rate(s: float) -> float:
        if s not in sizes:
            sizes[s] = len(b.encode(rgb, s)) * 8 / px
        return sizes[s]

    settings = sorted(b.settings, key=lambda s: s if b.setting_name != "distance" else -s)
    lo, hi = 0, len(settings) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if rate(settings[mid]) < bpp:
            lo = mid
        else:
            hi = mid
    best = min((settings[lo], settings[hi]), key=lambda s: abs(np.log(rate(s) / bpp)))
    enc = dec = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        data = b.encode(rgb, best)
        t1 = time.perf_counter()
        b.decode(data)
        t2 = time.perf_counter()
        enc, dec = min(enc, t1 - t0), min(dec, t2 - t1)
    return BaselineTiming(name, best, len(data) * 8 / px, enc, dec)
