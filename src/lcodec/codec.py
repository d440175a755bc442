"""`.lic` files to pixels with a loaded model, and what encoder and decoder share.

The entropy method a file names decodes its symbols (:func:`decode_symbols`); the file's
synthesis (:mod:`lcodec.synthesis`) turns them into pixels in its windows
(:func:`reconstruct`: exact syntheses with a halo of their reach, so exactly equal to a
whole-image pass, the float one with ``HALO_PIXELS``); the correction layer, alpha and
metadata follow. The symbols of the whole image form one cuboid; the entropy coder works
channel by channel (luma/chroma) or row by row (importance), so its memory is bounded too.
The encoder is :mod:`lcodec.encoder`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lcodec import correction, sidecar
from lcodec.container import ColourMode, Header, LicFile, SectionType, Synthesis
from lcodec.correction import Correction
from lcodec.entropy import methods
from lcodec.entropy.coder import Timer, timed_coding
from lcodec.entropy.methods import EntropyCoder
from lcodec.errors import LicError
from lcodec.models import LoadedModel
from lcodec.ratecontrol import KNOB_MAX, KNOB_MIN
from lcodec.synthesis import ESTIMATE, CodeWindow, synthesis_for

if TYPE_CHECKING:
    from lcodec.nets.codes import Encoded

Symbols = tuple[np.ndarray, np.ndarray, np.ndarray]  # qi (h, w), luma (n, h, w), chroma

TILE_PIXELS = 1024
HALO_PIXELS = 128


def untimed(stage: str) -> contextlib.AbstractContextManager:
    """The default stage timer: times nothing."""
    return contextlib.nullcontext()


def tile_codes(stride: int) -> tuple[int, int]:
    """(window core, halo) in code positions for a network of total stride ``stride``."""
    return max(1, TILE_PIXELS // stride), max(1, HALO_PIXELS // stride)


def code_shape(width: int, height: int, stride: int) -> tuple[int, int]:
    return math.ceil(height / stride), math.ceil(width / stride)


def stored_knob(knob: float) -> float:
    """The knob as the header stores it: clamped to [-1, 1], in thousandths."""
    return round(min(max(knob, KNOB_MIN), KNOB_MAX), 3)


def windows(n: int, tile: int, halo: int) -> Iterator[tuple[int, int, int, int]]:
    """Along one axis of length ``n``: (core start, core end, window start, window end)."""
    for start in range(0, n, tile):
        end = min(n, start + tile)
        yield start, end, max(0, start - halo), min(n, end + halo)


@dataclass
class Decoded:
    pixels: np.ndarray  # (H, W, 3) uint8; gray images are replicated
    gray: bool
    alpha: np.ndarray | None
    icc: bytes | None
    exif: bytes | None
    xmp: bytes | None = None
    # the entropy-decoded (qi, luma, chroma) arrays, when :func:`decode` was asked to keep them
    symbols: Symbols | None = None


def coder_for_file(model: LoadedModel, header: Header) -> EntropyCoder:
    """The entropy coder a file names in its header (and the entropy model it names)."""
    return methods.coder_for(header.entropy_method, model, header.entropy_id)


def decode_symbols(model: LoadedModel, lic: LicFile, timer: Timer = untimed) -> Symbols:
    """Entropy-decode (qi (h, w), luma (n, h, w), chroma (n_c, h, w)) of a parsed file as
    integer numpy arrays (uint8 for the static tables; chroma is all zero for GRAY files).
    ``timer``: "container" (the coder look-up), "probs" and "coding"."""
    hdr = lic.header
    gray = hdr.colour_mode == ColourMode.GRAY
    need = [SectionType.IMPORTANCE, SectionType.LUMA] + ([] if gray else [SectionType.CHROMA])
    for sec in need:
        if sec not in lic.sections:
            raise LicError(f"the file has no {sec.name.lower()} section")
    h8, w8 = code_shape(hdr.width, hdr.height, model.config.stride)
    with timer("container"):
        coder = coder_for_file(model, hdr)
    with timer("probs"), timed_coding(timer):
        return coder.decode(lic.sections, h8, w8, gray, hdr.rate_knob)


def decode_codes(model: LoadedModel, lic: LicFile) -> Encoded:
    """Entropy-decode the symbols of a parsed file as int64 tensors (chroma is all zero for
    GRAY files)."""
    from lcodec.nets.codes import Encoded

    return Encoded.from_window(CodeWindow(*decode_symbols(model, lic), knob=lic.header.rate_knob),
                               model.device)


def reconstruct(model: LoadedModel, symbols: Symbols, knob: float, width: int, height: int,
                gray: bool = False, synthesis: Synthesis = ESTIMATE,
                grids: bytes = b"") -> np.ndarray:
    """Run the decoder networks of ``synthesis`` (on the file's ``grids``; default: the one
    encoders estimate with, the float decoder) on an image's symbols (as
    :func:`decode_symbols` gives them, made at the rate ``knob``) in its windows; (height,
    width, 3) uint8.

    With an exact synthesis every pixel is an exact integer function of the codes within its
    reach, so any window layout whose halo is at least that gives the very same pixels
    (docs/format.md)."""
    s = model.config.stride
    qi, luma, chroma = symbols
    h8, w8 = qi.shape
    synth = synthesis_for(synthesis)
    state = synth.check(model, grids)
    tile, halo = synth.window(s)
    out = np.empty((height, width, 3), dtype=np.uint8)
    for i0, i1, wi0, wi1 in windows(h8, tile, halo):
        for j0, j1, wj0, wj1 in windows(w8, tile, halo):
            win = CodeWindow(*(a[..., wi0:wi1, wj0:wj1].astype(np.int64)
                               for a in (qi, luma, chroma)), knob=knob)
            core = synth.pixels(model, state, win, gray)[(i0 - wi0) * s : (i1 - wi0) * s,
                                                         (j0 - wj0) * s : (j1 - wj0) * s]
            ph, pw = min(i1 * s, height) - i0 * s, min(j1 * s, width) - j0 * s
            out[i0 * s : i0 * s + ph, j0 * s : j0 * s + pw] = core[:ph, :pw]
    return out


def file_correction(lic: LicFile) -> Correction | None:
    """The file's correction field (its CORRECTION section, decoded), or None."""
    payload = lic.sections.get(SectionType.CORRECTION)
    if payload is None:
        return None
    hdr = lic.header
    planes = 1 if hdr.colour_mode == ColourMode.GRAY else 3
    return correction.unpack(payload, hdr.width, hdr.height, planes)


