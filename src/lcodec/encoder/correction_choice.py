"""The encoder's choice of a correction layer (:mod:`lcodec.correction`, format 1.3).

A correction field is fitted to the residual of the decoded image (block means in YCoCg,
refined through the bilinear upsampling) and quantized; every candidate (block size × step)
is coded and applied for real, its gain the drop in squared error of the decoded RGB.

Without a byte budget the choice maximises gain − slope × bytes, the slope being the squared
error the networks remove per byte near the file's knob: a correction is taken only where it
buys more than the same bytes would on the networks. With a budget the networks' largest
file does not reach, the least error that fits wins (:func:`best_within`); otherwise a
gainful correction, the networks then refitted to the bytes left. Near the top of the
networks' range, files a few knob steps lower with a correction filling the budget are tried
as well (:func:`corrected`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lcodec import correction
from lcodec.container import SECTION_HEADER_SIZE, SectionType
from lcodec.correction import Correction, axis_weights, field_shape
from lcodec.effort import Effort, lambda_slope
from lcodec.encoder.analysis import ImageAnalysis
from lcodec.encoder.draft import Draft
from lcodec.encoder.rate import fit_analysis
from lcodec.ratecontrol import KNOB_MAX, KNOB_MIN, BelowRange, RateResult

LOW_FILL = 0.97  # a budget is filled to at least this share where that costs little
FILL_BLOCKS = (0, 1, 2, 3, 4, 5, 6, 7)  # and those tried to fill a target above their range
MAX_STEP = 255
FILL_TOLERANCE = 1.05  # squared error a filling correction may add over the best
SLOPE_KNOB_STEPS = (0.1, 0.2)  # the networks' rate slope: chords to files this far down
FILL_FROM_KNOB = 0.5  # with a byte budget, networks' files at or above this knob ...
FILL_KNOB_STEP = 0.15  # ... are also tried this much lower, the correction filling the rest

_TO_YCOCG = np.array([[0.25, 0.5, 0.25], [1.0, 0.0, -1.0], [-0.5, 1.0, -0.5]])


# ------------------------------------------------------------------------- fitting a field


def _block_mean(r: np.ndarray, b: int, h: int, w: int) -> np.ndarray:
    height, width = r.shape[:2]
    p = np.pad(r, ((0, h * b - height), (0, w * b - width), (0, 0)), mode="edge")
    return p.reshape(h, b, w, b, r.shape[2]).mean(axis=(1, 3))


def _upsample(f: np.ndarray, b: int, height: int, width: int) -> np.ndarray:
    r0, r1, rw0, rw1 = axis_weights(height, f.shape[0], b)
    c0, c1, cw0, cw1 = axis_weights(width, f.shape[1], b)
    rw0, rw1, cw0, cw1 = (a.astype(f.dtype) / (2 * b) for a in (rw0, rw1, cw0, cw1))
    v = f[r0] * rw0[:, None, None] + f[r1] * rw1[:, None, None]
    return v[:, c0] * cw0[None, :, None] + v[:, c1] * cw1[None, :, None]


def fit_field(source: np.ndarray, decoded: np.ndarray, log2_block: int, gray: bool = False,
              iterations: int = 3) -> np.ndarray:
    """The unquantized field (h, w, planes), in levels, that brings ``decoded`` towards
    ``source`` (both (H, W, 3) uint8): block means of the residual in YCoCg (Y for gray),
    refined by back-projection through the bilinear upsampling."""
    b = 1 << log2_block
    height, width = source.shape[:2]
    h, w = field_shape(width, height, log2_block)
    r = source.astype(np.float32) - decoded  # float32: an encoder's estimate, twice as fast
    r = r[..., :1] if gray else r @ _TO_YCOCG.T.astype(np.float32)
    f = _block_mean(r, b, h, w)
    if b > 1:
        for _ in range(iterations):
            f += _block_mean(r - _upsample(f, b, height, width), b, h, w)
    return f


def quantize(f: np.ndarray, log2_block: int, step_luma: int, step_chroma: int) -> Correction:
    """A field from :func:`fit_field` rounded to the steps (quarter levels)."""
    steps = np.array([step_luma] + [step_chroma] * (f.shape[2] - 1), np.float64) / 4
    q = np.clip(np.rint(f / steps), -correction.MAX_SYMBOL, correction.MAX_SYMBOL)
    return Correction(log2_block, step_luma, step_chroma, q.astype(np.int32))


def fit(source: np.ndarray, decoded: np.ndarray, log2_block: int, step_luma: int,
        step_chroma: int, gray: bool = False) -> Correction:
    """:func:`fit_field`, quantized."""
    return quantize(fit_field(source, decoded, log2_block, gray), log2_block, step_luma,
                    step_chroma)


# ---------------------------------------------------------------------- weighing candidates


@dataclass(frozen=True)
class Choice:
    fix: Correction
    size: int  # bytes the CORRECTION section adds to the file (framing included)
    sse: float  # squared error of the corrected RGB


def sse(a: np.ndarray, b: np.ndarray) -> float:
    d = a.astype(np.int64) - b
    return float(np.vdot(d.ravel(), d.ravel()))


def quantized(f: np.ndarray, log2_block: int, step: int) -> Correction | None:
    """The field ``f`` (from :func:`fit_field`) at a luma step (chroma twice it); None where
    it rounds to zero everywhere."""
    fix = quantize(f, log2_block, step, min(255, 2 * step))
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
               blocks: tuple[int, ...], steps: tuple[int, ...]) -> Iterator[Choice]:
    """Every (block, step) correction of ``decoded`` towards ``source``, coded and applied
    (``steps``: luma steps in quarter levels; chroma's, whose Co and Cg span twice Y's range,
    are twice them)."""
    for lb in blocks:
        f = fit_field(source, decoded, lb, gray)
        for step in steps:
            c = coded(source, decoded, f, lb, step)
            if c is not None:
                yield c


def best_for_slope(source: np.ndarray, decoded: np.ndarray, gray: bool, slope: float,
                   room: int, blocks: tuple[int, ...], steps: tuple[int, ...]
                   ) -> Choice | None:
    """The correction among ``blocks`` × ``steps`` maximising gain − ``slope`` × bytes (at
    most ``room`` bytes), if any gains more than its bytes would on the networks."""
    base = sse(source, decoded)
    best, best_net = None, 0.0
    for c in candidates(source, decoded, gray, blocks, steps):
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
        f = fit_field(source, decoded, lb, gray)
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


# ------------------------------------------------------------------- a correction for a file


def with_fix(draft: Draft, fix: Correction) -> Draft:
    """``draft`` with ``fix`` as its CORRECTION section."""
    return draft.with_section(SectionType.CORRECTION, correction.pack(fix))


def _network_slope(analysis: ImageAnalysis, res: RateResult, plan: Effort) -> float:
    """Squared error (RGB, summed) the networks remove per byte near ``res``'s knob.

    Measured (``plan.measured_slope``, or a model not trained on MSE): the smaller of the
    chords (float decodings) to files ``SLOPE_KNOB_STEPS`` lower, or higher near -1. Smooth
    curves are convex, so the shorter chord is the closer; on flat images the error is not
    monotone in the knob, and the smaller chord keeps a noisy one from ruling the correction
    out (:func:`corrected` checks the result against ``res``). Otherwise the formula from
    the model's training λ (:func:`~lcodec.effort.lambda_slope`), with no decode."""
    src = analysis.source
    lam_range = analysis.model.config.lam_range
    trained_on_mse = analysis.model.info.card.get("training", {}).get("distortion",
                                                                      "mse") == "mse"
    if not plan.measured_slope and trained_on_mse and min(lam_range) > 0:
        return lambda_slope(lam_range, res.knob)

    def error(knob: float) -> float:
        return sse(src.rgb, analysis.float_pixels(knob))

    here = error(res.knob)
    slopes = []
    for step in SLOPE_KNOB_STEPS:
        other = res.knob - step if res.knob - step >= KNOB_MIN else res.knob + step
        other_size = len(analysis.draft(other))
        if other_size != len(res.data):
            slopes.append(max(0.0, (error(other) - here) / (len(res.data) - other_size)))
    return min(slopes, default=0.0)


