"""Speed and memory of lcodec, stage by stage, next to JPEG, WebP and AVIF (``make bench``).

``python -m lcodec.evaluate.bench [IMAGES…] [--knob K | --bpp B] [--device cpu|cuda|all]
[--entropy auto|static|tcae]``

For each image (default: the Kodak folder ``../shared/data/kodak`` beside the checkout) it
times one lcodec encode and one decode, split into stages. The entropy method is the one
``codec.analyse(…, entropy=--entropy)`` picks (auto: the method the model's card records as
coding its symbols smaller, see ``codec.coder_for_encoding``); it is printed with each table.

encode
  network      RGB → tensor, padding, RGB→YCbCr, encoder networks (``codec.analyse``),
               LCMQ quantization and importance mask at the knob (``net.quantize``), and
               moving the codes to numpy.
  probs        entropy-model probabilities: the contexts of every symbol and its frequency
               row (static context: table look-ups; TCAE: the prefix masks and the integer
               networks' one forward pass, ``IntTcae.frequency_rows``).
  coding       range coding of those symbols with constriction.
  container    alpha/metadata side sections, header, framing and CRCs (``container.pack``).
decode
  container    parsing and CRC checks (``container.unpack``), model look-up (cached), side
               sections.
  probs        contexts and frequency rows of each batch of symbols (interleaved with coding:
               the contexts of channel k need the decoded channels before it; TCAE: the
               per-plane network work of ``IntTcae.decode``, plane t needs planes < t).
  coding       range decoding (TCAE: the constriction calls of each plane, timed by handing
               ``IntTcae.decode`` a timing proxy of its ``SymbolDecoder``, the rest of the
               call being probs).
  network      codes → decoder networks → YCbCr→RGB → uint8 (``codec.reconstruct``).

The stages replicate, call for call, ``codec.Analysis.encode``, ``codec.decode_codes`` and
``codec.decode`` (see ``src/lcodec/codec.py``) and the entropy coders
(``entropy/methods.py``, ``entropy/static_context.py``, ``entropy/tcae.py``) without editing
them. To stay in sync, every run checks that the bench's file is byte-identical to
``Analysis.encode`` and that its decoded symbols equal ``codec.decode_codes``; a mismatch stops
the bench. Entropy methods plug in through :data:`ENTROPY_STAGES` (one class per
``EntropyMethod``).

Memory: the peak resident set size (RSS) of the whole process (Python, numpy, torch CPU
allocations and libraries) during each encode and decode, sampled every 2 ms from
``/proc/self/statm`` (elsewhere only ``resource.getrusage`` ru_maxrss, the process-lifetime
peak, is available and is printed at the end); on CUDA also ``torch.cuda.max_memory_allocated``.

Times are the best of ``--repeat`` runs after one untimed warm-up. The baselines are timed on
the same images at the setting of their ``lcodec eval`` sweep whose bpp is closest to lcodec's
file, and shown as ratios (lcodec seconds / codec seconds).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from lcodec.errors import LcodecError

ENCODE_STAGES = ("network", "probs", "coding", "container")
DECODE_STAGES = ("container", "probs", "coding", "network")
DEFAULT_BASELINES = ("jpeg", "webp", "avif")
DEFAULT_IMAGES = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "kodak"


# --- timing and memory ---------------------------------------------------------------------

class StageTimer:
    """Accumulates seconds per stage; ``sync`` runs before each reading (CUDA synchronize).

    Stages nest: while an inner stage runs, the outer one's clock is paused, so each second
    is counted in exactly one stage.
    """

    def __init__(self, sync: Callable[[], None] = lambda: None) -> None:
        self.seconds: dict[str, float] = {}
        self.sync = sync
        self._stack: list[str] = []
        self._since = 0.0

    def _lap(self) -> float:
        """Charge the time since the last reading to the running stage; returns now."""
        self.sync()
        now = time.perf_counter()
        if self._stack:
            stage = self._stack[-1]
            self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._since
        self._since = now
        return now

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        self._lap()
        self._stack.append(stage)
        try:
            yield
        finally:
            self._lap()
            self._stack.pop()


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class RssPeak:
    """Peak RSS of this process while the block runs (a thread samples every ``interval``)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes() or 0)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssPeak:
        self.peak = _rss_bytes() or 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes() or 0)


