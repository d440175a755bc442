"""Images to `.lic` bytes and back with a loaded model and an entropy method.

Encoding runs the analysis networks once; :class:`Analysis` then quantizes and entropy-codes
at any rate knob cheaply, which is what rate control searches over.

Large images: the networks run in windows of ``TILE_PIXELS``² pixels (1024², i.e. 128² code
positions at stride 8, 64² at stride 16) with a halo of ``HALO_PIXELS`` (128) on every
side, keeping only each window's
core. The halo covers the networks' receptive field, so the result equals a whole-image pass
(exactly with the exact synthesis, up to float rounding with the float one) and shows no
seams, while peak memory is bounded by one window. The exact synthesis decodes in windows of
``EXACT_TILE_PIXELS``² (512²) with a halo of ``EXACT_HALO_PIXELS`` (48, its reach). The
symbols of the whole image form one cuboid; the entropy coder works channel by channel
(luma/chroma) or row by row (importance), so its memory is bounded too.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from typing import TYPE_CHECKING

import numpy as np
import torch

from lcodec import container, correction, sidecar
from lcodec.color import pad_to_multiple, rgb_to_ycbcr, ycbcr_to_rgb
from lcodec.container import ColourMode, EntropyMethod, Header, LicFile, SectionType, Synthesis
from lcodec.correction import Correction
from lcodec.entropy import methods
from lcodec.entropy.coder import Timer, timed_coding
from lcodec.entropy.methods import EntropyCoder, StaticContextCoder
from lcodec.errors import LcodecError, LicError
from lcodec.imageio import SourceImage
from lcodec.models import LoadedModel
from lcodec.nets.cwic import Encoded
from lcodec.ratecontrol import KNOB_MAX, KNOB_MIN

if TYPE_CHECKING:
    from lcodec.nets.cwic2_exact8 import GridSpec

TILE_PIXELS = 1024
HALO_PIXELS = 128
# The exact synthesis holds float64 activations (twice the float path's bytes), so it decodes
# in smaller windows; its halo is its proven reach (3 positions at stride 16), not a margin.
EXACT_TILE_PIXELS = 512
EXACT_HALO_PIXELS = 48
STRIP_CODES = 64  # code rows quantized at a time


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


def _to_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1]."""
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).to(device)
    return x.permute(2, 0, 1)[None].float() / 255


