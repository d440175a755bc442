"""Encoder effort levels 1…9 (like ``cjxl -e``): how much searching an encode buys. Every
level writes files the same decoder reads; a higher level is slower and, on average, smaller
for the same quality.

The costly parts of an encode, beyond the analysis networks, are the correction layer's
choice (:mod:`lcodec.encoder.correction_choice`): the pixels it is fitted to (a float decode,
or the exact decode with its grid calibration), the networks' rate slope it is weighed
against (three float decodes, or a formula from the model's training λ), and how many
(block, step) fields it codes and applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lcodec.errors import LcodecError

FAST_BLOCKS = (4, 5, 6)
FAST_STEPS = (2, 4, 8, 16)
FULL_BLOCKS = (3, 4, 5, 6, 7)
FULL_STEPS = (1, 2, 4, 8, 16, 32)
WIDE_BLOCKS = (2, 3, 4, 5, 6, 7)
WIDE_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)

# The networks' slope (squared RGB error removed per byte) from the training λ: an MSE
# model trained on bpp + λ·255²·MSE removes 24/λ(knob) per byte at its optimum (3 channels,
# 8 bits); real files (TCAE bytes, a knob between the trained anchors) sit off that optimum
# by a factor SCALE·exp(GROWTH·knob), fitted to the chord slopes of 6 training photos at
# knobs −0.6…+0.6 (the per-photo spread is about 2×, as the chords' own is).
LAMBDA_SLOPE_SCALE = 1.6
LAMBDA_SLOPE_GROWTH = 0.55


@dataclass(frozen=True)
class Effort:
    """What one effort level does.

    ``correction``: choose a correction layer at all. ``exact_pixels``: fit it to the exact
    decode of the file (else a float decode, within about a level of it). ``measured_slope``:
    weigh it against the networks' slope measured by float decodes at lower knobs (else the
    λ formula, for models trained on MSE). ``blocks``/``steps``: the fields tried (log2 block
    sizes, luma steps in quarter levels). ``fill_tries``: near the top of the networks'
    range, how many lower knobs a filling correction is tried at. ``close``: rate control
    stops when a file fills this share of its byte budget. ``refit_field``: with a byte
    budget, once the networks are refitted to the bytes the correction leaves, fit the field
    again to their exact decode and check it still gains (else the field chosen at the first
    knob is kept: the knob moves little).
    """

    level: int
    correction: bool = True
    exact_pixels: bool = False
    measured_slope: bool = False
    blocks: tuple[int, ...] = FULL_BLOCKS
    steps: tuple[int, ...] = FULL_STEPS
    fill_tries: int = 3
    close: float = 0.985
    refit_field: bool = True


EFFORTS: dict[int, Effort] = {e.level: e for e in (
    Effort(1, correction=False),
    Effort(2, blocks=FAST_BLOCKS, steps=FAST_STEPS, fill_tries=0, refit_field=False),
    Effort(3, blocks=FAST_BLOCKS, steps=FAST_STEPS, refit_field=False),
    Effort(4, refit_field=False),
    Effort(5, exact_pixels=True),
    Effort(6, exact_pixels=True, close=0.995),
    Effort(7, exact_pixels=True, measured_slope=True),
    Effort(8, exact_pixels=True, measured_slope=True, blocks=WIDE_BLOCKS, steps=WIDE_STEPS),
    Effort(9, exact_pixels=True, measured_slope=True, blocks=WIDE_BLOCKS, steps=WIDE_STEPS,
           close=0.995),
)}
MIN_EFFORT, MAX_EFFORT = 1, 9
DEFAULT_EFFORT = 5


def effort(level: int) -> Effort:
    """The plan of effort ``level`` (1…9)."""
    if level not in EFFORTS:
        raise LcodecError(f"effort must be an integer from {MIN_EFFORT} to {MAX_EFFORT}, "
                          f"not {level}")
    return EFFORTS[level]


def lambda_slope(lam_range: tuple[float, float], knob: float) -> float:
    """Squared RGB error (summed, levels²) the networks remove per byte near ``knob``, from
    the λ range the model was trained on (see :data:`LAMBDA_SLOPE_SCALE`)."""
    lo, hi = lam_range
    lam = lo * (hi / lo) ** ((knob + 1) / 2)
    return LAMBDA_SLOPE_SCALE * math.exp(LAMBDA_SLOPE_GROWTH * knob) * 24 / lam