def max_rss_lifetime() -> int:
    """Process-lifetime peak RSS in bytes (getrusage: kB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


# --- entropy stages, one class per entropy method ---------------------------------------------

class EntropyStages(Protocol):
    """How one entropy method's coding splits into ``probs`` and ``coding``.

    ``coder`` is the :class:`~lcodec.entropy.methods.EntropyCoder` the codec itself uses
    (``Analysis.coder`` when encoding, ``codec.coder_for_file`` when decoding).
    """

    needs_masks: bool  # whether ``encode`` reads the eq. 4 masks computed with the network

    def encode(self, t: StageTimer, coder, codes, gray: bool) -> dict:
        """The entropy-coded sections {SectionType: bytes} of ``codes`` = (qi, luma, chroma,
        m_y, m_c) (numpy, on the host; chroma and m_c None for gray images; the masks None
        unless ``needs_masks``)."""

    def decode(self, t: StageTimer, model, coder, lic):
        """The :class:`~lcodec.nets.cwic.Encoded` symbols of a parsed file."""


def _encoded(t: StageTimer, model, qi: np.ndarray, luma: np.ndarray, chroma: np.ndarray,
             knob: float):
    """Host arrays → :class:`~lcodec.nets.cwic.Encoded` on the model's device (as
    ``codec.decode_codes``), timed as network."""
    import torch

    from lcodec.nets.cwic import Encoded

    with t("network"):
        dev = model.device
        return Encoded(torch.from_numpy(qi)[None, None].to(dev),
                       torch.from_numpy(luma)[None].to(dev),
                       torch.from_numpy(chroma)[None].to(dev), knob=knob)


class StaticContextStages:
    """STATIC_CONTEXT_V1; mirrors ``StaticContextCoder`` (``entropy/methods.py``) and
    ``entropy/static_context.py`` (encode_importance, encode_codes, decode_*)."""

    needs_masks = True

    def _encode_cuboid(self, t: StageTimer, codes: np.ndarray, mask: np.ndarray,
                       table: np.ndarray) -> bytes:
        from lcodec.entropy import static_context as sc
        from lcodec.entropy.coder import SymbolStream

        stream = SymbolStream()
        for k in range(codes.shape[0]):
            with t("probs"):
                c1, c2 = sc._code_contexts(codes, mask, k)
                sel = mask[k]
                syms, freqs = codes[k][sel], table[k][c1[sel], c2[sel]]
            with t("coding"):
                stream.add(syms, freqs)
        with t("coding"):
            return stream.finish()

    def encode(self, t: StageTimer, coder, codes, gray: bool) -> dict:
        from lcodec.container import SectionType
        from lcodec.entropy import static_context as sc
        from lcodec.entropy.coder import encode_symbols

        qi, luma, chroma, m_y, m_c = codes
        tables = coder.tables
        with t("probs"):
            up, upleft = sc._importance_contexts(qi)
            freqs = tables["entropy.qi"][up.ravel(), upleft.ravel()]
        with t("coding"):
            sections = {SectionType.IMPORTANCE: encode_symbols(qi.ravel(), freqs)}
        sections[SectionType.LUMA] = self._encode_cuboid(t, luma, m_y, tables["entropy.luma"])
        if not gray:
            sections[SectionType.CHROMA] = self._encode_cuboid(t, chroma, m_c,
                                                               tables["entropy.chroma"])
        return sections

    def _decode_cuboid(self, t: StageTimer, payload: bytes, mask: np.ndarray,
                       table: np.ndarray) -> np.ndarray:
        from lcodec.entropy import static_context as sc
        from lcodec.entropy.coder import SymbolDecoder

        with t("coding"):
            dec = SymbolDecoder(payload)
        codes = np.zeros(mask.shape, dtype=np.int64)
        for k in range(mask.shape[0]):
            with t("probs"):
                c1, c2 = sc._code_contexts(codes, mask, k)
                sel = mask[k]
                freqs = table[k][c1[sel], c2[sel]]
            with t("coding"):
                codes[k][sel] = dec.decode(freqs)
        return codes

    def decode(self, t: StageTimer, model, coder, lic):
        import torch

        from lcodec.codec import code_shape
        from lcodec.container import ColourMode, SectionType
        from lcodec.entropy.coder import SymbolDecoder
        from lcodec.quant import code_mask

        hdr, cfg, tables = lic.header, model.config, coder.tables
        gray = hdr.colour_mode == ColourMode.GRAY
        h8, w8 = code_shape(hdr.width, hdr.height, cfg.stride)
        with t("coding"):
            dec = SymbolDecoder(lic.sections[SectionType.IMPORTANCE])
        qi = np.zeros((h8, w8), dtype=np.int64)
        table = tables["entropy.qi"]
        for i in range(h8):
            with t("probs"):
                up = qi[i - 1] + 1 if i else np.zeros(w8, dtype=np.int64)
                upleft = np.zeros(w8, dtype=np.int64)
                if i:
                    upleft[1:] = qi[i - 1, :-1] + 1
                freqs = table[up, upleft]
            with t("coding"):
                qi[i] = dec.decode(freqs)
        with t("probs"):  # the masks follow from qi before any code is decoded
            qi_t = torch.from_numpy(qi)[None, None]
            m_y = code_mask(qi_t, cfg.n_luma, cfg.imp_levels)[0].numpy()
            m_c = None if gray else code_mask(qi_t, cfg.n_chroma, cfg.imp_levels)[0].numpy()
        luma = self._decode_cuboid(t, lic.sections[SectionType.LUMA], m_y,
                                   tables["entropy.luma"])
        if gray:
            chroma = np.zeros((cfg.n_chroma, h8, w8), dtype=np.int64)
        else:
            chroma = self._decode_cuboid(t, lic.sections[SectionType.CHROMA], m_c,
                                         tables["entropy.chroma"])
        return _encoded(t, model, qi, luma, chroma, lic.header.rate_knob)


class _TimedDecoder:
    """A :class:`~lcodec.entropy.coder.SymbolDecoder` whose ``decode`` calls (the range
    decoding) are timed as ``coding``: handed to ``IntTcae.decode``, which interleaves them
    with the network work of each plane, it separates the two without editing tcae.py."""

    def __init__(self, t: StageTimer, payload: bytes) -> None:
        from lcodec.entropy.coder import SymbolDecoder

        self._t = t
        with t("coding"):
            self._dec = SymbolDecoder(payload)

    def decode(self, freqs: np.ndarray) -> np.ndarray:
        with self._t("coding"):
            return self._dec.decode(freqs)

    def finish(self) -> None:
        """The decoder's end-of-stream check (unconsumed data is an error)."""
        with self._t("coding"):
            self._dec.finish()


