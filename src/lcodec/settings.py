"""What an encode is asked to do: one set of options shared by the API, the CLI and the
Pillow plugin (each front end adds only its own plumbing)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from lcodec.effort import DEFAULT_EFFORT, MAX_EFFORT, MIN_EFFORT, effort
from lcodec.errors import LcodecError
from lcodec.ratecontrol import KNOB_MAX, KNOB_MIN

RATE_FIELDS = ("bpp", "size", "psnr", "quality", "knob")
ENTROPY_CHOICES = ("auto", "tcae", "static")
SYNTHESIS_CHOICES = ("auto", "exact", "float")
ALPHA_CHOICES = ("keep", "drop")


@dataclass(frozen=True)
class EncodeSettings:
    """One encode's options (picklable, so batch workers get a copy).

    At most one rate setting: ``bpp``/``size`` (the file of the highest knob not above the
    target, whole file counted), ``psnr`` (the smallest file whose decoded RGB PSNR reaches
    it, dB), ``quality`` (0–100 mapped linearly onto the knob), ``knob`` (a fixed rate knob
    in [-1, 1]); none: knob 0. ``model``: a model name or id (default: the shipped model
    measured best at the target). ``alpha``: keep | drop. ``strip``: drop ICC, EXIF and XMP.
    ``entropy``: auto | tcae | static. ``synthesis``: auto | exact | float, the decoder the
    file names. ``correction``: let the encoder add a correction layer (format 1.3).
    ``effort``: 1…9, how much the encoder searches (:mod:`lcodec.effort`; 1: networks only,
    no correction layer). ``verify``: decode the final file's symbols again before
    returning it.
    ``measure_psnr``: decode the file and report its RGB PSNR. ``device``: auto | cpu | cuda.
    """

    bpp: float | None = None
    size: int | None = None
    psnr: float | None = None
    quality: float | None = None
    knob: float | None = None
    model: str | None = None
    device: str = "cpu"
    alpha: str = "keep"
    strip: bool = False
    entropy: str = "auto"
    synthesis: str = "auto"
    correction: bool = True
    effort: int = DEFAULT_EFFORT
    verify: bool = True
    measure_psnr: bool = False

    def __post_init__(self) -> None:
        given = [f for f in RATE_FIELDS if getattr(self, f) is not None]
        if len(given) > 1:
            raise LcodecError("give at most one of bpp, size, psnr, quality and knob")
        if self.bpp is not None and not (math.isfinite(self.bpp) and self.bpp > 0):
            raise LcodecError(f"bpp must be a positive number, not {self.bpp}")
        if self.size is not None and self.size <= 0:
            raise LcodecError(f"size must be a positive number of bytes, not {self.size}")
        if self.knob is not None and not (
                math.isfinite(self.knob) and KNOB_MIN <= self.knob <= KNOB_MAX):
            raise LcodecError(f"knob must be in [{KNOB_MIN}, {KNOB_MAX}], not {self.knob}")
        if self.quality is not None and not (
                math.isfinite(self.quality) and 0 <= self.quality <= 100):
            raise LcodecError(f"quality must be between 0 and 100, not {self.quality}")
        if self.psnr is not None and not math.isfinite(self.psnr):
            raise LcodecError(f"psnr must be a number of dB, not {self.psnr}")
        if isinstance(self.effort, bool) or not isinstance(self.effort, int):
            raise LcodecError(f"effort must be an integer from {MIN_EFFORT} to {MAX_EFFORT}, "
                              f"not {self.effort!r}")
        effort(self.effort)
        for name, choices in (("entropy", ENTROPY_CHOICES), ("synthesis", SYNTHESIS_CHOICES),
                              ("alpha", ALPHA_CHOICES)):
            if getattr(self, name) not in choices:
                raise LcodecError(f"unknown {name} {getattr(self, name)!r}; use "
                                  f"{', '.join(choices)}")

    @classmethod
    def of(cls, settings: EncodeSettings | None = None, **options: Any) -> EncodeSettings:
        """``settings`` (default: the defaults) with ``options`` replacing its fields; an
        unknown option is an :class:`LcodecError` naming it."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise LcodecError(f"unknown encode option {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(names))}")
        base = settings if settings is not None else cls()
        return replace(base, **options) if options else base

    @property
    def targets_size(self) -> bool:
        """Whether the rate is a byte budget (``bpp`` or ``size``)."""
        return self.bpp is not None or self.size is not None
