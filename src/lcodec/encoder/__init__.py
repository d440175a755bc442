"""The encoder: a source image and its :class:`~lcodec.settings.EncodeSettings` to one file.

The analysis networks run once (:mod:`lcodec.encoder.analysis`); each candidate at a rate
knob is a :class:`~lcodec.encoder.draft.Draft` (header and sections, sized without packing);
rate control (:mod:`lcodec.encoder.rate`) and the correction layer
(:mod:`lcodec.encoder.correction_choice`) choose among drafts; the chosen one gets its
synthesis grids, its sections are verified by decoding them, and it is packed once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lcodec import codec, container, models
from lcodec.devices import resolve_device
from lcodec.effort import DEFAULT_EFFORT, effort
from lcodec.encoder.analysis import ImageAnalysis, analyse
from lcodec.encoder.correction_choice import LOW_FILL, corrected
from lcodec.encoder.draft import Draft
from lcodec.encoder.rate import fit_size
from lcodec.errors import LcodecError
from lcodec.imageio import SourceImage
from lcodec.metrics import psnr as psnr_of
from lcodec.ratecontrol import KNOB_MAX, RateResult, fit_quality, quality_to_knob
from lcodec.settings import EncodeSettings

DEFAULT_KNOB = 0.0

__all__ = ["DEFAULT_KNOB", "Encoding", "ImageAnalysis", "analyse", "encode", "file_at_knob",
           "verify"]


@dataclass
class Encoding:
    """A packed file, the knob it was coded at and what the encoder has to say about it."""

    data: bytes
    knob: float
    analysis: ImageAnalysis
    notices: list[str] = field(default_factory=list)
    psnr: float | None = None  # RGB PSNR (dB) of the file decoded, when the settings ask


def encode(src: SourceImage, settings: EncodeSettings) -> Encoding:
    """Encode ``src`` as ``settings`` ask (see :class:`EncodeSettings` for the rate
    settings): one file, packed once."""
    s = settings
    plan = effort(s.effort)
    with_correction = s.correction and plan.correction
    device = resolve_device(s.device)
    budget = None
    if s.targets_size:
        pixels = src.width * src.height
        budget = int(s.size) if s.size is not None else math.floor(s.bpp * pixels / 8)
        target_bpp = s.bpp if s.bpp is not None else budget * 8 / pixels
        res, analysis = fit_size(src, budget, target_bpp, s, device, plan.close)
        if with_correction:
            res = corrected(analysis, res, budget, plan)
    else:
        analysis = analyse(models.load(models.find(s.model), device), src, s.entropy,
                           s.synthesis)
        if s.psnr is not None:
            res = _fit_psnr(analysis, s.psnr)
        else:
            knob = quality_to_knob(s.quality) if s.quality is not None else (
                DEFAULT_KNOB if s.knob is None else s.knob)
            res = RateResult(analysis.draft(knob), round(knob, 3))
            if with_correction:
                res = corrected(analysis, res, None, plan)
    final = analysis.final(res.data)
    if s.verify:
        verify(analysis, final)
    notices = list(src.notices)
    size = len(final)
    if budget is not None and res.knob >= KNOB_MAX and size < LOW_FILL * budget:
        notices.append(f"the target is above the largest file {analysis.model.info.name} "
                       f"makes of this image: wrote that one, {size} bytes "
                       f"({size * 8 / (src.width * src.height):.4f} bpp)")
    psnr = psnr_of(src.rgb, codec.decode(analysis.model, final.lic).pixels) \
        if s.measure_psnr else None
    return Encoding(container.pack(final.lic), res.knob, analysis, notices, psnr)


def _fit_psnr(analysis: ImageAnalysis, target: float) -> RateResult:
    """The smallest file whose decoded RGB PSNR reaches ``target`` dB. Quality depends only
    on the knob, not on the entropy coder: the search decodes drafts of the cheap coder,
    then the chosen knob is coded with the analysis's own."""
    src = analysis.source

    def measured(draft: Draft) -> float:
        return psnr_of(src.rgb, codec.decode(analysis.model, analysis.final(draft).lic).pixels)

    found = fit_quality(analysis.draft_static, measured, target, unit=" dB")
    return RateResult(analysis.draft(found.knob), found.knob)


def file_at_knob(analysis: ImageAnalysis, knob: float, correction: bool = True,
                 level: int = DEFAULT_EFFORT) -> Draft:
    """The final draft the encoder writes at a fixed ``knob`` and effort ``level`` (with
    the correction layer it chooses there, unless ``correction`` is off): what ``--knob``
    gives, for sweeps that share one analysis over many knobs."""
    plan = effort(level)
    res = RateResult(analysis.draft(knob), round(knob, 3))
    if correction and plan.correction:
        res = corrected(analysis, res, None, plan)
    return analysis.final(res.data)


def verify(analysis: ImageAnalysis, final: Draft) -> None:
    """Decode the symbols of ``final``'s sections again (the decoder's exact integer
    probabilities recomputed from its bytes) and compare them with what was coded, so that a
    file that would not decode is never written; its correction section decodes and its
    synthesis grids are the image's."""
    lic = final.lic
    got = codec.decode_symbols(analysis.model, lic)
    qi, luma, chroma = analysis.symbols(lic.header.rate_knob, np.uint8)
    want = (qi, luma, np.zeros_like(chroma) if analysis.source.gray else chroma)
    for a, b in zip(want, got, strict=True):
        if not np.array_equal(a, b):
            raise LcodecError("internal error: the encoded file does not decode to the coded "
                              "symbols; nothing was written (please report this)")
    codec.file_correction(lic)  # a correction section decodes (its symbols are checked in full)
    if lic.header.synthesis_grids != analysis.grids(lic.header.rate_knob):
        raise LcodecError("internal error: the encoded file does not carry the image's "
                          "synthesis grids; nothing was written (please report this)")