class TcaeStages:
    """INCLINED_TCAE_V1; mirrors ``TcaeCoder`` (``entropy/methods.py``) and
    ``TcaeModels.encode`` / ``TcaeModels.decode`` (``entropy/tcae.py``).

    Encode: probs = masks and ``IntTcae.frequency_rows`` (one forward pass of the integer
    network per section), coding = ``encode_symbols``. Decode: ``IntTcae.decode`` runs under
    probs with a :class:`_TimedDecoder`, so its per-plane constriction calls go to coding and
    everything else (the per-plane network work, set-up, scatter of the symbols) to probs.
    """

    needs_masks = False  # TcaeModels computes its own prefix masks (timed as probs)

    def encode(self, t: StageTimer, coder, codes, gray: bool) -> dict:
        from lcodec.container import SectionType
        from lcodec.entropy.coder import encode_symbols

        tm = coder.models
        qi, luma, chroma = codes[:3]
        with t("probs"):
            qi, luma, chroma = tm._arrays(qi, luma, None if gray else chroma)
            m_y, m_c = tm.masks(qi)
        jobs = [(SectionType.IMPORTANCE, tm.importance, qi[None],
                 np.ones((1, *qi.shape), bool)),
                (SectionType.LUMA, tm.luma, luma, m_y)]
        if chroma is not None:
            jobs.append((SectionType.CHROMA, tm.chroma, chroma, m_c))
        sections = {}
        for sec, model, symbols, active in jobs:
            with t("probs"):
                syms, freqs = model.frequency_rows(symbols, active)
            with t("coding"):
                sections[sec] = encode_symbols(syms, freqs)
        return sections

    def decode(self, t: StageTimer, model, coder, lic):
        from lcodec.codec import code_shape
        from lcodec.container import ColourMode, SectionType
        from lcodec.errors import LicError

        hdr, tm = lic.header, coder.models
        gray = hdr.colour_mode == ColourMode.GRAY
        h, w = code_shape(hdr.width, hdr.height, model.config.stride)
        secs = lic.sections
        try:
            with t("probs"):
                qi = tm.importance.decode(_TimedDecoder(t, secs[SectionType.IMPORTANCE]),
                                          np.ones((1, h, w), bool))[0]
                m_y, m_c = tm.masks(qi)
                luma = tm.luma.decode(_TimedDecoder(t, secs[SectionType.LUMA]), m_y)
                if gray or SectionType.CHROMA not in secs:
                    chroma = np.zeros(m_c.shape, dtype=np.int64)
                else:
                    chroma = tm.chroma.decode(_TimedDecoder(t, secs[SectionType.CHROMA]), m_c)
        except ValueError as exc:  # as TcaeCoder.decode
            raise LicError(f"malformed TCAE-coded sections ({exc})") from None
        return _encoded(t, model, qi, luma, chroma, lic.header.rate_knob)


