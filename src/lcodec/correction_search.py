"""The encoder's choice of a correction layer (:mod:`lcodec.correction`) for a decoded image.

Every candidate (block size × step) is fitted, coded and applied for real; the gain is the
drop in squared error of the decoded RGB. With a rate slope (squared error the networks
remove per byte near the file's knob) the choice maximises gain − slope × bytes, i.e. it
only takes a correction that buys more than the same bytes spent on the networks; with a
byte room (the networks' largest file is below the target) it takes the largest gain that
fits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lcodec import correction
from lcodec.container import SECTION_HEADER_SIZE
from lcodec.correction import Correction

LUMA_STEPS = (1, 2, 4, 8, 16, 32)  # quarter levels; chroma (Co, Cg span twice Y's range) twice
RD_BLOCKS = (3, 4, 5, 6, 7)  # log2 block sizes weighed against the networks' slope
FILL_BLOCKS = (0, 1, 2, 3, 4, 5, 6, 7)  # and those tried to fill a target above their range
MAX_STEP = 255
FILL_TOLERANCE = 1.05  # squared error a filling correction may add over the best


@dataclass(frozen=True)
class Choice:
    fix: Correction
    size: int  # bytes the CORRECTION section adds to the file (framing included)
    sse: float  # squared error of the corrected RGB


def sse(a: np.ndarray, b: np.ndarray) -> float:
    d = a.astype(np.int64) - b
    return float(np.vdot(d.ravel(), d.ravel()))


def quantized(f: np.ndarray, log2_block: int, step: int) -> Correction | None:
    """The field ``f`` (from :func:`correction.fit_field`) at a luma step (chroma twice it);
    None where it rounds to zero everywhere."""
    fix = correction.quantize(f, log2_block, step, min(255, 2 * step))
    return fix if fix.values.any() else None


def section_size(fix: Correction) -> int:
    """Bytes the CORRECTION section of ``fix`` adds to a file (framing included)."""
    return len(correction.pack(fix)) + SECTION_HEADER_SIZE


def chosen(source: np.ndarray, decoded: np.ndarray, fix: Correction, size: int) -> Choice:
    """``fix`` of ``size`` bytes applied to ``decoded``: its squared error."""
    return Choice(fix, size, sse(source, correction.apply(decoded.copy(), fix)))


def coded(source: np.ndarray, decoded: np.ndarray, f: np.ndarray, log2_block: int,
          step: int) -> Choice | None:
    """The field ``f`` at a luma step, coded and applied; None where it rounds to zero."""
    fix = quantized(f, log2_block, step)
    return None if fix is None else chosen(source, decoded, fix, section_size(fix))


def candidates(source: np.ndarray, decoded: np.ndarray, gray: bool,
               blocks: tuple[int, ...]) -> Iterator[Choice]:
    """Every (block, step) correction of ``decoded`` towards ``source``, coded and applied."""
    for lb in blocks:
        f = correction.fit_field(source, decoded, lb, gray)
        for step in LUMA_STEPS:
            c = coded(source, decoded, f, lb, step)
            if c is not None:
                yield c


def best_for_slope(source: np.ndarray, decoded: np.ndarray, gray: bool, slope: float,
                   room: int) -> Choice | None:
    """The correction maximising gain − ``slope`` × bytes (at most ``room`` bytes), if any
    gains more than its bytes would on the networks."""
    base = sse(source, decoded)
    best, best_net = None, 0.0
    for c in candidates(source, decoded, gray, RD_BLOCKS):
        net = base - c.sse - slope * c.size
        if c.size <= room and net > best_net:
            best, best_net = c, net
    return best


def best_within(source: np.ndarray, decoded: np.ndarray, gray: bool, room: int,
                fill: int = 0) -> Choice | None:
    """The correction of the least squared error that adds at most ``room`` bytes: at each
    block size the finest step that fits (a bisection over steps 1 … 255, sizes falling as
    steps grow), then the best of those; or, where that one adds fewer than ``fill`` bytes,
    the best that adds at least ``fill`` if its error is within ``FILL_TOLERANCE`` (the size
    asked for is the size given, unless that costs more than a little quality)."""
    found = []
    base = sse(source, decoded)
    for lb in FILL_BLOCKS:
        f = correction.fit_field(source, decoded, lb, gray)
        # the finest step that fits (on sizes alone): an all-zero field (None) fits, at no gain
        lo, hi, fits = 0, MAX_STEP + 1, None  # step lo is too big (0: none), hi fits
        while hi - lo > 1:
            mid = (lo + hi) // 2
            fix = quantized(f, lb, mid)
            size = 0 if fix is None else section_size(fix)
            if fix is None or size <= room:
                hi, fits = mid, (None if fix is None else (fix, size))
            else:
                lo = mid
        if fits is None:
            continue
        c = chosen(source, decoded, *fits)
        if c.sse < base:
            found.append(c)
    if not found:
        return None
    best = min(found, key=lambda c: c.sse)
    filling = [c for c in found if c.size >= fill and c.sse <= FILL_TOLERANCE * best.sse]
    return min(filling, key=lambda c: c.sse) if filling else best