def _padded_window(rgb: np.ndarray, r0: int, r1: int, c0: int, c1: int,
                   device: torch.device) -> torch.Tensor:
    """Rows r0:r1, columns c0:c1 of the image padded by edge replication, as
    ``_to_tensor`` then :func:`pad_to_multiple` would give them: only the window is converted
    to float (the conversion is per sample, so the values are the same bits)."""
    rows = np.minimum(np.arange(r0, r1), rgb.shape[0] - 1)
    cols = np.minimum(np.arange(c0, c1), rgb.shape[1] - 1)
    return _to_tensor(rgb[rows[:, None], cols[None, :]], device)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) float -> (H, W, C) uint8, clamped, rounded half up."""
    x = torch.clamp(x[0], 0.0, 1.0).permute(1, 2, 0)
    return torch.floor(x * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


@dataclass
class Analysis:
    """Continuous encoder outputs of one image, ready to be coded at any rate knob."""

    model: LoadedModel
    source: SourceImage
    e_y: torch.Tensor
    e_c: torch.Tensor
    p: torch.Tensor
    coder: EntropyCoder
    synthesis: Synthesis = Synthesis.FLOAT  # what the files' decoders compute pixels with
    # EXACT_INT_V2: while True, files carry placeholder grids of the right length (so their
    # size is exact) and :meth:`finish` gives one its real grids: rate control sizes many
    # files but needs the grids, a float decode, of one
    placeholder_grids: bool = False
    _grids: dict[float, bytes] = field(default_factory=dict, repr=False)  # by stored knob

    def codes(self, knob: float) -> Encoded:
        return self.model.net.quantize(self.e_y, self.e_c, self.p, knob)

    def grids(self, knob: float) -> bytes:
        """EXACT_INT_V2's grids for the file at ``knob``: calibrated on this image's codes
        by the float decoder (in its windows), each tensor wide as the model's card says."""
        from lcodec.nets.cwic2_exact8 import calibrate

        knob = stored_knob(knob)
        cache = self._grids
        if knob not in cache:
            codes = self.codes(knob)
            tile, halo = tile_codes(self.model.config.stride)
            h8, w8 = codes.qi.shape[2:]
            wins = (Encoded(*(t[:, :, i0:i1, j0:j1] for t in (codes.qi, codes.luma,
                                                               codes.chroma)), knob=knob)
                    for _, _, i0, i1 in windows(h8, tile, halo)
                    for _, _, j0, j1 in windows(w8, tile, halo))
            cache[knob] = calibrate(self.model.net, wins, self.model.exact_v2_wide).codes
        return cache[knob]

    def _header_grids(self, knob: float) -> bytes:
        if self.synthesis != Synthesis.EXACT_INT_V2:
            return b""
        if self.placeholder_grids:
            from lcodec.nets.cwic2_exact8 import tensor_names

            return bytes(len(tensor_names(self.model.config.refine)))
        return self.grids(knob)

    def finish(self, data: bytes) -> bytes:
        """A file :meth:`encode` wrote with placeholder grids, with its real grids (the same
        size); any other file as it is."""
        lic = container.unpack(data)
        if lic.header.synthesis != Synthesis.EXACT_INT_V2:
            return data
        grids = self.grids(lic.header.rate_knob)
        if lic.header.synthesis_grids == grids:
            return data
        return container.pack(replace(lic, header=replace(lic.header, synthesis_grids=grids)))

    def encode(self, knob: float, coder: EntropyCoder | None = None,
               timer: Timer = untimed) -> bytes:
        """A complete `.lic` file at rate knob ``knob`` (rounded to the stored thousandths),
        entropy-coded with ``coder`` (default: the analysis's own). ``timer`` charges the
        stages "network" (quantization), "probs" (the entropy model), "coding" (the range
        coder) and "container" (side sections, header, framing)."""
        coder = coder or self.coder
        knob = stored_knob(knob)
        compact = np.uint8 if isinstance(coder, StaticContextCoder) else np.int64
        with timer("network"):
            qi, luma, chroma = self.symbols(knob, compact)
        src = self.source
        with timer("probs"), timed_coding(timer):
            sections = coder.encode(qi, luma, None if src.gray else chroma, knob)
        with timer("container"):
            sections.update(self._sidecars)
            mode = ColourMode.GRAY if src.gray else (
                ColourMode.RGBA if src.alpha is not None else ColourMode.RGB)
            header = Header(
                width=src.width, height=src.height, colour_mode=mode, bit_depth=8,
                model_id=self.model.info.model_id, rate_knob=knob,
                entropy_method=coder.method, entropy_id=coder.entropy_id,
                synthesis=self.synthesis, synthesis_grids=self._header_grids(knob),
            )
            return container.pack(LicFile(header, sections))

    def decoded_pixels(self, knob: float) -> np.ndarray:
        """The pixels a decoder computes from this analysis's file at ``knob`` (before any
        correction layer), from the symbols the file codes and the grids it carries, without
        entropy-decoding them: (H, W, 3) uint8."""
        knob = stored_knob(knob)
        qi, luma, chroma = self.symbols(knob)
        src = self.source
        if src.gray:
            chroma = np.zeros_like(chroma)  # as decode_symbols gives them for a GRAY file
        grids = self.grids(knob) if self.synthesis == Synthesis.EXACT_INT_V2 else b""
        return reconstruct(self.model, _as_encoded(self.model, (qi, luma, chroma), knob),
                           src.width, src.height, src.gray, self.synthesis, grids)

    def encode_static(self, knob: float) -> bytes:
        """The file with the static context tables: cheap, used to steer rate control."""
        return self.encode(knob, methods.coder_for(EntropyMethod.STATIC_CONTEXT_V1,
                                                   self.model))

    def symbols(self, knob: float, dtype: type = np.int64
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(qi (h, w), luma (n, h, w), chroma (n_c, h, w)) arrays of ``dtype`` at a rate knob.

        Quantized ``STRIP_CODES`` code rows at a time (quantization is per position), so the
        intermediates of a strip, not of the image, are held; ``np.uint8`` holds every
        symbol in an eighth of int64's memory."""
        knob = stored_knob(knob)
        h, w = self.p.shape[2:]
        out = (np.empty((h, w), dtype), np.empty((self.e_y.shape[1], h, w), dtype),
               np.empty((self.e_c.shape[1], h, w), dtype))
        for r0 in range(0, h, STRIP_CODES):
            rows = slice(r0, min(h, r0 + STRIP_CODES))
            codes = self.model.net.quantize(self.e_y[:, :, rows], self.e_c[:, :, rows],
                                            self.p[:, :, rows], knob)
            for dst, t in zip(out, (codes.qi[:, 0], codes.luma, codes.chroma), strict=True):
                dst[..., rows, :] = t[0].cpu().numpy()
        return out

    @cached_property
    def _sidecars(self) -> dict[SectionType, bytes]:
        """Alpha and metadata sections: the same at every knob, so packed once."""
        src = self.source
        out = {}
        if src.alpha is not None:
            out[SectionType.ALPHA] = sidecar.pack_alpha(src.alpha)
        meta = sidecar.pack_metadata(src.icc, src.exif)
        if meta:
            out[SectionType.METADATA] = meta
        return out


def synthesis_for_encoding(model: LoadedModel, synthesis: str = "auto") -> Synthesis:
    """The synthesis new files name: "auto" is the model's exact synthesis where it has one
    (network v2: EXACT_INT_V2 where its card opts in, else EXACT_INT_V1), else FLOAT;
    "exact" and "float" ask for one explicitly."""
    if synthesis not in ("auto", "exact", "float"):
        raise LcodecError(f"unknown synthesis {synthesis!r}; use auto, exact or float")
    if synthesis == "float" or (synthesis == "auto" and not model.has_exact):
        return Synthesis.FLOAT
    if not model.has_exact:
        raise LcodecError(f"model {model.info.name} has no exact synthesis (only network v2 "
                          "models have one); use --synthesis float")
    if model.exact_v2_wide is not None:
        return Synthesis.EXACT_INT_V2
    return Synthesis.EXACT_INT_V1


@torch.no_grad()
def analyse(model: LoadedModel, source: SourceImage, entropy: str = "auto",
            synthesis: str = "auto") -> Analysis:
    """Run the encoder networks (in windows for large images) on a source image.

    ``entropy``: "tcae" (inclined TCAE), "static" (context tables) or "auto" (see
    :func:`coder_for_encoding`). ``synthesis``: see :func:`synthesis_for_encoding`.
    """
    coder = coder_for_encoding(model, entropy)
    synth = synthesis_for_encoding(model, synthesis)
    s = model.config.stride
    h8, w8 = code_shape(source.width, source.height, s)
    net = model.net
    tile, halo = tile_codes(s)
    if h8 <= tile + halo and w8 <= tile + halo:
        x = pad_to_multiple(_to_tensor(source.rgb, model.device), s)
        e_y, e_c, p = net.analyse(rgb_to_ycbcr(x))
        return Analysis(model, source, e_y, e_c, p, coder, synth)
    cfg = model.config
    dev = model.device
    e_y = torch.empty(1, cfg.n_luma, h8, w8, device=dev)
    e_c = torch.empty(1, cfg.n_chroma, h8, w8, device=dev)
    logits = torch.empty(1, 1, h8, w8, device=dev)
    for i0, i1, wi0, wi1 in windows(h8, tile, halo):
        for j0, j1, wj0, wj1 in windows(w8, tile, halo):
            win = rgb_to_ycbcr(_padded_window(source.rgb, wi0 * s, wi1 * s, wj0 * s,
                                              wj1 * s, dev))
            ty, tc, tl = net.analyse_logits(win)
            core = (slice(None), slice(None), slice(i0 - wi0, i1 - wi0), slice(j0 - wj0, j1 - wj0))
            e_y[:, :, i0:i1, j0:j1] = ty[core]
            e_c[:, :, i0:i1, j0:j1] = tc[core]
            logits[:, :, i0:i1, j0:j1] = tl[core]
    return Analysis(model, source, e_y, e_c, net.importance_map(logits), coder, synth)


@dataclass
class Decoded:
    pixels: np.ndarray  # (H, W, 3) uint8; gray images are replicated
    gray: bool
    alpha: np.ndarray | None
    icc: bytes | None
    exif: bytes | None


def coder_for_encoding(model: LoadedModel, entropy: str) -> EntropyCoder:
    """The coder for new files. "auto" is the method that codes this model's symbols in fewer
    bits as measured on Kodak (``scripts/tcae_vs_static.py``), recorded in the model's card as
    ``entropy.auto``: "tcae" when its inclined TCAE won, else the static tables (so for
    both shipped models, whose CPU-trained TCAEs code more bits; see docs/results.md). "tcae" and
    "static" ask for a method explicitly."""
    if entropy not in ("auto", "tcae", "static"):
        raise LcodecError(f"unknown entropy method {entropy!r}; use auto, tcae or static")
    if entropy == "auto" and model.tcae is not None and (
            model.info.card.get("entropy", {}).get("auto") == "tcae"):
        entropy = "tcae"
    if entropy == "tcae":
        return methods.coder_for(EntropyMethod.INCLINED_TCAE_V1, model)
    return methods.coder_for(EntropyMethod.STATIC_CONTEXT_V1, model)


def coder_for_file(model: LoadedModel, header: Header) -> EntropyCoder:
    """The entropy coder a file names in its header (and the entropy model it names)."""
    return methods.coder_for(header.entropy_method, model, header.entropy_id)


def decode_symbols(model: LoadedModel, lic: LicFile, timer: Timer = untimed
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    return _as_encoded(model, decode_symbols(model, lic), lic.header.rate_knob, np.int64)


def _as_encoded(model: LoadedModel, arrays: tuple[np.ndarray, ...], knob: float,
                dtype: type | None = None) -> Encoded:
    qi, luma, chroma = (a if dtype is None else a.astype(dtype, copy=False) for a in arrays)
    dev = model.device
    return Encoded(torch.from_numpy(qi)[None, None].to(dev), torch.from_numpy(luma)[None].to(dev),
                   torch.from_numpy(chroma)[None].to(dev), knob=knob)


def verify(analysis: Analysis, data: bytes) -> None:
    """Re-derive the decoder's symbols from ``data`` and compare them with what was coded, so
    that a file that would not decode is never written (the decoder's exact integer
    probabilities are recomputed from the bytes)."""
    lic = container.unpack(data)
    got = decode_symbols(analysis.model, lic)
    qi, luma, chroma = analysis.symbols(lic.header.rate_knob, np.uint8)
    want = (qi, luma, np.zeros_like(chroma) if analysis.source.gray else chroma)
    for a, b in zip(want, got, strict=True):
        if not np.array_equal(a, b):
            raise LcodecError("internal error: the encoded file does not decode to the coded "
                              "symbols; nothing was written (please report this)")
    file_correction(lic)  # a correction section decodes (its symbols are checked in full)
    if lic.header.synthesis_grids != analysis._header_grids(lic.header.rate_knob):
        raise LcodecError("internal error: the encoded file does not carry the image's "
                          "synthesis grids; nothing was written (please report this)")


def _require_exact(model: LoadedModel, synthesis: Synthesis, grids: bytes) -> GridSpec | None:
    """Refuses a file whose exact synthesis the model does not have, or whose EXACT_INT_V2
    grids do not fit the model; returns those grids as a ``GridSpec`` (else None)."""
    if synthesis == Synthesis.FLOAT:
        return None
    if synthesis == Synthesis.EXACT_INT_V2 and model.has_exact:
        from lcodec.nets.cwic2_exact8 import GridSpec

        return GridSpec.parse(grids, model.config.refine)
    if not model.has_exact:
        raise LicError(f"the file asks for the exact synthesis, which model {model.info.name} "
                       "does not have")


def _float_window(model: LoadedModel, win: Encoded, gray: bool, rows: slice, cols: slice
                  ) -> np.ndarray:
    """Synthesis FLOAT of one window: the float networks, then the core's pixels."""
    rec = model.net.decompress(win, luma_only=gray)
    rgb = rec.expand(-1, 3, -1, -1) if gray else ycbcr_to_rgb(rec)
    return _to_uint8(rgb[:, :, rows, cols])


def _exact_window(model: LoadedModel, win: Encoded, gray: bool, rows: slice, cols: slice
                  ) -> np.ndarray:
    """Synthesis EXACT_INT_V1 of one window: integer networks and colour conversion."""
    rgb = model.exact.pixels(win.qi, win.luma, win.chroma, win.knob, gray)
    return rgb[rows, cols].cpu().numpy()


def _exact_v2_window(spec: GridSpec, model: LoadedModel, win: Encoded, gray: bool,
                     rows: slice, cols: slice) -> np.ndarray:
    """Synthesis EXACT_INT_V2 of one window, on the file's grids ``spec``."""
    rgb = model.exact8.pixels(win.qi, win.luma, win.chroma, win.knob, spec, gray)
    return rgb[rows, cols].cpu().numpy()


@torch.no_grad()
def reconstruct(model: LoadedModel, codes: Encoded, width: int, height: int,
                gray: bool = False, synthesis: Synthesis = Synthesis.FLOAT,
                grids: bytes = b"") -> np.ndarray:
    """Run the decoder networks in windows; (height, width, 3) uint8.

    With EXACT_INT_V1 and EXACT_INT_V2 (on the file's ``grids``) every pixel is an exact
    integer function of the codes within ``reach_codes`` positions of it, so any window
    layout whose halo is at least that gives the very same pixels (docs/format.md)."""
    s = model.config.stride
    h8, w8 = codes.qi.shape[2:]
    tile, halo = tile_codes(s)
    if synthesis != Synthesis.FLOAT:
        spec = _require_exact(model, synthesis, grids)
        tile, halo = max(1, EXACT_TILE_PIXELS // s), EXACT_HALO_PIXELS // s
        exact = model.exact if synthesis == Synthesis.EXACT_INT_V1 else model.exact8
        if halo < exact.reach_codes:
            raise LcodecError("internal error: the window halo is below the exact decoder's "
                              "reach")
        window = _exact_window if spec is None else partial(_exact_v2_window, spec)
    else:
        window = _float_window
    out = np.empty((height, width, 3), dtype=np.uint8)
    for i0, i1, wi0, wi1 in windows(h8, tile, halo):
        for j0, j1, wj0, wj1 in windows(w8, tile, halo):
            win = Encoded(*(t[:, :, wi0:wi1, wj0:wj1].long() for t in (codes.qi, codes.luma,
                                                                        codes.chroma)),
                          knob=codes.knob)
            core = window(model, win, gray, slice((i0 - wi0) * s, (i1 - wi0) * s),
                          slice((j0 - wj0) * s, (j1 - wj0) * s))
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


def with_correction(data: bytes, fix: Correction | None) -> bytes:
    """``data`` (a file without a correction) with ``fix`` as its CORRECTION section."""
    if fix is None:
        return data
    lic = container.unpack(data)
    sections = dict(lic.sections)
    sections[SectionType.CORRECTION] = correction.pack(fix)
    return container.pack(replace(lic, sections=sections))


def decode(model: LoadedModel, lic: LicFile, timer: Timer = untimed) -> Decoded:
    """Symbols, pixels and side sections of a parsed file. ``timer``: "container", "probs",
    "coding" and "network" (the decoder networks and colour conversion)."""
    hdr = lic.header
    gray = hdr.colour_mode == ColourMode.GRAY
    if hdr.colour_mode == ColourMode.RGBA and SectionType.ALPHA not in lic.sections:
        raise LicError("the file is RGBA but has no alpha section")
    # before the entropy decoding, not after it
    _require_exact(model, hdr.synthesis, hdr.synthesis_grids)
    fix = file_correction(lic)
    symbols = decode_symbols(model, lic, timer)
    with timer("network"):
        codes = _as_encoded(model, symbols, hdr.rate_knob)  # int64 per window
        pixels = reconstruct(model, codes, hdr.width, hdr.height, gray, hdr.synthesis,
                             hdr.synthesis_grids)
        if fix is not None:
            correction.apply(pixels, fix)
    with timer("container"):
        alpha = None
        if SectionType.ALPHA in lic.sections:
            alpha = sidecar.unpack_alpha(lic.sections[SectionType.ALPHA], hdr.width,
                                         hdr.height)
        meta = sidecar.unpack_metadata(lic.sections.get(SectionType.METADATA, b""))
    return Decoded(pixels, gray, alpha, meta.get("icc"), meta.get("exif"))
