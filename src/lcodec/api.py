"""The Python API: ``encode(image, bpp=…) -> bytes`` and ``decode(bytes) -> PIL.Image``.

Models are loaded once per process and reused.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lcodec import codec, container, correction_search, models
from lcodec.correction import apply as apply_correction
from lcodec.correction import fit as fit_correction
from lcodec.errors import LcodecError
from lcodec.imageio import (
    SourceImage,
    checked_metadata,
    from_pil,
    load_image,
    read_file,
    to_pil,
)
from lcodec.metrics import psnr as psnr_of
from lcodec.ratecontrol import (
    BelowRange,
    RateResult,
    first_that_fits,
    fit_budget,
    fit_budget_two_stage,
    fit_quality,
    quality_to_knob,
)

DEFAULT_KNOB = 0.0
LOW_FILL = 0.97  # a --bpp/--size file below this share of its target gets a notice


@dataclass
class EncodeResult:
    data: bytes
    source: SourceImage
    knob: float
    model: str
    notices: list[str] = field(default_factory=list)
    psnr: float | None = None  # RGB PSNR (dB) of the file decoded, when asked for

    @property
    def width(self) -> int:
        return self.source.width

    @property
    def height(self) -> int:
        return self.source.height

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.width * self.height)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise LcodecError("--device cuda was asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise LcodecError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


def as_source(image: Any, alpha: str = "keep", strip: bool = False) -> SourceImage:
    """Accept a path, a PIL image, an (H, W, 3) uint8 array or a prepared SourceImage."""
    if isinstance(image, SourceImage):
        return image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise LcodecError("arrays must be (H, W, 3) uint8 RGB")
        if image.shape[0] < 1 or image.shape[1] < 1:
            raise LcodecError("the image is empty")
        return SourceImage(image)
    if isinstance(image, Image.Image):
        return from_pil(image, "image", alpha, strip)
    if isinstance(image, str | Path):
        return load_image(image, str(image), alpha, strip)
    raise LcodecError(f"cannot encode an object of type {type(image).__name__}")


def encode_with_stats(image: Any, *, bpp: float | None = None, size: int | None = None,
                      psnr: float | None = None, quality: float | None = None,
                      knob: float | None = None, model: str | None = None,
                      device: str = "cpu", alpha: str = "keep", strip: bool = False,
                      entropy: str = "auto", verify: bool = True,
                      measure_psnr: bool = False, synthesis: str = "auto",
                      correction: bool = True) -> EncodeResult:
    """Encode and report what was achieved. At most one rate setting:

    ``bpp``/``size``: the file of the highest knob not above the target (bisection on real
    bytes; the target counts the whole file, alpha and metadata included; without ``model``,
    the shipped model measured best at that bpp is used). ``psnr``: the smallest file
    whose decoded RGB PSNR reaches the target (dB). ``quality``: 0-100 mapped linearly onto
    the knob, no search. ``knob``: a fixed importance-map offset in [-1, 1], no search.
    Default: knob 0. ``entropy``: auto | tcae | static. ``verify``: decode the symbols of the
    final file again before returning it (on by default). ``measure_psnr``: decode the file
    and report its RGB PSNR in the result. ``synthesis``: auto | exact | float, the decoder
    the file names (auto: exact where the model has one, network v2). ``correction``: let
    the encoder add a correction layer where it buys more than its bytes would on the
    networks, and fill a target above the networks' largest file with one (``bpp``/``size``,
    ``quality`` and ``knob``; format 1.3).
    """
    if sum(v is not None for v in (bpp, size, psnr, quality, knob)) > 1:
        raise LcodecError("give at most one of bpp, size, psnr, quality and knob")
    if quality is not None:
        knob = quality_to_knob(quality)
    if bpp is not None and not (math.isfinite(bpp) and bpp > 0):
        raise LcodecError(f"bpp must be a positive number, not {bpp}")
    if size is not None and size <= 0:
        raise LcodecError(f"size must be a positive number of bytes, not {size}")
    k = DEFAULT_KNOB if knob is None else knob
    if not (math.isfinite(k) and codec.KNOB_MIN <= k <= codec.KNOB_MAX):
        raise LcodecError(f"knob must be in [{codec.KNOB_MIN}, {codec.KNOB_MAX}], not {k}")
    src = as_source(image, alpha, strip)
    if bpp is not None or size is not None:
        pixels = src.width * src.height
        budget = int(size) if size is not None else math.floor(bpp * pixels / 8)
        target_bpp = bpp if bpp is not None else budget * 8 / pixels
        res, loaded, analysis = _fit_size(src, budget, target_bpp, model, entropy,
                                          resolve_device(device), synthesis)
        if correction:
            res = corrected(analysis, res, budget)
    else:
        loaded = models.load(models.find(model), resolve_device(device))
        analysis = codec.analyse(loaded, src, entropy, synthesis)
        if psnr is not None:
            def measured(data: bytes) -> float:
                return psnr_of(src.rgb, decode_array(data, loaded.device.type))

            # Quality depends only on the knob, not on the entropy coder: search with the
            # cheap static coder, then code the chosen knob with the analysis's own coder.
            found = fit_quality(analysis.encode_static, measured, psnr)
            res = RateResult(analysis.encode(found.knob), found.knob)
        else:
            res = RateResult(analysis.encode(k), round(k, 3))
            if correction:
                res = corrected(analysis, res, None)
    if verify:
        codec.verify(analysis, res.data)
    notices = list(src.notices)
    if (bpp is not None or size is not None) and res.knob >= codec.KNOB_MAX \
            and len(res.data) < LOW_FILL * budget:
        notices.append(f"the target is above the largest file {loaded.info.name} makes of this "
                       f"image: wrote that one, {len(res.data)} bytes "
                       f"({len(res.data) * 8 / (src.width * src.height):.4f} bpp)")
    measured = psnr_of(src.rgb, decode_array(res.data, loaded.device.type)) \
        if measure_psnr else None
    return EncodeResult(res.data, src, res.knob, loaded.info.name, notices, measured)


def _fit_size(src: SourceImage, budget: int, target_bpp: float, model: str | None,
              entropy: str, device: str, synthesis: str = "auto"
              ) -> tuple[RateResult, models.LoadedModel, codec.Analysis]:
    """The file of the highest knob not above ``budget`` bytes, with the named model or,
    without one, with the shipped model measured best at ``target_bpp``
    (:func:`models.for_bpp`), falling back to the other shipped models when even this one's
    smallest file is too big."""
    if model is not None:
        candidates = [models.find(model)]
    else:
        first = models.for_bpp(target_bpp)
        candidates = [first, *(m for m in models.encoders() if m != first)]

    def fit(info: models.ModelInfo) -> tuple[RateResult, models.LoadedModel, codec.Analysis]:
        loaded = models.load(info, device)
        analysis = codec.analyse(loaded, src, entropy, synthesis)
        return _fit_analysis(analysis, budget), loaded, analysis

    return first_that_fits(((m.name, partial(fit, m)) for m in candidates), budget)


def _fit_analysis(analysis: codec.Analysis, budget: int) -> RateResult:
    """The file of the highest knob not above ``budget`` bytes (networks only)."""
    analysis.placeholder_grids = True  # sizes are exact; the chosen file gets its grids
    try:
        if analysis.coder.method == container.EntropyMethod.STATIC_CONTEXT_V1:
            res = fit_budget(analysis.encode, budget)
        else:
            res = fit_budget_two_stage(analysis.encode_static, analysis.encode, budget)
    finally:
        analysis.placeholder_grids = False
    return RateResult(analysis.finish(res.data), res.knob)


SLOPE_KNOB_STEPS = (0.1, 0.2)  # the networks' rate slope: chords to files this far down


def _network_slope(analysis: codec.Analysis, res: RateResult) -> float:
    """Squared error (RGB, summed) the networks remove per byte near ``res``'s knob: the
    smaller of the chords (float decodings) to files ``SLOPE_KNOB_STEPS`` lower, or higher
    near -1. Smooth curves are convex, so the shorter chord is the closer; on flat images
    the error is not monotone in the knob, and the smaller chord keeps a noisy one from
    ruling the correction out (:func:`corrected` checks the result against ``res``)."""
    src = analysis.source

    def error(knob: float) -> float:
        pixels = codec.reconstruct(analysis.model, analysis.codes(knob), src.width,
                                   src.height, src.gray)
        return correction_search.sse(src.rgb, pixels)

    here = error(res.knob)
    slopes = []
    for step in SLOPE_KNOB_STEPS:
        other = res.knob - step if res.knob - step >= codec.KNOB_MIN else res.knob + step
        analysis.placeholder_grids = True
        try:
            other_size = len(analysis.encode(other))
        finally:
            analysis.placeholder_grids = False
        if other_size != len(res.data):
            slopes.append(max(0.0, (error(other) - here) / (len(res.data) - other_size)))
    return min(slopes, default=0.0)


FILL_FROM_KNOB = 0.5  # with a byte budget, networks' files at or above this knob ...
FILL_KNOB_STEP = 0.15  # ... are also tried this much lower, the correction filling the rest
FILL_TRIES = 3  # at most this many steps down (while each beats the last)


@dataclass
class _Candidate:
    """A file and the squared error (RGB, summed) of the pixels it decodes to."""

    res: RateResult
    sse: float


def corrected(analysis: codec.Analysis, res: RateResult, budget: int | None) -> RateResult:
    """``res`` with the correction layer the encoder chooses (``lcodec.correction_search``).

    Without a ``budget``: one that gains more than its bytes would on the networks. With one:
    below a budget the networks' largest file does not reach, the least error that fits;
    otherwise such a gainful one, the networks then refitted to the bytes left. Near the
    top of the networks' range (knob >= ``FILL_FROM_KNOB``, where they gain little per
    byte) files ``FILL_KNOB_STEP`` lower, their correction filling the budget, are tried as
    well, stepping down while each beats the last. The result is never worse than ``res``
    (squared error at a size within the budget)."""
    if budget is None:
        return _gainful(analysis, res, None).res
    if res.knob >= codec.KNOB_MAX and len(res.data) < budget:
        best = _filled(analysis, res, budget)
    else:
        best = _gainful(analysis, res, budget)
    knob = res.knob
    for _ in range(FILL_TRIES):
        knob = round(knob - FILL_KNOB_STEP, 3)
        if knob + FILL_KNOB_STEP < FILL_FROM_KNOB or knob < codec.KNOB_MIN:
            break
        lower = analysis.encode(knob)
        if len(lower) >= budget:
            break
        other = _filled(analysis, RateResult(lower, knob), budget)
        filled = min(len(best.res.data), math.ceil(LOW_FILL * budget))
        if other.sse >= best.sse or len(other.res.data) < filled:  # better, and as full
            break
        best = other
    return best.res


def _filled(analysis: codec.Analysis, res: RateResult, budget: int) -> _Candidate:
    """``res`` (below ``budget``) with the correction of least error that fits the budget,
    filling it to ``LOW_FILL`` where that costs little (``correction_search.best_within``)."""
    src = analysis.source
    decoded = analysis.decoded_pixels(res.knob)
    choice = correction_search.best_within(src.rgb, decoded, src.gray, budget - len(res.data),
                                           math.ceil(LOW_FILL * budget) - len(res.data))
    if choice is None:
        return _Candidate(res, correction_search.sse(src.rgb, decoded))
    return _Candidate(RateResult(codec.with_correction(res.data, choice.fix), res.knob),
                      choice.sse)


def _gainful(analysis: codec.Analysis, res: RateResult, budget: int | None) -> _Candidate:
    """``res`` with the correction that gains more than its bytes would on the networks
    (at most a quarter of a ``budget``), the networks then refitted to the bytes left;
    ``res`` itself where none does or the refitted file is no better."""
    src = analysis.source
    decoded = analysis.decoded_pixels(res.knob)
    base = _Candidate(res, correction_search.sse(src.rgb, decoded))
    slope = _network_slope(analysis, res)
    room = budget // 4 if budget is not None else 1 << 62
    choice = correction_search.best_for_slope(src.rgb, decoded, src.gray, slope, room)
    if choice is None:
        return base
    if budget is None:
        return _Candidate(RateResult(codec.with_correction(res.data, choice.fix), res.knob),
                          choice.sse)
    fix = choice.fix
    target = budget - choice.size
    for _ in range(2):  # refit the networks to the bytes left, then the field to their pixels
        try:
            net = _fit_analysis(analysis, target)
        except BelowRange:
            return base
        pixels = analysis.decoded_pixels(net.knob)
        fix = fit_correction(src.rgb, pixels, fix.log2_block, fix.step_luma, fix.step_chroma,
                             src.gray)
        data = codec.with_correction(net.data, fix)
        if len(data) <= budget:
            err = correction_search.sse(src.rgb, apply_correction(pixels, fix))
            return _Candidate(RateResult(data, net.knob), err) if err < base.sse else base
        target -= len(data) - budget
    return base


def encode(image: Any, *, bpp: float | None = None, size: int | None = None,
           psnr: float | None = None, quality: float | None = None,
           knob: float | None = None, model: str | None = None, device: str = "cpu",
           alpha: str = "keep", strip: bool = False, entropy: str = "auto",
           verify: bool = True, synthesis: str = "auto", correction: bool = True) -> bytes:
    """Encode an image (path, PIL image or (H, W, 3) uint8 array) to `.lic` bytes."""
    return encode_with_stats(image, bpp=bpp, size=size, psnr=psnr, quality=quality, knob=knob,
                             model=model, device=device, alpha=alpha, strip=strip,
                             entropy=entropy, verify=verify, synthesis=synthesis,
                             correction=correction).data


def lic_bytes(data: Any) -> bytes:
    """The bytes of a `.lic` given as bytes-like, a path (str or PathLike) or a binary file
    object; anything else is an :class:`LcodecError`."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str | os.PathLike):
        return read_file(data, ".lic file")
    read = getattr(data, "read", None)
    if callable(read):
        blob = read()
        if isinstance(blob, bytes | bytearray | memoryview):
            return bytes(blob)
        raise LcodecError("the file object gives text; open the .lic file in binary mode "
                          "('rb')")
    raise LcodecError(f"cannot decode an object of type {type(data).__name__}; pass bytes, "
                      "a path or a binary file object")


