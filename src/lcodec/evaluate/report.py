"""The outputs of ``lcodec eval``: CSVs, dataset curves, BD-rates, RD plots, crops, Markdown.

Files written into the output folder:

- ``per_image.csv``: one row per (codec, image, setting): bytes, bpp, every metric,
  encode/decode seconds.
- ``curves_by_setting.csv``: per codec and setting, the mean over images of bpp and of each
  metric (the classic "average curve"; the plots show it).
- ``curves_at_bpp.csv``: per codec and bpp of :data:`BPP_GRID`, each image's curve
  interpolated linearly in log-bpp (never extrapolated) and the values averaged; empty when
  the sweep did not reach that rate on every image (as "n/a" in the anchors file).
- ``bdrate.csv``: BD-rate of every codec against the anchor for each metric of
  :data:`BD_METRICS` over the bpp range, on the mean curves (reported) and per image
  (averaged), see :func:`bd_rates`.
- ``rd_psnr.png``, ``rd_ms_ssim_db.png``: rate-distortion plots of the curves by setting.
- ``results.md``: the exact command, library versions, the BD-rate table and the mean
  quality at 0.1/0.25/0.5/1.0 bpp.
- ``crops/<image>.png`` with ``--crops``: the original and each codec's decoding at the
  setting nearest the crop bpp, side by side.
"""

from __future__ import annotations

import csv
import math
import os
import platform
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lcodec import __version__
from lcodec.evaluate import baselines
from lcodec.evaluate.bdrate import bd_rate, quality_at
from lcodec.evaluate.quality import HIGHER_IS_BETTER, METRICS
from lcodec.metrics import ms_ssim_db

if TYPE_CHECKING:
    from lcodec.evaluate.runner import Crop, EvalConfig, Row

BPP_GRID = (0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.25, 1.5)
TABLE_BPP = (0.1, 0.25, 0.5, 1.0)
BD_METRICS = ("psnr", "psnr_y", "ms_ssim_db", "delta_e00")
METRIC_LABELS = {"psnr": "PSNR", "psnr_y": "PSNR-Y", "ms_ssim": "MS-SSIM",
                 "ms_ssim_db": "MS-SSIM-dB", "delta_e00": "ΔE00"}
AXIS_LABELS = {"psnr": "PSNR (dB)", "psnr_y": "PSNR-Y (dB)",
               "ms_ssim_db": "MS-SSIM (dB) = −10·log10(1 − MS-SSIM)"}
ROW_FIELDS = ("codec", "image", "setting", "bytes", "bpp", *METRICS, "encode_s", "decode_s",
              "width", "height")


def _fmt(v: object) -> object:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def write_csv(path: Path, rows: Iterable[dict], fields: Iterable[str]) -> None:
    fields = list(fields)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k)) for k in fields})


def _codecs_in(rows: list[Row]) -> list[str]:
    return list(dict.fromkeys(str(r["codec"]) for r in rows))


def _by(rows: list[Row], *keys: str) -> dict[tuple, list[Row]]:
    out: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return out


def _mean(values: Iterable[float]) -> float:
    vals = [float(v) for v in values]
    return float(np.mean(vals)) if vals and all(math.isfinite(v) for v in vals) else math.nan


def curves_by_setting(rows: list[Row]) -> list[dict]:
    """Mean bpp and metrics over images at each (codec, setting), in sweep order.

    ``ms_ssim_db`` of a mean curve is the dB value of the mean MS-SSIM (as the anchors file
    computes it), not the mean of the per-image dB values.
    """
    out = []
    for (codec, setting), sel in _by(rows, "codec", "setting").items():
        rec = {"codec": codec, "setting": setting, "images": len(sel),
               "bpp": _mean(r["bpp"] for r in sel)}
        for m in METRICS:
            rec[m] = _mean(r[m] for r in sel)
        if math.isfinite(rec["ms_ssim"]):
            rec["ms_ssim_db"] = ms_ssim_db(rec["ms_ssim"])
        rec["encode_s"] = _mean(r["encode_s"] for r in sel)
        rec["decode_s"] = _mean(r["decode_s"] for r in sel)
        out.append(rec)
    return out