@dataclass
class _Candidate:
    """A file and the squared error (RGB, summed) of the pixels it decodes to (``exact``:
    measured on its exact decode, else estimated: its field was fitted and weighed on the
    pixels of another knob)."""

    res: RateResult
    sse: float
    exact: bool = True
    fix: Correction | None = None  # of an estimated one


def _measured(analysis: ImageAnalysis, cand: _Candidate) -> _Candidate:
    """``cand`` with its squared error measured on the exact decode of its file."""
    if cand.exact:
        return cand
    src = analysis.source
    pixels = analysis.decoded_pixels(cand.res.knob)
    if cand.fix is not None:
        pixels = correction.apply(pixels, cand.fix)
    return _Candidate(cand.res, sse(src.rgb, pixels))


def corrected(analysis: ImageAnalysis, res: RateResult, budget: int | None,
              plan: Effort) -> RateResult:
    """``res`` (a :class:`Draft` of the networks alone) with the correction layer the encoder
    chooses.

    Without a ``budget``: one that gains more than its bytes would on the networks. With one:
    below a budget the networks' largest file does not reach, the least error that fits;
    otherwise such a gainful one, the networks then refitted to the bytes left. Near the
    top of the networks' range (knob >= ``FILL_FROM_KNOB``, where they gain little per
    byte) files ``FILL_KNOB_STEP`` lower, their correction filling the budget, are tried
    as well (``plan.fill_tries`` at most), stepping down while each beats the last. The
    result is never worse than ``res`` (squared error at a size within the budget, on the
    pixels the plan fits to)."""
    if budget is None:
        return _gainful(analysis, res, None, plan).res
    if res.knob >= KNOB_MAX and len(res.data) < budget:
        best = _filled(analysis, res, budget)
    else:
        best = _gainful(analysis, res, budget, plan)
    knob = res.knob
    for _ in range(plan.fill_tries):
        knob = round(knob - FILL_KNOB_STEP, 3)
        if knob + FILL_KNOB_STEP < FILL_FROM_KNOB or knob < KNOB_MIN:
            break
        lower = analysis.draft(knob)
        if len(lower) >= budget:
            break
        other = _filled(analysis, RateResult(lower, knob), budget)
        best = _measured(analysis, best)  # compared on exact decodes, as other's error is
        filled = min(len(best.res.data), math.ceil(LOW_FILL * budget))
        if other.sse >= best.sse or len(other.res.data) < filled:  # better, and as full
            break
        best = other
    return best.res


