"""Fitting a byte budget: the highest rate knob whose file fits, on the drafts' exact sizes
(no file is packed while searching)."""

from __future__ import annotations

from functools import partial

from lcodec import models
from lcodec.encoder.analysis import ImageAnalysis, analyse
from lcodec.imageio import SourceImage
from lcodec.ratecontrol import RateResult, first_that_fits, fit_budget, fit_budget_two_stage
from lcodec.settings import EncodeSettings


def fit_analysis(analysis: ImageAnalysis, budget: int, close: float = 0.985) -> RateResult:
    """The draft of the highest knob not above ``budget`` bytes (networks only). A coder
    that is not cheap (the TCAE) is steered by the cheap one's sizes and checked on its own
    (:func:`~lcodec.ratecontrol.fit_budget_two_stage`, which stops once a file fills
    ``close`` of the budget)."""
    if analysis.coder.cheap:
        return fit_budget(analysis.draft, budget)
    return fit_budget_two_stage(analysis.draft_static, analysis.draft, budget, close=close)


def fit_size(src: SourceImage, budget: int, target_bpp: float, settings: EncodeSettings,
             device: str, close: float = 0.985) -> tuple[RateResult, ImageAnalysis]:
    """The draft of the highest knob not above ``budget`` bytes with the settings' model or,
    without one, with the shipped model measured best at ``target_bpp``
    (:func:`models.for_bpp`), falling back to the other shipped models when even this one's
    smallest file is too big."""
    if settings.model is not None:
        candidates = [models.find(settings.model)]
    else:
        first = models.for_bpp(target_bpp)
        candidates = [first, *(m for m in models.encoders() if m != first)]

    def fit(info: models.ModelInfo) -> tuple[RateResult, ImageAnalysis]:
        analysis = analyse(models.load(info, device), src, settings.entropy,
                           settings.synthesis)
        return fit_analysis(analysis, budget, close), analysis

    return first_that_fits(((m.name, partial(fit, m)) for m in candidates), budget)