def decode_full(data: Any, device: str = "cpu",
                max_pixels: int = container.DEFAULT_MAX_PIXELS) -> codec.Decoded:
    """Decode a `.lic` (bytes, path or binary file object) to pixels plus alpha and metadata.

    ``max_pixels`` is the decompression-bomb limit: files declaring more are refused before
    anything is allocated.
    """
    lic = container.unpack(lic_bytes(data), max_pixels)
    info = models.find(model_id=lic.header.model_id)
    loaded = models.load(info, resolve_device(device))
    return codec.decode(loaded, lic)


def decode_array(data: Any, device: str = "cpu") -> np.ndarray:
    """Decode a `.lic` to an (H, W, 3) uint8 RGB array (gray replicated, alpha dropped)."""
    return decode_full(data, device).pixels


def decode_with_notices(data: Any, device: str = "cpu",
                        max_pixels: int = container.DEFAULT_MAX_PIXELS
                        ) -> tuple[Image.Image, list[str]]:
    """:func:`decode`, and the notices about metadata it dropped because it does not parse
    (metadata is untrusted input, like the rest of the file)."""
    d = decode_full(data, device, max_pixels)
    im = to_pil(d.pixels, d.gray, d.alpha)
    icc, exif, notices = checked_metadata(d.icc, d.exif)
    del d  # the pixels now live in ``im``: do not hold them twice while it is saved
    if icc:
        im.info["icc_profile"] = icc
    if exif:
        im.info["exif"] = exif
    return im, notices


def decode(data: Any, device: str = "cpu",
           max_pixels: int = container.DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode a `.lic` (bytes, a path or a binary file object) to a PIL image (RGB, RGBA, L
    or LA; ICC/EXIF in ``info``, dropped if they do not parse)."""
    return decode_with_notices(data, device, max_pixels)[0]


def importance_map(data: Any, max_pixels: int = container.DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The decoded importance map of `.lic` bytes as an (H, W) uint8 picture (seed 004 Fig. 3):
    level QI of each code position over its stride × stride pixels, 0 → black, L − 1 → white.

    Only the entropy decoding runs (no decoder network)."""
    lic = container.unpack(lic_bytes(data), max_pixels)
    hdr = lic.header
    loaded = models.load(models.find(model_id=hdr.model_id), "cpu")
    qi = codec.decode_codes(loaded, lic).qi[0, 0].cpu().numpy()
    s = loaded.config.stride
    levels = loaded.config.imp_levels
    full = np.repeat(np.repeat(qi, s, axis=0), s, axis=1)[: hdr.height, : hdr.width]
    return (full * 255 // (levels - 1)).astype(np.uint8)