def per_image_at(rows: list[Row], metric: str, grid: Iterable[float]
                 ) -> dict[str, dict[str, np.ndarray]]:
    """codec -> image -> the image's ``metric`` interpolated at the bpp ``grid``."""
    grid = np.asarray(list(grid), dtype=np.float64)
    out: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for (codec, image), sel in _by(rows, "codec", "image").items():
        out[codec][image] = quality_at([r["bpp"] for r in sel], [r[metric] for r in sel], grid)
    return out


def curves_at_bpp(rows: list[Row], grid: Iterable[float] = BPP_GRID) -> list[dict]:
    """Per codec and target bpp: the mean over images of each interpolated metric (NaN unless
    every image's sweep reaches that bpp), and how many images reach it."""
    grid = list(grid)
    per_metric = {m: per_image_at(rows, m, grid) for m in METRICS}
    out = []
    for codec in _codecs_in(rows):
        for i, bpp in enumerate(grid):
            rec: dict = {"codec": codec, "bpp": bpp}
            for m in METRICS:
                vals = [v[i] for v in per_metric[m][codec].values()]
                rec[m] = _mean(vals)
                if m == "psnr":
                    rec["images"] = int(sum(math.isfinite(v) for v in vals))
            out.append(rec)
    return out


def bd_rates(rows: list[Row], anchor: str, rate_range: tuple[float, float],
             fit: str = "pchip", metrics: Iterable[str] = BD_METRICS) -> list[dict]:
    """BD-rate (%) of every codec against ``anchor``, two ways (``aggregate``):

    - ``mean_curve``: on the dataset curves of :func:`curves_by_setting` (mean bpp and mean
      quality at each setting). This is what results.md reports: it reproduces the anchors
      file (shared/anchors/kodak.md) within 0.4 points for WebP and JPEG 2000.
    - ``per_image``: on each image's own curves, then the mean over the images whose curves
      overlap the anchor's (``images`` counts them).
    """
    by_ci = _by(rows, "codec", "image")
    images = list(dict.fromkeys(str(r["image"]) for r in rows))
    mean = _by(curves_by_setting(rows), "codec")
    out = []

    def rec(codec: str, m: str, agg: str, value: float, n: int) -> dict:
        return {"codec": codec, "metric": m, "anchor": anchor, "aggregate": agg,
                "bd_rate_pct": value, "images": n, "fit": fit,
                "range": f"{rate_range[0]:g}-{rate_range[1]:g}"}

    def bd(a: list, t: list, m: str) -> float:
        return bd_rate([r["bpp"] for r in a], [r[m] for r in a], [r["bpp"] for r in t],
                       [r[m] for r in t], method=fit, rate_range=rate_range,
                       higher_is_better=HIGHER_IS_BETTER[m])

    for codec in _codecs_in(rows):
        for m in metrics:
            if (anchor,) in mean:
                out.append(rec(codec, m, "mean_curve", bd(mean[(anchor,)], mean[(codec,)], m),
                               len(images)))
            vals = [bd(by_ci[(anchor, i)], by_ci[(codec, i)], m) for i in images
                    if by_ci.get((anchor, i)) and by_ci.get((codec, i))]
            ok = [v for v in vals if math.isfinite(v)]
            out.append(rec(codec, m, "per_image", float(np.mean(ok)) if ok else math.nan,
                           len(ok)))
    return out


