"""Bjøntegaard delta rate (BD-rate) and rate-distortion curve helpers, numpy only.

BD-rate (Bjøntegaard, VCEG-M33, 2001; piecewise-cubic variant as in JVET-K0491 / the
``bjontegaard`` package): fit log-rate as a function of quality for the anchor and the test
curve, integrate both over the quality interval they share, and report
``exp(mean difference) - 1`` in percent. Negative means the test codec needs fewer bits for the
same quality. Two fits:

- ``"pchip"`` (default): the piecewise-cubic Hermite interpolant of Fritsch & Carlson (the
  shape-preserving one of ``scipy.interpolate.PchipInterpolator``) through the points,
  integrated exactly (two-point Gauss-Legendre per cubic piece). Robust with many points.
- ``"cubic"``: the original least-squares cubic polynomial of log-rate in quality.

Before fitting, a curve is reduced to its rate-distortion hull (sorted by rate, keeping only
points that improve quality), and, when a rate range is given, clipped to it: points outside
are dropped and the curve's quality at the range ends is added by PCHIP interpolation in
log-rate, so that every codec is compared over the same bpp span.
"""

from __future__ import annotations

import math

import numpy as np

_GAUSS2 = np.array([-1.0, 1.0]) / math.sqrt(3.0)  # two-point Gauss-Legendre nodes on [-1, 1]


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson derivatives at the knots (scipy's PchipInterpolator rules)."""
    n = len(x)
    h = np.diff(x)
    delta = np.diff(y) / h
    if n == 2:
        return np.array([delta[0], delta[0]])
    d = np.zeros(n)
    w1 = 2 * h[1:] + h[:-1]
    w2 = h[1:] + 2 * h[:-1]
    same = (np.sign(delta[:-1]) * np.sign(delta[1:])) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
    d[1:-1] = np.where(same, harmonic, 0.0)

    def edge(h0: float, h1: float, m0: float, m1: float) -> float:
        e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(e) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(e) > abs(3 * m0):
            return 3 * m0
        return e

    d[0] = edge(h[0], h[1], delta[0], delta[1])
    d[-1] = edge(h[-1], h[-2], delta[-1], delta[-2])
    return d


def pchip(x: np.ndarray, y: np.ndarray, xq: np.ndarray | float) -> np.ndarray:
    """Evaluate the PCHIP interpolant through (x, y) (x strictly increasing) at ``xq``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xq = np.asarray(xq, dtype=np.float64)
    d = _pchip_slopes(x, y)
    i = np.clip(np.searchsorted(x, xq, side="right") - 1, 0, len(x) - 2)
    h = x[i + 1] - x[i]
    t = (xq - x[i]) / h
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * y[i] + (t3 - 2 * t2 + t) * h * d[i]
            + (-2 * t3 + 3 * t2) * y[i + 1] + (t3 - t2) * h * d[i + 1])


def pchip_integral(x: np.ndarray, y: np.ndarray, a: float, b: float) -> float:
    """Exact integral over [a, b] (inside [x0, xn]) of the PCHIP interpolant through (x, y)."""
    x = np.asarray(x, dtype=np.float64)
    cuts = np.concatenate([[a], x[(x > a) & (x < b)], [b]])
    lo, hi = cuts[:-1], cuts[1:]
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    nodes = mid[:, None] + half[:, None] * _GAUSS2[None, :]
    return float(np.sum(half[:, None] * pchip(x, y, nodes)))


def rd_hull(rate: np.ndarray, quality: np.ndarray, higher_is_better: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by rate that each improve quality on every cheaper point (NaNs dropped)."""
    rate = np.asarray(rate, dtype=np.float64)
    quality = np.asarray(quality, dtype=np.float64)
    ok = np.isfinite(rate) & np.isfinite(quality) & (rate > 0)
    rate, quality = rate[ok], quality[ok]
    sign = 1.0 if higher_is_better else -1.0
    order = np.lexsort((-sign * quality, rate))
    keep_r, keep_q = [], []
    for r, q in zip(rate[order], quality[order], strict=True):
        if not keep_q or sign * q > sign * keep_q[-1]:
            if keep_r and r == keep_r[-1]:
                continue
            keep_r.append(r)
            keep_q.append(q)
    return np.array(keep_r), np.array(keep_q)


def clip_rate(rate: np.ndarray, quality: np.ndarray, lo: float, hi: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Restrict a hull to rates in [lo, hi], adding PCHIP (log-rate) points at the ends."""
    if len(rate) < 2:
        return rate[(rate >= lo) & (rate <= hi)], quality[(rate >= lo) & (rate <= hi)]
    lr = np.log(rate)
    a, b = max(math.log(lo), lr[0]), min(math.log(hi), lr[-1])
    if a >= b:
        return np.array([]), np.array([])
    inside = (lr > a) & (lr < b)
    ends = pchip(lr, quality, np.array([a, b]))
    new_lr = np.concatenate([[a], lr[inside], [b]])
    new_q = np.concatenate([[ends[0]], quality[inside], [ends[1]]])
    return np.exp(new_lr), new_q


def bd_rate(rate_anchor, q_anchor, rate_test, q_test, *, method: str = "pchip",
            rate_range: tuple[float, float] | None = None,
            higher_is_better: bool = True) -> float:
    """BD-rate of the test curve against the anchor curve, in percent (NaN if they do not
    overlap in quality). ``rate_range``: (lo, hi) in the rate's unit, applied to both curves.
    """
    if method not in ("pchip", "cubic"):
        raise ValueError(f"unknown BD-rate method {method!r}")
    curves = []
    for r, q in ((rate_anchor, q_anchor), (rate_test, q_test)):
        r, q = rd_hull(r, q, higher_is_better)
        if rate_range is not None:
            r, q = clip_rate(r, q, *rate_range)
        if len(r) < (4 if method == "cubic" else 2):
            return math.nan
        # integrate along increasing "goodness", so ΔE (lower is better) is negated
        curves.append((np.log(r), q if higher_is_better else -q))
    (la, qa), (lt, qt) = curves
    q_lo, q_hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    if not q_lo < q_hi:
        return math.nan
    if method == "cubic":
        ints = []
        for lr, q in ((la, qa), (lt, qt)):
            p = np.polyint(np.polyfit(q, lr, 3))
            ints.append(np.polyval(p, q_hi) - np.polyval(p, q_lo))
        diff = (ints[1] - ints[0]) / (q_hi - q_lo)
    else:
        diff = (pchip_integral(qt, lt, q_lo, q_hi)
                - pchip_integral(qa, la, q_lo, q_hi)) / (q_hi - q_lo)
    return (math.exp(diff) - 1) * 100


def quality_at(rate: np.ndarray, quality: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """A curve's quality at target rates, linear in log-rate between the measured points;
    NaN outside the measured span (no extrapolation). Points with equal rate are averaged.
    """
    rate = np.asarray(rate, dtype=np.float64)
    quality = np.asarray(quality, dtype=np.float64)
    ok = np.isfinite(rate) & np.isfinite(quality) & (rate > 0)
    rate, quality = rate[ok], quality[ok]
    targets = np.asarray(targets, dtype=np.float64)
    if len(rate) == 0:
        return np.full(targets.shape, np.nan)
    ur, inv = np.unique(rate, return_inverse=True)
    uq = np.bincount(inv, weights=quality) / np.bincount(inv)
    out = np.interp(np.log(targets), np.log(ur), uq)
    # allow a relative tolerance at the ends so a sweep that hits a target exactly counts
    outside = (targets < ur[0] * (1 - 1e-9)) | (targets > ur[-1] * (1 + 1e-9))
    return np.where(outside, np.nan, out)
