"""Rate control: choose the highest rate knob whose file fits a byte budget.

File size grows with the knob (a larger offset raises every importance level), so a
bisection over the knob on real coded bytes finds the target, as tfci does over its RD
parameter; the size is checked on the actual file, never on an estimate. Where the size is
not monotone (a flat image near knob +1 can make a smaller file at +1 than at +0.94), the
higher knob wins over the larger file: quality follows the knob, not the byte count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from typing import TypeVar

from lcodec.errors import LcodecError

T = TypeVar("T")

KNOB_MIN, KNOB_MAX = -1.0, 1.0  # the rate knob's range; the networks clamp to it
KNOB_STEP = 0.001  # the header's resolution


class BelowRange(LcodecError):
    """The byte budget is below the smallest file the model makes (``smallest`` bytes)."""

    def __init__(self, budget: int, smallest: int) -> None:
        super().__init__(f"the target of {budget} bytes is below the smallest file this model "
                         f"makes ({smallest} bytes); ask for at least that")
        self.smallest = smallest


def first_that_fits(attempts: Iterable[tuple[str, Callable[[], T]]], budget: int) -> T:
    """The result of the first ``(name, attempt)`` whose smallest file fits the byte budget.

    An attempt raises :class:`BelowRange` when even its smallest file is too big; then the
    next one is tried (a smaller-rate model). When none fits, one error names the smallest
    file any of them makes."""
    smallest: list[tuple[int, str]] = []
    attempts = list(attempts)
    for name, attempt in attempts:
        try:
            return attempt()
        except BelowRange as err:
            if len(attempts) == 1:
                raise
            smallest.append((err.smallest, name))
    if not smallest:
        raise LcodecError("no model to encode with")
    least, name = min(smallest)
    raise LcodecError(f"the target of {budget} bytes is below the smallest file any shipped "
                      f"model makes ({least} bytes, with {name}); ask for at least that")


@dataclass
class RateResult:
    """A file at a knob: ``data`` is anything whose ``len()`` is the file's size in bytes
    (the encoder's drafts, or packed bytes)."""

    data: Sized
    knob: float


def fit_budget(encode: Callable[[float], Sized], budget: int, lo: float = KNOB_MIN,
               hi: float = KNOB_MAX, iterations: int = 14) -> RateResult:
    """The file of the highest knob in [lo, hi] with ``len(file) <= budget`` that the
    bisection meets (with sizes growing with the knob: the largest file not above it).

    Raises :class:`BelowRange` (naming the smallest size) when even ``lo`` is too big.
    """
    smallest = encode(lo)
    if len(smallest) > budget:
        raise BelowRange(budget, len(smallest))
    best = RateResult(smallest, lo)
    largest = encode(hi)
    if len(largest) <= budget:
        return RateResult(largest, hi)
    for _ in range(iterations):
        if hi - lo <= KNOB_STEP:
            break
        mid = round((lo + hi) / 2, 3)
        data = encode(mid)
        if len(data) <= budget:
            lo = mid  # lo only grows: this is the highest fitting knob so far
            best = RateResult(data, mid)
        else:
            hi = mid
    return best


def fit_quality(encode: Callable[[float], Sized], quality: Callable[[Sized], float],
                target: float, lo: float = KNOB_MIN, hi: float = KNOB_MAX,
                iterations: int = 12, unit: str = "") -> RateResult:
    """Smallest file whose ``quality(file) >= target`` (e.g. PSNR of the decoded image).

    Raises LcodecError naming the best achievable quality (in ``unit``, e.g. " dB") when
    even ``hi`` falls short.
    """
    best_data = encode(hi)
    best_q = quality(best_data)
    if best_q < target:
        raise LcodecError(
            f"this model reaches at most {best_q:.2f}{unit} at its highest rate "
            f"({len(best_data)} bytes), below the target of {target:.2f}{unit}; give a "
            "lower target"
        )
    best = RateResult(best_data, hi)
    for _ in range(iterations):
        if hi - lo <= KNOB_STEP:
            break
        mid = round((lo + hi) / 2, 3)
        data = encode(mid)
        if quality(data) >= target:
            hi = mid
            if len(data) <= len(best.data):
                best = RateResult(data, mid)
        else:
            lo = mid
    return best


def quality_to_knob(quality: float) -> float:
    """Map a 0-100 quality setting linearly onto the rate knob's [-1, 1]."""
    if not 0 <= quality <= 100:
        raise LcodecError(f"quality must be between 0 and 100, not {quality}")
    return round((quality - 50) / 50, 3)


def fit_budget_two_stage(encode_fast: Callable[[float], Sized],
                         encode_final: Callable[[float], Sized], budget: int,
                         rounds: int = 3, refine: int = 8, close: float = 0.985) -> RateResult:
    """:func:`fit_budget` when the final coder is slow (the TCAE) and a fast one (the static
    tables) roughly tracks its size: bisect on the fast coder, measure the final/fast size
    ratio at the knob found, retarget the fast coder's budget by that ratio, and repeat; if
    the best real file is still not within ``close`` of the budget, finish with a bisection
    on the final coder between the bracketing knobs seen so far. Every candidate is a real
    final file; the result is the one of the highest knob not above ``budget``.
    """
    best: RateResult | None = None
    lo_knob, hi_knob = KNOB_MIN, KNOB_MAX  # final(lo) <= budget < final(hi) once both are seen
    target = budget
    tried: set[float] = set()

    def consider(knob: float, data: Sized) -> None:
        nonlocal best, lo_knob, hi_knob
        if len(data) <= budget:
            lo_knob = max(lo_knob, knob)
            if best is None or knob > best.knob:
                best = RateResult(data, knob)
        else:
            hi_knob = min(hi_knob, knob)

    for _ in range(rounds):
        try:
            knob = fit_budget(encode_fast, max(1, int(target))).knob
        except BelowRange:
            knob = KNOB_MIN
        if knob in tried:
            break
        tried.add(knob)
        data = encode_final(knob)
        consider(knob, data)
        if best is not None and len(best.data) >= close * budget:
            return best
        target = budget / (len(data) / max(1, len(encode_fast(knob))))
    if best is None:
        smallest = encode_final(KNOB_MIN)
        if len(smallest) > budget:
            raise BelowRange(budget, len(smallest))
        consider(KNOB_MIN, smallest)
    for _ in range(refine):
        if len(best.data) >= close * budget or hi_knob - lo_knob <= KNOB_STEP:
            break
        mid = round((lo_knob + hi_knob) / 2, 3)
        if mid in (lo_knob, hi_knob):
            break
        consider(mid, encode_final(mid))
    return best