def _entropy_stages() -> dict:
    from lcodec.container import EntropyMethod

    return {EntropyMethod.STATIC_CONTEXT_V1: StaticContextStages(),
            EntropyMethod.INCLINED_TCAE_V1: TcaeStages()}


ENTROPY_STAGES: Callable[[], dict] = _entropy_stages


# --- one lcodec encode and decode, stage by stage --------------------------------------------

@dataclass
class LcodecTiming:
    image: str
    bytes: int
    bpp: float
    encode: dict[str, float]
    decode: dict[str, float]
    rss_encode: int
    rss_decode: int
    entropy: str = ""  # EntropyMethod name of the file
    gpu_encode: int | None = None
    gpu_decode: int | None = None
    pixels: np.ndarray | None = field(default=None, repr=False)


def _sync_for(device: str) -> Callable[[], None]:
    if device == "cuda":
        import torch

        return torch.cuda.synchronize
    return lambda: None


def _stages_for(method) -> EntropyStages:
    stages = ENTROPY_STAGES().get(method)
    if stages is None:
        raise LcodecError(f"the bench has no stage timing for entropy method {method.name}; "
                          "add a class to lcodec.evaluate.bench.ENTROPY_STAGES")
    return stages


def encode_stages(loaded, src, knob: float, t: StageTimer, entropy: str = "auto"
                  ) -> tuple[bytes, Callable[[], None]]:
    """``codec.analyse(entropy=entropy)`` + ``Analysis.encode(knob)``, timed by stage: the
    file, and a check (to run untimed) that the codec writes the very same bytes."""
    import torch

    from lcodec import codec, container, sidecar
    from lcodec.container import ColourMode, Header, LicFile, SectionType
    from lcodec.quant import code_mask

    knob = round(min(max(knob, codec.KNOB_MIN), codec.KNOB_MAX), 3)
    cfg = loaded.config
    with t("network"), torch.no_grad():
        analysis = codec.analyse(loaded, src, entropy)
        coder = analysis.coder  # the method Analysis.encode writes
        stages = _stages_for(coder.method)
        q = loaded.net.quantize(analysis.e_y, analysis.e_c, analysis.p, knob)
        qi = q.qi[0, 0].cpu().numpy()
        luma = q.luma[0].cpu().numpy()
        chroma = None if src.gray else q.chroma[0].cpu().numpy()
        m_y = m_c = None
        if stages.needs_masks:
            m_y = code_mask(q.qi, cfg.n_luma, cfg.imp_levels)[0].cpu().numpy()
            if not src.gray:
                m_c = code_mask(q.qi, cfg.n_chroma, cfg.imp_levels)[0].cpu().numpy()
    sections = stages.encode(t, coder, (qi, luma, chroma, m_y, m_c), src.gray)
    with t("container"):
        if src.alpha is not None:
            sections[SectionType.ALPHA] = sidecar.pack_alpha(src.alpha)
        meta = sidecar.pack_metadata(src.icc, src.exif)
        if meta:
            sections[SectionType.METADATA] = meta
        mode = ColourMode.GRAY if src.gray else (
            ColourMode.RGBA if src.alpha is not None else ColourMode.RGB)
        header = Header(width=src.width, height=src.height, colour_mode=mode, bit_depth=8,
                        model_id=loaded.info.model_id, rate_knob=knob,
                        entropy_method=coder.method, entropy_id=coder.entropy_id,
                        synthesis=analysis.synthesis)
        data = container.pack(LicFile(header, sections))
    return data, lambda: check_encode(analysis, knob, data)


