"""``lcodec eval``: sweep every codec over every image on real bytes, then write the report.

One job is one (codec, image) pair: it encodes the image at each setting of the codec's sweep,
decodes the bytes and scores the result (:func:`lcodec.evaluate.quality.score`). lcodec runs
its analysis networks once per image and codes every rate knob of :data:`LCODEC_KNOBS` from
that analysis (identical files at neighbouring knobs are decoded once). With ``jobs > 1`` the
pairs run in spawned worker processes, each with ``cpu_count // jobs`` torch threads (or
``threads``; more threads than free cores slows torch, MS-SSIM included, many times over).
bpp is always ``len(file bytes) × 8 / (width × height)``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lcodec.effort import DEFAULT_EFFORT
from lcodec.errors import LcodecError
from lcodec.evaluate import baselines
from lcodec.evaluate.images import centre_crop, load_source
from lcodec.evaluate.quality import Scorer
from lcodec.imageio import IMAGE_SUFFIXES, list_images
from lcodec.threads import compute_threads, set_threads

LCODEC_KNOBS = tuple(round(k, 3) for k in np.linspace(-1.0, 1.0, 17))

Row = dict[str, object]


@dataclass
class EvalConfig:
    """Everything ``lcodec eval`` was asked to do (``command`` is echoed in results.md)."""

    images: list[Path]
    codecs: list[str]
    out: Path
    anchor: str = "jpeg"
    rate_range: tuple[float, float] = (0.1, 1.0)
    model: str | None = None
    device: str = "cpu"
    crops: bool = False
    crop_bpp: float = 0.25
    effort: int = DEFAULT_EFFORT  # lcodec's encoder effort (what its files' correction costs)
    jobs: int = 1
    bd_fit: str = "pchip"
    threads: int = 0  # torch threads per worker; 0 = cpu_count // jobs
    command: str = "lcodec eval"

    def torch_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // self.jobs)


@dataclass
class Crop:
    """The central crop of one decoded image at the setting nearest the crop target."""

    codec: str
    image: str
    setting: float
    bpp: float
    psnr: float
    pixels: np.ndarray


@dataclass
class JobResult:
    codec: str
    image: str
    rows: list[Row] = field(default_factory=list)
    crop: Crop | None = None
    seconds: float = 0.0
    error: str | None = None


def collect_images(paths: list[str | Path]) -> list[Path]:
    """Image files given directly or found (not recursively) in the given folders."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            inside = list_images(p)
            if not inside:
                raise LcodecError(f"{p} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found.extend(inside)
        elif p.is_file():
            found.append(p)
        else:
            raise LcodecError(f"{p} not found; give image files or folders of images")
    if not found:
        raise LcodecError("no images given")
    names = [p.name for p in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LcodecError(f"two images are called {dupes[0]}; rename one (names key the CSV)")
    return found


def check_codecs(codecs: list[str], anchor: str, model: str | None) -> None:
    """Fail before any work if a codec is unknown or unavailable, the anchor is missing, or
    the metric and plotting libraries are not installed."""
    import importlib.util

    for module, what in (("pytorch_msssim", "MS-SSIM"), ("matplotlib", "the RD plots")):
        if importlib.util.find_spec(module) is None:
            raise LcodecError(f"lcodec eval needs {module} for {what}; "
                              f"{baselines.EVAL_EXTRA}")
    for name in codecs:
        if name == baselines.LCODEC:
            from lcodec import models

            models.find(model)
            continue
        reason = baselines.get(name).available()
        if reason:
            raise LcodecError(reason)
    if anchor not in codecs:
        raise LcodecError(f"the anchor {anchor} is not among --codecs; add it or change --anchor")


def _row(codec: str, image: str, setting: float, data: bytes, rgb: np.ndarray,
         metrics: dict[str, float], enc_s: float, dec_s: float) -> Row:
    h, w = rgb.shape[:2]
    return {"codec": codec, "image": image, "setting": setting, "bytes": len(data),
            "bpp": len(data) * 8 / (w * h), **metrics, "encode_s": enc_s, "decode_s": dec_s,
            "width": w, "height": h}


class _CropKeeper:
    """Keeps the decoded crop whose bpp is nearest the target (in log-bpp)."""

    def __init__(self, codec: str, image: str, target: float | None) -> None:
        self.codec, self.image, self.target = codec, image, target
        self.best: Crop | None = None
        self.dist = np.inf

    def offer(self, row: Row, decoded: np.ndarray) -> None:
        if self.target is None:
            return
        d = abs(np.log(float(row["bpp"]) / self.target))
        if d < self.dist:
            self.dist = d
            self.best = Crop(self.codec, self.image, float(row["setting"]), float(row["bpp"]),
                             float(row["psnr"]), centre_crop(decoded))


def sweep_baseline(name: str, path: Path, crop_bpp: float | None = None
                   ) -> tuple[list[Row], Crop | None]:
    """Encode, decode and score one image at every setting of a traditional codec."""
    b = baselines.get(name)
    rgb = load_source(path).rgb
    score = Scorer(rgb)
    keep = _CropKeeper(name, path.name, crop_bpp)
    rows = []
    for setting in b.settings:
        t0 = time.perf_counter()
        data = b.encode(rgb, setting)
        t1 = time.perf_counter()
        dec = b.decode(data)
        t2 = time.perf_counter()
        row = _row(name, path.name, float(setting), data, rgb, score(dec), t1 - t0, t2 - t1)
        rows.append(row)
        keep.offer(row, dec)
    return rows, keep.best


def sweep_lcodec(path: Path, model: str | None = None, device: str = "cpu",
                 knobs: tuple[float, ...] = LCODEC_KNOBS, crop_bpp: float | None = None,
                 effort: int = DEFAULT_EFFORT) -> tuple[list[Row], Crop | None]:
    """One analysis per image, then real `.lic` files at every knob, each with the correction
layer the encoder chooses at that knob (:func:`lcodec.encoder.file_at_knob`), decoded by the
API.

    ``encode_s`` of a row is what encoding at that knob alone costs: the shared analysis plus
    that knob's quantization, entropy coding and container. When the model's entropy method
    is not the static tables (a TCAE), each knob also gets a ``lcodec-static`` row: the same
    symbols coded with the static tables, a real file whose decoding is the same pixels
    (checked on the first knob), so one sweep measures what the entropy method gains.
    """
    from lcodec import api, container, encoder, models
    from lcodec.container import SectionType
    from lcodec.encoder.draft import Draft

    def static_file(knob: float, chosen: Draft) -> bytes:
        """The static-table file of ``knob`` with the correction section of ``chosen``."""
        static = analysis.draft_static(knob).with_section(
            SectionType.CORRECTION, chosen.section(SectionType.CORRECTION))
        return container.pack(analysis.final(static).lic)

    loaded = models.load(models.find(model), api.resolve_device(device))
    src = load_source(path)
    score = Scorer(src.rgb)
    t0 = time.perf_counter()
    analysis = encoder.analyse(loaded, src)
    analyse_s = time.perf_counter() - t0
    keep = _CropKeeper(baselines.LCODEC, path.name, crop_bpp)
    seen: dict[bytes, tuple[dict[str, float], float]] = {}
    rows = []
    static_rows = []
    companion = not analysis.coder.cheap
    for knob in knobs:
        t0 = time.perf_counter()
        chosen = encoder.file_at_knob(analysis, knob, level=effort)
        data = container.pack(chosen.lic)
        t1 = time.perf_counter()
        if data in seen:  # a saturated knob: same file, same scores
            metrics, dec_s = seen[data]
            rows.append(_row(baselines.LCODEC, path.name, knob, data, src.rgb, metrics,
                             analyse_s + t1 - t0, dec_s))
        else:
            dec = api.decode_array(data, device)
            dec_s = time.perf_counter() - t1
            metrics = score(dec)
            seen[data] = (metrics, dec_s)
            row = _row(baselines.LCODEC, path.name, knob, data, src.rgb, metrics,
                       analyse_s + t1 - t0, dec_s)
            rows.append(row)
            keep.offer(row, dec)
            # same symbols, so the same pixels: checked once per image
            if companion and not static_rows and not np.array_equal(
                    api.decode_array(static_file(knob, chosen), device), dec):
                raise LcodecError(f"{path.name}: the static-table file decodes differently")
        if companion:
            static_rows.append(_row(baselines.LCODEC_STATIC, path.name, knob,
                                    static_file(knob, chosen), src.rgb, metrics,
                                    float("nan"), dec_s))
    return rows + static_rows, keep.best


def run_job(job: tuple[str, Path, str | None, str, float | None, int]) -> JobResult:
    """One (codec, image) sweep; errors come back as text so one bad file names itself."""
    name, path, model, device, crop_bpp, effort = job
    res = JobResult(name, path.name)
    t0 = time.perf_counter()
    try:
        if name == baselines.LCODEC:
            res.rows, res.crop = sweep_lcodec(path, model, device, crop_bpp=crop_bpp,
                                              effort=effort)
        else:
            res.rows, res.crop = sweep_baseline(name, path, crop_bpp)
    except LcodecError as exc:
        res.error = str(exc)
    except (OSError, ValueError, RuntimeError) as exc:
        res.error = f"{name} failed on {path}: {exc}"
    res.seconds = time.perf_counter() - t0
    return res


def _worker_init(threads: int) -> None:
    set_threads(threads)


def run_sweeps(cfg: EvalConfig, log: Callable[[str], None] = lambda s: None
               ) -> tuple[list[Row], list[Crop]]:
    """All (codec, image) sweeps, lcodec's first (the longest), in ``cfg.jobs`` processes."""
    crop_bpp = cfg.crop_bpp if cfg.crops else None
    order = sorted(cfg.codecs, key=lambda c: c != baselines.LCODEC)
    jobs = [(c, p, cfg.model, cfg.device, crop_bpp, cfg.effort) for c in order
            for p in cfg.images]
    results: list[JobResult] = []

    def done(res: JobResult) -> None:
        if res.error:
            raise LcodecError(res.error)
        results.append(res)
        log(f"[{len(results)}/{len(jobs)}] {res.codec} {res.image}: {len(res.rows)} points, "
            f"{res.seconds:.1f} s")

    threads = cfg.torch_threads()
    if cfg.jobs == 1:
        with compute_threads(threads):
            for job in jobs:
                done(run_job(job))
    else:
        ctx = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
        with cf.ProcessPoolExecutor(cfg.jobs, mp_context=ctx, initializer=_worker_init,
                                    initargs=(threads,)) as ex:
            futures = [ex.submit(run_job, job) for job in jobs]
            try:
                for fut in cf.as_completed(futures):
                    done(fut.result())
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    pos = {(c, p.name): i for i, (c, p, *_rest) in enumerate(jobs)}
    results.sort(key=lambda r: pos[(r.codec, r.image)])
    rows = [row for r in results for row in r.rows]
    crops = [r.crop for r in results if r.crop is not None]
    return rows, crops


def evaluate(cfg: EvalConfig, log: Callable[[str], None] = lambda s: None) -> dict:
    """Run the sweeps and write every output into ``cfg.out``; returns the report summary."""
    from lcodec.evaluate import report

    check_codecs(cfg.codecs, cfg.anchor, cfg.model)
    cfg.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows, crops = run_sweeps(cfg, log)
    wall = time.perf_counter() - t0
    return report.write_all(cfg, rows, crops, wall, log)