def plot_rd(curves: list[dict], metric: str, path: Path, title: str,
            max_bpp: float = 1.6) -> None:
    """One RD plot (matplotlib, Agg backend) of the mean-by-setting curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for codec in dict.fromkeys(c["codec"] for c in curves):
        pts = sorted((c["bpp"], c[metric]) for c in curves
                     if c["codec"] == codec and c["bpp"] <= max_bpp and math.isfinite(c[metric]))
        if pts:
            x, y = zip(*pts, strict=True)
            ax.plot(x, y, marker="o", markersize=3, linewidth=1.5 if codec == "lcodec" else 1,
                    label=baselines.LABELS.get(codec, codec))
    ax.set_xlabel("bits per pixel (file bytes × 8 / pixels)")
    ax.set_ylabel(AXIS_LABELS.get(metric, METRIC_LABELS[metric]))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_crops(crops: list[Crop], originals: dict[str, Path], codecs: list[str],
                folder: Path, target: float) -> list[Path]:
    """For each image: the original's centre crop, then each codec's, with a caption."""
    from lcodec.evaluate.images import centre_crop, load_source

    folder.mkdir(exist_ok=True)
    written = []
    by_image = _by_attr(crops, "image")
    for image, sel in by_image.items():
        tiles = [("original", centre_crop(load_source(originals[image]).rgb))]
        for codec in codecs:
            for c in sel:
                if c.codec == codec:
                    label = baselines.LABELS.get(codec, codec)
                    what = ("knob" if codec == baselines.LCODEC
                            else baselines.BASELINES[codec].setting_name)
                    tiles.append((f"{label}, {what} {c.setting:g}\n"
                                  f"{c.bpp:.3f} bpp, {c.psnr:.2f} dB", c.pixels))
        path = folder / f"{Path(image).stem}_{target:g}bpp.png"
        contact_sheet(tiles).save(path)
        written.append(path)
    return written


def contact_sheet(tiles: list[tuple[str, np.ndarray]]):
    """Equal-sized RGB tiles side by side, each with its (two-line) caption below: a PIL image."""
    from PIL import Image, ImageDraw

    h, w = tiles[0][1].shape[:2]
    gap, caption = 4, 30
    sheet = Image.new("RGB", (len(tiles) * (w + gap) - gap, h + caption), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (text, px) in enumerate(tiles):
        x = k * (w + gap)
        sheet.paste(Image.fromarray(px), (x, 0))
        draw.multiline_text((x + 2, h + 2), text, fill="black", spacing=2)
    return sheet


def _by_attr(items: list, attr: str) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for it in items:
        out[getattr(it, attr)].append(it)
    return out


def _pct(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:+.1f} %"


def markdown(cfg: EvalConfig, rows: list[Row], bd: list[dict], at_bpp: list[dict],
             wall_s: float) -> str:
    """results.md: the command, how it was measured, BD-rates and mean quality at fixed bpp."""
    codecs = _codecs_in(rows)
    images = list(dict.fromkeys(str(r["image"]) for r in rows))
    lo, hi = cfg.rate_range
    lines = [f"# `{cfg.command}`", ""]
    lines.append(f"lcodec {__version__}, Python {platform.python_version()}; {len(images)} "
                 f"images, {len(rows)} encoded files; {wall_s / 60:.1f} min with "
                 f"{cfg.jobs} worker(s).")
    if baselines.LCODEC in codecs:
        from lcodec import models

        info = models.find(cfg.model)
        lines.append(f"lcodec model {info.name} ({info.model_id.hex()}), device {cfg.device}, "
                     f"rate knobs {min(r['setting'] for r in rows if r['codec'] == 'lcodec'):g}"
                     f"…{max(r['setting'] for r in rows if r['codec'] == 'lcodec'):g}.")
    for name, lib in baselines.library_versions(codecs).items():
        lines.append(f"- {baselines.LABELS[name]}: {lib}")
    lines += ["", "bpp = file bytes × 8 / pixels. PSNR and MS-SSIM on RGB (pytorch_msssim, data "
              "range 255), PSNR-Y on BT.601 luma, ΔE00 = mean CIEDE2000 (sRGB → Lab, D65).", ""]

    lines += [f"## BD-rate vs {baselines.LABELS.get(cfg.anchor, cfg.anchor)}, {lo:g}–{hi:g} bpp "
              "(negative = fewer bits for the same quality)", "",
              f"Fit: {'piecewise-cubic Hermite (PCHIP)' if cfg.bd_fit == 'pchip' else 'cubic'} "
              "of log-rate vs quality over the quality interval the two curves share, both "
              "clipped to the bpp range; on the dataset's mean curves (mean bpp and mean "
              "quality at each codec setting; MS-SSIM-dB of the mean MS-SSIM), as the "
              "anchors file. Per-image BD-rates, averaged, are in bdrate.csv.", ""]
    cols = [m for m in BD_METRICS]
    lines.append("| codec | " + " | ".join(METRIC_LABELS[m] for m in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    table = {(d["codec"], d["metric"]): d for d in bd if d["aggregate"] == "mean_curve"}
    for codec in codecs:
        if codec == cfg.anchor:
            continue
        cells = []
        for m in cols:
            d = table[(codec, m)]
            cells.append(_pct(d["bd_rate_pct"]))
        lines.append(f"| {baselines.LABELS.get(codec, codec)} | " + " | ".join(cells) + " |")

    lines += ["", "## Mean quality at fixed bpp (per-image curves interpolated in log-bpp, "
              "then averaged)", ""]
    qcols = [("psnr", 2), ("ms_ssim", 4), ("delta_e00", 2)]
    head = [f"{METRIC_LABELS[m]} @{b:g}" for m, _ in qcols for b in TABLE_BPP]
    lines.append("| codec | " + " | ".join(head) + " |")
    lines.append("|---|" + "---|" * len(head))
    at = {(c["codec"], c["bpp"]): c for c in at_bpp}
    for codec in codecs:
        cells = []
        for m, digits in qcols:
            for b in TABLE_BPP:
                v = at.get((codec, b), {}).get(m, math.nan)
                cells.append("n/a" if not math.isfinite(v) else f"{v:.{digits}f}")
        lines.append(f"| {baselines.LABELS.get(codec, codec)} | " + " | ".join(cells) + " |")
    lines += ["", "n/a: the codec's sweep did not reach that rate on every image.", ""]

    lines += ["## Seconds per file (mean over images and settings)", "",
              "| codec | settings | encode s | decode s |", "|---|---|---|---|"]
    for codec in codecs:
        sel = [r for r in rows if r["codec"] == codec]
        n_set = len({r["setting"] for r in sel})
        lines.append(f"| {baselines.LABELS.get(codec, codec)} | {n_set} | "
                     f"{_mean(r['encode_s'] for r in sel):.3f} | "
                     f"{_mean(r['decode_s'] for r in sel):.3f} |")
    lines += ["", "lcodec's encode seconds include its analysis networks at every knob. Times "
              f"were taken with {cfg.jobs} worker process(es) of {cfg.torch_threads()} torch "
              f"thread(s) sharing {os.cpu_count()} CPUs.", ""]
    return "\n".join(lines)


def write_all(cfg: EvalConfig, rows: list[Row], crops: list[Crop], wall_s: float,
              log: Callable[[str], None] = lambda s: None) -> dict:
    """Write every output file; returns {"bd": …, "at_bpp": …, "files": […]}."""
    out = cfg.out
    by_setting = curves_by_setting(rows)
    at_bpp = curves_at_bpp(rows)
    bd = bd_rates(rows, cfg.anchor, cfg.rate_range, cfg.bd_fit)
    files = [out / "per_image.csv", out / "curves_by_setting.csv", out / "curves_at_bpp.csv",
             out / "bdrate.csv", out / "rd_psnr.png", out / "rd_ms_ssim_db.png",
             out / "results.md"]
    write_csv(files[0], rows, ROW_FIELDS)
    write_csv(files[1], by_setting, ("codec", "setting", "images", "bpp", *METRICS,
                                     "encode_s", "decode_s"))
    write_csv(files[2], at_bpp, ("codec", "bpp", "images", *METRICS))
    write_csv(files[3], bd, ("codec", "metric", "anchor", "aggregate", "bd_rate_pct", "images",
                             "fit", "range"))
    n = len({r["image"] for r in rows})
    plot_rd(by_setting, "psnr", files[4], f"PSNR (RGB), mean of {n} images per setting")
    plot_rd(by_setting, "ms_ssim_db", files[5], f"MS-SSIM (dB), mean of {n} images per setting")
    files[6].write_text(markdown(cfg, rows, bd, at_bpp, wall_s))
    if cfg.crops and crops:
        originals = {p.name: p for p in cfg.images}
        files += write_crops(crops, originals, cfg.codecs, out / "crops", cfg.crop_bpp)
    log(f"wrote {len(files)} files to {out}")
    return {"bd": bd, "at_bpp": at_bpp, "files": files}