def check_encode(analysis, knob: float, data: bytes) -> None:
    """In-sync check: the codec's own encoder must give the very same file."""
    if analysis.encode(knob) != data:
        raise LcodecError("the bench's encoder no longer matches codec.Analysis.encode; "
                          "update lcodec/evaluate/bench.py to follow codec.py")


def decode_stages(data: bytes, device: str, t: StageTimer
                  ) -> tuple[np.ndarray, Callable[[], None]]:
    """``api.decode_full`` timed by stage: the (H, W, 3) pixels, and an untimed sync check."""
    from lcodec import codec, container, models, sidecar
    from lcodec.container import ColourMode, SectionType

    with t("container"):
        lic = container.unpack(data)
        loaded = models.load(models.find(model_id=lic.header.model_id), device)
        coder = codec.coder_for_file(loaded, lic.header)  # entropy model look-up (cached)
    hdr = lic.header
    codes = _stages_for(hdr.entropy_method).decode(t, loaded, coder, lic)
    gray = hdr.colour_mode == ColourMode.GRAY
    with t("network"):
        pixels = codec.reconstruct(loaded, codes, hdr.width, hdr.height, gray, hdr.synthesis)
    with t("container"):
        if SectionType.ALPHA in lic.sections:
            sidecar.unpack_alpha(lic.sections[SectionType.ALPHA], hdr.width, hdr.height)
        sidecar.unpack_metadata(lic.sections.get(SectionType.METADATA, b""))
    return pixels, lambda: check_decode(loaded, lic, codes)


def check_decode(loaded, lic, codes) -> None:
    """In-sync check: the codec's own entropy decoder must give the same symbols."""
    import torch

    from lcodec import codec

    ref = codec.decode_codes(loaded, lic)
    if not all(torch.equal(a.cpu(), b.cpu()) for a, b in
               ((ref.qi, codes.qi), (ref.luma, codes.luma), (ref.chroma, codes.chroma))):
        raise LcodecError("the bench's decoder no longer matches codec.decode_codes; "
                          "update lcodec/evaluate/bench.py to follow codec.py")


def time_lcodec(path: Path, loaded, knob: float, device: str, repeat: int,
                entropy: str = "auto") -> LcodecTiming:
    """Best-of-``repeat`` stage times of one encode and one decode of ``path`` with the
    entropy method ``codec.analyse(…, entropy)`` picks."""
    import torch

    from lcodec import container
    from lcodec.imageio import load_image

    src = load_image(path, str(path))  # as `lcodec encode` reads it
    sync = _sync_for(device)
    best_enc: dict[str, float] | None = None
    best_dec: dict[str, float] | None = None
    rss_e = rss_d = 0
    gpu_e = gpu_d = None
    data = b""
    pixels = None
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        te = StageTimer(sync)
        with RssPeak() as rp:
            data, check = encode_stages(loaded, src, knob, te, entropy)
        rss_e = max(rss_e, rp.peak)
        check()
        if device == "cuda":
            gpu_e = max(gpu_e or 0, torch.cuda.max_memory_allocated())
            torch.cuda.reset_peak_memory_stats()
        td = StageTimer(sync)
        with RssPeak() as rp:
            pixels, check = decode_stages(data, device, td)
        rss_d = max(rss_d, rp.peak)
        check()
        if device == "cuda":
            gpu_d = max(gpu_d or 0, torch.cuda.max_memory_allocated())
        if best_enc is None or sum(te.seconds.values()) < sum(best_enc.values()):
            best_enc = te.seconds
        if best_dec is None or sum(td.seconds.values()) < sum(best_dec.values()):
            best_dec = td.seconds
    h, w = src.rgb.shape[:2]
    method = container.unpack(data).header.entropy_method.name
    return LcodecTiming(path.name, len(data), len(data) * 8 / (w * h), best_enc or {},
                        best_dec or {}, rss_e, rss_d, method, gpu_e, gpu_d, pixels)


