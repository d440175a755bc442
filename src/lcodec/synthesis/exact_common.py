"""What the exact syntheses share, without torch: the decoder gains at a knob, computed the
same on every platform, the windows, and which models have exact syntheses (network v2).

The decoder gains ``g_dec = exp(interpolated log gains)`` at the header's knob (thousandths)
are computed exactly: the interpolation in rationals, ``exp`` by Python's ``decimal`` (which
the General Decimal Arithmetic specification defines to round correctly, so every platform
gets the same digits), then rounded half-even to 28 significant bits. A 28-bit gain times an
fp16 weight (11 significant bits) is exact in float64, so the folded first-layer weights are
the same everywhere.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from lcodec.errors import LcodecError, LicError

if TYPE_CHECKING:
    from lcodec.models import LoadedModel

GAIN_BITS = 28  # significant bits of an exact decoder gain
_DECIMAL = Context(prec=40, rounding=ROUND_HALF_EVEN)
KNOB_SCALE = 1000  # the header stores the knob in thousandths
EXACT_TILE_PIXELS = 512
EXACT_HALO_PIXELS = 48
REACH_CODES = 3  # a pixel depends only on codes at most this many positions away


def exact_exp(x: Fraction) -> float:
    """``exp(x)`` rounded half-even to ``GAIN_BITS`` significant bits, the same on every
    platform (decimal's exp is correctly rounded; the rest is rational arithmetic)."""
    d = _DECIMAL.divide(Decimal(x.numerator), Decimal(x.denominator))
    e = Fraction(_DECIMAL.exp(d))
    k = GAIN_BITS - 1 - math.floor(math.log2(e))  # a first guess, corrected exactly below
    while e * Fraction(2) ** k >= 2**GAIN_BITS:
        k -= 1
    while e * Fraction(2) ** k < 2 ** (GAIN_BITS - 1):
        k += 1
    return math.ldexp(round(e * Fraction(2) ** k), -k)  # round(Fraction) is half-even


def exact_gains(log_gains: np.ndarray, knob_thousandths: int) -> np.ndarray:
    """Gains ``exp((1 − w)·L[lo] + w·L[lo+1])`` (the float decoder's :func:`interpolate` at
    the same knob, clamped to [-1, 1]) for every channel, as float64 values of 28 bits."""
    anchors = log_gains.shape[0]
    k = min(max(knob_thousandths, -KNOB_SCALE), KNOB_SCALE)
    s = Fraction(k + KNOB_SCALE, 2 * KNOB_SCALE) * (anchors - 1)
    lo = min(max(math.floor(s), 0), anchors - 2)
    w = s - lo
    return np.array([exact_exp((1 - w) * Fraction(float(a)) + w * Fraction(float(b)))
                     for a, b in zip(log_gains[lo], log_gains[lo + 1], strict=True)])


def exact_window(stride: int, reach: int = REACH_CODES) -> tuple[int, int]:
    """(window core, halo) in code positions of the exact syntheses, whose halo must be at
    least their reach: then any window layout gives the very same pixels."""
    tile, halo = max(1, EXACT_TILE_PIXELS // stride), EXACT_HALO_PIXELS // stride
    if halo < reach:
        raise LcodecError("internal error: the window halo is below the exact decoder's reach")
    return tile, halo


def has_exact_synthesis(model: LoadedModel) -> bool:
    """Whether ``model``'s network has the exact syntheses (network v2 does)."""
    return model.architecture == "cwic2"


def require_exact_synthesis(model: LoadedModel) -> None:
    """Refuses a file naming an exact synthesis for a model without one."""
    if not has_exact_synthesis(model):
        raise LicError(f"the file asks for the exact synthesis, which model {model.info.name} "
                       "does not have")
