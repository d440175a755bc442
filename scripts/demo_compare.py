"""``make demo``'s comparison: lcodec beside JPEG, WebP, AVIF and JPEG XL at the same file size.

    python scripts/demo_compare.py ORIGINAL FILE.lic DECODED.png [--picture OUT.png]

Prints the bytes, bpp, RGB PSNR and MS-SSIM of the ``.lic`` file (decoded to DECODED.png) and,
for each traditional codec installed, of its largest file that is not larger than the
``.lic`` file. Each codec's setting is found by bisection along its scale (quality, or JPEG
XL's distance) on real encoded bytes, with the encoder settings of ``lcodec eval``
(:mod:`lcodec.evaluate.baselines`). ``--picture`` writes a labelled side-by-side of one detail
of the image at 2×: original | lcodec | JPEG | AVIF.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lcodec import container, models
from lcodec.evaluate.baselines import BASELINES, Baseline
from lcodec.evaluate.images import load_source
from lcodec.evaluate.quality import MS_SSIM_MIN_SIDE
from lcodec.metrics import ms_ssim, psnr

# Each codec's settings in order of growing file size: the scale the bisection walks.
SCALES = {
    "jpeg": [float(q) for q in range(1, 101)],  # quality
    "webp": [float(q) for q in range(0, 101)],  # quality
    "avif": [float(q) for q in range(0, 101)],  # quality
    "jxl": [round(25 * 0.02 ** (k / 99), 3) for k in range(100)],  # distance, 25 down to 0.5
}
PICTURE = ("lcodec", "jpeg", "avif")  # the files shown beside the original


@dataclass
class Entry:
    """One codec's file, decoded and scored."""

    codec: str  # "lcodec" or a key of BASELINES
    label: str
    setting: str
    nbytes: int
    bpp: float
    psnr: float
    ms_ssim: float  # NaN below MS_SSIM_MIN_SIDE pixels on a side
    pixels: np.ndarray


def largest_within(codec: Baseline, rgb: np.ndarray, budget: int) -> tuple[float, bytes] | None:
    """The setting and bytes of ``codec``'s largest file of at most ``budget`` bytes, found by
    bisection along its scale; None when even its smallest file is larger."""
    scale = SCALES[codec.name]
    best = None
    lo, hi = 0, len(scale) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        data = codec.encode(rgb, scale[mid])
        if len(data) <= budget:
            best, lo = (scale[mid], data), mid + 1
        else:
            hi = mid - 1
    return best


def scored(rgb: np.ndarray, codec: str, label: str, setting: str, nbytes: int,
           pixels: np.ndarray) -> Entry:
    msv = ms_ssim(rgb, pixels) if min(rgb.shape[:2]) >= MS_SSIM_MIN_SIDE else math.nan
    return Entry(codec, label, setting, nbytes, nbytes * 8 / (rgb.shape[0] * rgb.shape[1]),
                 psnr(rgb, pixels), msv, pixels)


def detail(rgb: np.ndarray, size: int = 256, step: int = 64) -> tuple[slice, slice]:
    """The ``size``² window (on a ``step`` grid) of greatest luma spread: bright and dark
    regions side by side, edges beside smooth areas, where codecs differ most."""
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    h, w = luma.shape
    sh, sw = min(size, h), min(size, w)
    _, i, j = max((float(luma[i:i + sh, j:j + sw].std()), i, j)
                  for i in range(0, h - sh + 1, step) for j in range(0, w - sw + 1, step))
    return slice(i, i + sh), slice(j, j + sw)


def side_by_side(tiles: list[tuple[str, np.ndarray]], zoom: int = 2) -> Image.Image:
    """Equal-sized tiles enlarged ``zoom``× (nearest neighbour), in a row, captions above."""
    font = ImageFont.load_default(size=15)
    h, w = tiles[0][1].shape[:2]
    gap, caption = 6, 44
    sheet = Image.new("RGB", (len(tiles) * (w * zoom + gap) - gap, h * zoom + caption), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (text, px) in enumerate(tiles):
        x = k * (w * zoom + gap)
        draw.multiline_text((x + 3, 3), text, fill="black", font=font, spacing=3)
        sheet.paste(Image.fromarray(px).resize((w * zoom, h * zoom), Image.NEAREST), (x, caption))
    return sheet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("original", type=Path, help="the image that was encoded")
    ap.add_argument("lic", type=Path, help="lcodec's file")
    ap.add_argument("decoded", type=Path, help="that file decoded (lcodec decode)")
    ap.add_argument("--picture", type=Path, help="write the side-by-side detail here (PNG)")
    args = ap.parse_args(argv)

    rgb = load_source(args.original).rgb
    ours = np.asarray(Image.open(args.decoded).convert("RGB"))
    if ours.shape != rgb.shape:
        raise SystemExit(f"{args.decoded} is not {args.original} decoded: "
                         f"{ours.shape[1]}×{ours.shape[0]}, not {rgb.shape[1]}×{rgb.shape[0]}")
    budget = args.lic.stat().st_size
    header, _ = container.read_header(args.lic.read_bytes())
    model = models.by_id(header.model_id)
    setting = f"{model.name + ', ' if model else ''}knob {header.rate_knob:+.2f}"
    entries = [scored(rgb, "lcodec", "lcodec", setting, budget, ours)]
    notes = []
    for name in ("jpeg", "webp", "avif", "jxl"):
        codec = BASELINES[name]
        if (why := codec.available()) is not None:
            notes.append(f"{codec.label}: {why}")
        elif (found := largest_within(codec, rgb, budget)) is None:
            notes.append(f"{codec.label}: even its smallest file is over {budget} bytes")
        else:
            value, data = found
            entries.append(scored(rgb, name, codec.label, f"{codec.setting_name} {value:g}",
                                  len(data), codec.decode(data)))

    print(f"\n{args.original.name}, {rgb.shape[1]}×{rgb.shape[0]}: each codec's largest file "
          f"not over lcodec's {budget} bytes (setting found by bisection)")
    print(f"{'codec':9} {'setting':18} {'bytes':>8} {'bpp':>7} {'PSNR dB':>8} {'MS-SSIM':>8}")
    for e in entries:
        msv = f"{e.ms_ssim:8.4f}" if math.isfinite(e.ms_ssim) else f"{'n/a':>8}"
        print(f"{e.label:9} {e.setting:18} {e.nbytes:8d} {e.bpp:7.4f} {e.psnr:8.2f} {msv}")
    if min(rgb.shape[:2]) < MS_SSIM_MIN_SIDE:
        notes.append(f"MS-SSIM: n/a, it needs {MS_SSIM_MIN_SIDE} pixels or more on each side")
    for note in notes:
        print(note)

    if args.picture:
        rows, cols = detail(rgb)
        tiles = [(f"original: x={cols.start}, y={rows.start}, 2x\n"
                  "(bpp and PSNR: whole image)", rgb[rows, cols])]
        tiles += [(f"{e.label} {e.setting}\n{e.bpp:.3f} bpp, {e.psnr:.2f} dB",
                   e.pixels[rows, cols]) for e in entries if e.codec in PICTURE]
        args.picture.parent.mkdir(parents=True, exist_ok=True)
        side_by_side(tiles).save(args.picture, optimize=True)
        print(f"wrote {args.picture}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