# --- baselines ---------------------------------------------------------------------------

@dataclass
class BaselineTiming:
    codec: str
    setting: float
    bpp: float
    encode_s: float
    decode_s: float


def time_baseline(name: str, rgb: np.ndarray, bpp: float, repeat: int) -> BaselineTiming:
    """Time the codec at the sweep setting whose bpp is nearest ``bpp`` (bisection on the
    sweep, which is monotone in rate)."""
    from lcodec.evaluate import baselines

    b = baselines.get(name)
    px = rgb.shape[0] * rgb.shape[1]
    sizes: dict[float, float] = {}

    def rate(s: float) -> float:
        if s not in sizes:
            sizes[s] = len(b.encode(rgb, s)) * 8 / px
        return sizes[s]

    settings = sorted(b.settings, key=lambda s: s if b.setting_name != "distance" else -s)
    lo, hi = 0, len(settings) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if rate(settings[mid]) < bpp:
            lo = mid
        else:
            hi = mid
    best = min((settings[lo], settings[hi]), key=lambda s: abs(np.log(rate(s) / bpp)))
    enc = dec = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        data = b.encode(rgb, best)
        t1 = time.perf_counter()
        b.decode(data)
        t2 = time.perf_counter()
        enc, dec = min(enc, t1 - t0), min(dec, t2 - t1)
    return BaselineTiming(name, best, len(data) * 8 / px, enc, dec)


# --- report ------------------------------------------------------------------------------

def _times(lcodec_s: float, codec_s: float) -> str:
    return f"×{lcodec_s / codec_s:.3g}" if codec_s > 0 else "×inf"


def _mb(n: int | None) -> str:
    return "–" if n is None else f"{n / 2**20:.0f}"


def stage_table(rows: list[LcodecTiming], device: str) -> str:
    head = (["image", "bpp"] + [f"enc {s}" for s in ENCODE_STAGES] + ["enc total"]
            + [f"dec {s}" for s in DECODE_STAGES] + ["dec total", "peak RSS enc MB",
                                                     "peak RSS dec MB"])
    if device == "cuda":
        head += ["peak GPU enc MB", "peak GPU dec MB"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]

    def line(name: str, bpp: float, enc: dict, dec: dict, re: float, rd: float,
             ge: float | None, gd: float | None) -> str:
        cells = [name, f"{bpp:.4f}"]
        cells += [f"{enc.get(s, 0.0):.3f}" for s in ENCODE_STAGES] + [f"{sum(enc.values()):.3f}"]
        cells += [f"{dec.get(s, 0.0):.3f}" for s in DECODE_STAGES] + [f"{sum(dec.values()):.3f}"]
        cells += [_mb(int(re)), _mb(int(rd))]
        if device == "cuda":
            cells += [_mb(None if ge is None else int(ge)), _mb(None if gd is None else int(gd))]
        return "| " + " | ".join(cells) + " |"

    for r in rows:
        lines.append(line(r.image, r.bpp, r.encode, r.decode, r.rss_encode, r.rss_decode,
                          r.gpu_encode, r.gpu_decode))

    def mean_stage(attr: str, stages: tuple[str, ...]) -> dict[str, float]:
        return {s: float(np.mean([getattr(r, attr).get(s, 0.0) for r in rows])) for s in stages}

    ge = [r.gpu_encode for r in rows if r.gpu_encode is not None]
    gd = [r.gpu_decode for r in rows if r.gpu_decode is not None]
    lines.append(line("**mean** (memory: max)", float(np.mean([r.bpp for r in rows])),
                      mean_stage("encode", ENCODE_STAGES), mean_stage("decode", DECODE_STAGES),
                      max(r.rss_encode for r in rows), max(r.rss_decode for r in rows),
                      max(ge) if ge else None, max(gd) if gd else None))
    return "\n".join(lines)