def decode(model: LoadedModel, lic: LicFile, timer: Timer = untimed,
           keep_symbols: bool = False) -> Decoded:
    """Symbols, pixels and side sections of a parsed file. ``timer``: "container", "probs",
    "coding" and "network" (the decoder networks and colour conversion). ``keep_symbols``:
    also return the entropy-decoded symbols the pixels were computed from (as
    :func:`decode_symbols` gives them), e.g. to hash them."""
    hdr = lic.header
    gray = hdr.colour_mode == ColourMode.GRAY
    if hdr.colour_mode == ColourMode.RGBA and SectionType.ALPHA not in lic.sections:
        raise LicError("the file is RGBA but has no alpha section")
    # before the entropy decoding, not after it
    synthesis_for(hdr.synthesis).check(model, hdr.synthesis_grids)
    fix = file_correction(lic)
    symbols = decode_symbols(model, lic, timer)
    with timer("network"):
        pixels = reconstruct(model, symbols, hdr.rate_knob, hdr.width, hdr.height, gray,
                             hdr.synthesis, hdr.synthesis_grids)
        if fix is not None:
            correction.apply(pixels, fix)
    with timer("container"):
        alpha = None
        if SectionType.ALPHA in lic.sections:
            alpha = sidecar.unpack_alpha(lic.sections[SectionType.ALPHA], hdr.width,
                                         hdr.height)
        meta = sidecar.unpack_metadata(lic.sections.get(SectionType.METADATA, b""))
    return Decoded(pixels, gray, alpha, meta.get("icc"), meta.get("exif"), meta.get("xmp"),
                   symbols if keep_symbols else None)
