"""The analysis of one image: the encoder networks run once, then symbols and drafts at any
rate knob (what rate control searches over).

Large images: the analysis networks run in windows of ``codec.TILE_PIXELS``² pixels with a
halo of ``codec.HALO_PIXELS`` on every side, keeping only each window's core; the halo covers
the networks' receptive field, so the result equals a whole-image pass and shows no seams,
while peak memory is bounded by one window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from lcodec import codec, container, sidecar, synthesis
from lcodec.codec import stored_knob, tile_codes, untimed, windows
from lcodec.color import pad_to_multiple, rgb_to_ycbcr
from lcodec.container import ColourMode, EntropyMethod, Header, LicFile, SectionType, Synthesis
from lcodec.encoder.draft import Draft
from lcodec.entropy import methods
from lcodec.entropy.coder import Timer, timed_coding
from lcodec.entropy.methods import EntropyCoder
from lcodec.errors import LcodecError
from lcodec.imageio import SourceImage
from lcodec.models import LoadedModel
from lcodec.nets.codes import Encoded

STRIP_CODES = 64  # code rows quantized at a time
KEPT_DRAFTS = 64  # drafts kept per analysis (the oldest is dropped first)


@dataclass
class ImageAnalysis:
    """Continuous encoder outputs of one image, ready to be coded at any rate knob."""

    model: LoadedModel
    source: SourceImage
    e_y: torch.Tensor
    e_c: torch.Tensor
    p: torch.Tensor
    coder: EntropyCoder
    synthesis: Synthesis  # what the files' decoders compute pixels with
    _grids: dict[float, bytes] = field(default_factory=dict, repr=False)  # by stored knob
    _drafts: dict[tuple, Draft] = field(default_factory=dict, repr=False)  # by knob and coder

    def codes(self, knob: float) -> Encoded:
        return self.model.net.quantize(self.e_y, self.e_c, self.p, knob)

    def grids(self, knob: float) -> bytes:
        """The synthesis grids of the file at ``knob``, where its synthesis has any: computed
        from this image's codes, given in the analysis's windows."""
        synth = synthesis.synthesis_for(self.synthesis)
        if not synth.grids_size(self.model):
            return b""
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
            cache[knob] = synth.grids(self.model, wins)
        return cache[knob]

    def draft(self, knob: float, coder: EntropyCoder | None = None,
              timer: Timer = untimed) -> Draft:
        """The file at rate knob ``knob`` (rounded to the stored thousandths), entropy-coded
        with ``coder`` (default: the analysis's own), as a draft: its size is exact, its
        synthesis grids placeholders until :meth:`final`. ``timer`` charges the stages
        "network" (quantization), "probs" (the entropy model), "coding" (the range coder)
        and "container" (side sections, header). Untimed drafts are kept, so a search that
        comes back to a knob (rate control's rounds, the refit after a correction) codes it
        once."""
        coder = coder or self.coder
        knob = stored_knob(knob)
        key = (knob, coder.method, coder.entropy_id)
        if timer is untimed and key in self._drafts:
            return self._drafts[key]
        compact = np.uint8 if coder.cheap else np.int64
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
                synthesis=self.synthesis,
                synthesis_grids=bytes(synthesis.synthesis_for(self.synthesis)
                                      .grids_size(self.model)),
            )
            draft = Draft(LicFile(header, sections))
        if timer is untimed:
            if len(self._drafts) >= KEPT_DRAFTS:
                del self._drafts[next(iter(self._drafts))]
            self._drafts[key] = draft
        return draft

    def draft_static(self, knob: float) -> Draft:
        """The draft with the static context tables: cheap, used to steer rate control."""
        return self.draft(knob, methods.coder_for(EntropyMethod.STATIC_CONTEXT_V1, self.model))

    def final(self, draft: Draft) -> Draft:
        """``draft`` with its real synthesis grids (the same size)."""
        return draft if draft.final else draft.with_grids(self.grids(draft.knob))

    def encode(self, knob: float, coder: EntropyCoder | None = None,
               timer: Timer = untimed) -> bytes:
        """The complete `.lic` file at ``knob`` (networks only, no correction layer), packed
        once; ``coder`` and ``timer`` as :meth:`draft`."""
        draft = self.draft(knob, coder, timer)
        with timer("container"):  # the synthesis grids (a float decode), then the framing
            return container.pack(self.final(draft).lic)

    def encode_static(self, knob: float) -> bytes:
        """:meth:`encode` with the static context tables."""
        return container.pack(self.final(self.draft_static(knob)).lic)

    def decoded_pixels(self, knob: float) -> np.ndarray:
        """The pixels a decoder computes from this analysis's file at ``knob`` (before any
        correction layer), from the symbols the file codes and the grids it carries, without
        entropy-decoding them: (H, W, 3) uint8."""
        knob = stored_knob(knob)
        qi, luma, chroma = self.symbols(knob)
        src = self.source
        if src.gray:
            chroma = np.zeros_like(chroma)  # as decode_symbols gives them for a GRAY file
        return codec.reconstruct(self.model, (qi, luma, chroma), knob, src.width, src.height,
                                 src.gray, self.synthesis, self.grids(knob))

    def float_pixels(self, knob: float) -> np.ndarray:
        """The float decoder's pixels of the file at ``knob`` (before any correction layer):
        what an exact decode gives within about a level, without its grid calibration;
        (H, W, 3) uint8."""
        src = self.source
        return codec.reconstruct(self.model, self.symbols(knob), stored_knob(knob), src.width,
                                 src.height, src.gray)

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
        meta = sidecar.pack_metadata(src.icc, src.exif, src.xmp)
        if meta:
            out[SectionType.METADATA] = meta
        return out


def coder_for_encoding(model: LoadedModel, entropy: str) -> EntropyCoder:
    """The coder for new files. "auto" is the method that codes this model's symbols in fewer
    bits as measured on Kodak (``scripts/tcae_vs_static.py``), recorded in the model's card as
    ``entropy.auto``: "tcae" when its inclined TCAE won, else the static tables. "tcae" and
    "static" ask for a method explicitly."""
    if entropy not in ("auto", "tcae", "static"):
        raise LcodecError(f"unknown entropy method {entropy!r}; use auto, tcae or static")
    if entropy == "auto" and model.tcae is not None and (
            model.info.card.get("entropy", {}).get("auto") == "tcae"):
        entropy = "tcae"
    if entropy == "tcae":
        return methods.coder_for(EntropyMethod.INCLINED_TCAE_V1, model)
    return methods.coder_for(EntropyMethod.STATIC_CONTEXT_V1, model)


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


@torch.no_grad()
def analyse(model: LoadedModel, source: SourceImage, entropy: str = "auto",
            synthesis_request: str = "auto") -> ImageAnalysis:
    """Run the encoder networks (in windows for large images) on a source image.

    ``entropy``: "tcae" (inclined TCAE), "static" (context tables) or "auto" (see
    :func:`coder_for_encoding`). ``synthesis_request``: "auto", "exact" or "float"
    (:func:`lcodec.synthesis.for_encoding`)."""
    coder = coder_for_encoding(model, entropy)
    synth = synthesis.for_encoding(model, synthesis_request)
    s = model.config.stride
    h8, w8 = codec.code_shape(source.width, source.height, s)
    net = model.net
    tile, halo = tile_codes(s)
    if h8 <= tile + halo and w8 <= tile + halo:
        x = pad_to_multiple(_to_tensor(source.rgb, model.device), s)
        e_y, e_c, p = net.analyse(rgb_to_ycbcr(x))
        return ImageAnalysis(model, source, e_y, e_c, p, coder, synth)
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
    return ImageAnalysis(model, source, e_y, e_c, net.importance_map(logits), coder, synth)