def ratio_table(rows: list[LcodecTiming], base: dict[str, list[BaselineTiming]]) -> str:
    names = list(base)
    head = ["image", "lcodec enc s", "lcodec dec s"]
    for n in names:
        head += [f"{n} q (bpp)", f"{n} enc s (lcodec ×)", f"{n} dec s (lcodec ×)"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]

    def cells(enc: float, dec: float, bts: list[BaselineTiming | None]) -> list[str]:
        out = [f"{enc:.3f}", f"{dec:.3f}"]
        for bt in bts:
            if bt is None:
                out += ["", "", ""]
                continue
            out += [f"{bt.setting:g} ({bt.bpp:.3f})",
                    f"{bt.encode_s:.4f} ({_times(enc, bt.encode_s)})",
                    f"{bt.decode_s:.4f} ({_times(dec, bt.decode_s)})"]
        return out

    for i, r in enumerate(rows):
        enc, dec = sum(r.encode.values()), sum(r.decode.values())
        lines.append("| " + " | ".join([r.image, *cells(enc, dec, [base[n][i] for n in names])])
                     + " |")
    enc = float(np.mean([sum(r.encode.values()) for r in rows]))
    dec = float(np.mean([sum(r.decode.values()) for r in rows]))
    means = []
    for n in names:
        bts = base[n]
        means.append(BaselineTiming(n, float("nan"), float(np.mean([b.bpp for b in bts])),
                                    float(np.mean([b.encode_s for b in bts])),
                                    float(np.mean([b.decode_s for b in bts]))))
    mean_cells = cells(enc, dec, means)
    for k in range(len(names)):
        mean_cells[2 + 3 * k] = f"({means[k].bpp:.3f})"
    lines.append("| **mean** | " + " | ".join(mean_cells) + " |")
    return "\n".join(lines)


ENTROPY_NOTES = {
    "STATIC_CONTEXT_V1": "probs = context look-ups in the static tables; coding = constriction "
                         "range coding (decode: interleaved per channel, timed apart).",
    "INCLINED_TCAE_V1": "probs = the integer TCAE networks (encode: one forward pass giving "
                        "all frequency rows; decode: the per-plane network work of "
                        "IntTcae.decode); coding = the constriction calls (decode: interleaved "
                        "plane by plane with the network, timed apart through a timing proxy "
                        "of the SymbolDecoder).",
}


def entropy_note(rows: list[LcodecTiming]) -> str:
    """Footnote of a stage table: the entropy method(s) of the files and the probs/coding
    split."""
    methods = sorted({r.entropy for r in rows})
    return " ".join(f"Entropy method {m}: {ENTROPY_NOTES.get(m, 'see ENTROPY_STAGES.')}"
                    for m in methods)


def _images(paths: list[str]) -> list[Path]:
    from lcodec.evaluate.runner import collect_images

    if not paths:
        if not DEFAULT_IMAGES.is_dir():
            raise LcodecError(f"no images given and {DEFAULT_IMAGES.resolve()} does not exist; "
                              "give image files or folders")
        paths = [str(DEFAULT_IMAGES)]
    return collect_images(paths)