def _filled(analysis: ImageAnalysis, res: RateResult, budget: int) -> _Candidate:
    """``res`` (below ``budget``) with the correction of least error that fits the budget,
    filling it to ``LOW_FILL`` where that costs little (:func:`best_within`). Fitted to the
    exact decode at every effort: a filling field goes down to per-pixel residuals, where
    only the exact pixels make the file reach what it promises (lossless, for a flat
    image)."""
    src = analysis.source
    decoded = analysis.decoded_pixels(res.knob)
    choice = best_within(src.rgb, decoded, src.gray, budget - len(res.data),
                         math.ceil(LOW_FILL * budget) - len(res.data))
    if choice is None:
        return _Candidate(res, sse(src.rgb, decoded))
    return _Candidate(RateResult(with_fix(res.data, choice.fix), res.knob), choice.sse)


def _gainful(analysis: ImageAnalysis, res: RateResult, budget: int | None, plan: Effort
             ) -> _Candidate:
    """``res`` with the correction that gains more than its bytes would on the networks
    (at most a quarter of a ``budget``), the networks then refitted to the bytes left;
    ``res`` itself where none does or the refitted file is no better."""
    src = analysis.source
    # exact where the plan asks, or at a fixed knob (its grid calibration is then the file's
    # own, so only the exact synthesis is added); else a float decode
    exact = plan.exact_pixels or budget is None
    decoded = (analysis.decoded_pixels if exact else analysis.float_pixels)(res.knob)
    base = _Candidate(res, sse(src.rgb, decoded), exact)
    slope = _network_slope(analysis, res, plan)
    room = budget // 4 if budget is not None else 1 << 62
    choice = best_for_slope(src.rgb, decoded, src.gray, slope, room, plan.blocks, plan.steps)
    if choice is None:
        return base
    if budget is None:
        return _Candidate(RateResult(with_fix(res.data, choice.fix), res.knob), choice.sse)
    fix = choice.fix
    target = budget - choice.size
    for _ in range(2):  # refit the networks to the bytes left, then the field to their pixels
        try:
            net = fit_analysis(analysis, target, plan.close)
        except BelowRange:
            return base
        if not plan.refit_field:  # the field of the first knob, on the networks' new file
            data = with_fix(net.data, fix)
            if len(data) <= budget:
                return _Candidate(RateResult(data, net.knob), choice.sse, False, fix)
            target -= len(data) - budget
            continue
        pixels = analysis.decoded_pixels(net.knob)
        fix = fit(src.rgb, pixels, fix.log2_block, fix.step_luma, fix.step_chroma, src.gray)
        data = with_fix(net.data, fix)
        if len(data) <= budget:
            err = sse(src.rgb, correction.apply(pixels, fix))
            return _Candidate(RateResult(data, net.knob), err) if err < base.sse else base
        target -= len(data) - budget
    return base