def run(args: argparse.Namespace, out=print) -> None:
    import torch

    from lcodec import api, codec, models
    from lcodec.container import EntropyMethod
    from lcodec.evaluate import baselines
    from lcodec.imageio import load_image
    from lcodec.ratecontrol import fit_budget, fit_budget_two_stage

    images = _images(args.images)[: args.limit or None]
    if args.threads:
        torch.set_num_threads(args.threads)
    rss0 = _rss_bytes()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if args.device == "all" and not torch.cuda.is_available():
        devices = ["cpu"]
    for d in devices:
        api.resolve_device(d)
    names = [n for n in args.baselines.split(",") if n]
    for n in names:
        reason = baselines.get(n).available()
        if reason:
            raise LcodecError(reason)
    info = models.find(args.model)
    coder = codec.coder_for_encoding(models.load(info, "cpu"), args.entropy)  # fails early
    ent = coder.method.name
    if any(coder.entropy_id):
        ent += f" {coder.entropy_id.hex()}"
    rate = f"knob {args.knob:g}" if args.bpp is None else f"bpp ≤ {args.bpp:g}"
    out(f"# lcodec bench: model {info.name} ({info.model_id.hex()}), entropy {ent} "
        f"(--entropy {args.entropy}), {rate}, {len(images)} images")
    out(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeat} after a "
        "warm-up; seconds.")
    cpu_rows: list[LcodecTiming] = []
    for device in devices:
        loaded = models.load(info, device)
        knobs = {}
        if args.bpp is not None:  # untimed: the knob that meets the budget on each image
            for p in images:  # (the search of api.encode_full)
                src = load_image(p, str(p))
                budget = int(args.bpp * src.width * src.height / 8)
                a = codec.analyse(loaded, src, args.entropy)
                if a.coder.method == EntropyMethod.STATIC_CONTEXT_V1:
                    knobs[p] = fit_budget(a.encode, budget).knob
                else:
                    knobs[p] = fit_budget_two_stage(a.encode_static, a.encode, budget).knob
        time_lcodec(images[0], loaded, knobs.get(images[0], args.knob), device, 1,
                    args.entropy)  # warm-up
        rows = [time_lcodec(p, loaded, knobs.get(p, args.knob), device, args.repeat,
                            args.entropy) for p in images]
        out("")
        out(f"## lcodec on {device} ({', '.join(sorted({r.entropy for r in rows}))}): "
            "stage seconds and peak memory")
        out("")
        out(stage_table(rows, device))
        out("")
        out(entropy_note(rows))
        if device == "cpu":
            cpu_rows = rows
        else:
            ref = cpu_rows or None
            if ref:
                same = all(np.array_equal(a.pixels, b.pixels) for a, b in zip(ref, rows,
                                                                               strict=True))
                out("")
                out(f"CUDA decodings {'equal' if same else 'differ from'} the CPU ones "
                    "(the bytes are checked equal by construction).")
    if names:
        rows = cpu_rows or rows
        base: dict[str, list[BaselineTiming]] = {n: [] for n in names}
        for p, r in zip(images, rows, strict=True):
            rgb = load_image(p, str(p), alpha="drop", strip=True).rgb
            for n in names:
                base[n].append(time_baseline(n, rgb, r.bpp, args.repeat))
        label = "CPU" if cpu_rows else devices[-1]
        out("")
        out(f"## lcodec ({label}) vs traditional codecs at the nearest bpp: seconds "
            "(lcodec seconds / codec seconds)")
        out("")
        out(ratio_table(rows, base))
    out("")
    start = "" if rss0 is None else f"; RSS before loading the model: {rss0 / 2**20:.0f} MB"
    out(f"Process-lifetime peak RSS (getrusage): {max_rss_lifetime() / 2**20:.0f} MB{start}.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lcodec.evaluate.bench",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="*", help="image files or folders (default: Kodak)")
    rate = ap.add_mutually_exclusive_group()
    rate.add_argument("--knob", type=float, default=0.0, help="rate knob in [-1, 1] (0)")
    rate.add_argument("--bpp", type=float, default=None,
                      help="find each image's knob for this bpp first (untimed)")
    ap.add_argument("--model", default=None, help="model name (default model if omitted)")
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                    help="cpu, cuda, or all = cpu and cuda when available (default)")
    ap.add_argument("--entropy", choices=["auto", "static", "tcae"], default="auto",
                    help="entropy method, as `lcodec encode --entropy`: auto = the one the "
                         "model's card records as smaller (default), static = context "
                         "tables, tcae = inclined TCAE")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per image (best kept)")
    ap.add_argument("--baselines", default=",".join(DEFAULT_BASELINES),
                    help="comma-separated codecs to compare with ('' for none)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    try:
        run(args)
    except LcodecError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
