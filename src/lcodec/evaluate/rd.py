"""Rate-distortion sweep of lcodec on a folder of images, on real files.

``python -m lcodec.evaluate.rd FOLDER --knobs=-0.3,0,0.3 [--model NAME] [--csv F]`` encodes
every image at each rate knob, decodes the `.lic` bytes, and prints the mean bpp (file bytes
× 8 / pixels), PSNR and MS-SSIM (RGB) and encode/decode seconds per knob as a Markdown table.
``--update-card`` stores those means in the model's card; ``--from-eval EVAL_DIR`` stores the
per-knob means that an ``lcodec eval`` of that model already measured instead (FOLDER is then
the folder that eval swept, named in the card), without encoding anything again.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from lcodec import api, encoder, models
from lcodec.imageio import list_images, load_image
from lcodec.metrics import ms_ssim, ms_ssim_db, psnr


def sweep(folder: Path, knobs: list[float], model: str | None, device: str) -> list[dict]:
    loaded = models.load(models.find(model), api.resolve_device(device))
    rows = []
    for path in list_images(folder):
        src = load_image(path, str(path), alpha="drop", strip=True)
        rgb = src.rgb
        for knob in knobs:
            t0 = time.perf_counter()
            data = encoder.analyse(loaded, src).encode(knob)
            t1 = time.perf_counter()
            back = api.decode_array(data, device)
            t2 = time.perf_counter()
            msv = ms_ssim(rgb, back)
            rows.append({
                "image": path.name, "knob": knob, "bytes": len(data),
                "bpp": len(data) * 8 / (rgb.shape[0] * rgb.shape[1]),
                "psnr": psnr(rgb, back), "ms_ssim": msv, "ms_ssim_db": ms_ssim_db(msv),
                "encode_s": t1 - t0, "decode_s": t2 - t1,
            })
    return rows


def table(rows: list[dict], knobs: list[float]) -> str:
    lines = ["| knob | bpp | PSNR (dB) | MS-SSIM | MS-SSIM (dB) | encode s | decode s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for knob in knobs:
        sel = [r for r in rows if r["knob"] == knob]

        def mean(key: str, sel=sel) -> float:
            return float(np.mean([r[key] for r in sel]))

        lines.append(f"| {knob:+.2f} | {mean('bpp'):.4f} | {mean('psnr'):.2f} | "
                     f"{mean('ms_ssim'):.4f} | {mean('ms_ssim_db'):.2f} | "
                     f"{mean('encode_s'):.2f} | {mean('decode_s'):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lcodec.evaluate.rd", description=__doc__)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--knobs", default="-0.3,-0.15,0,0.15,0.3")
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--csv", type=Path, default=None, help="write per-image rows here")
    ap.add_argument("--update-card", action="store_true",
                    help="store the per-knob means in the model's JSON card")
    ap.add_argument("--from-eval", type=Path, default=None,
                    help="an `lcodec eval` output folder of this model: store its per-knob "
                         "means in the card (implies --update-card, encodes nothing)")
    args = ap.parse_args(argv)
    if args.from_eval:
        card_from_eval(models.find(args.model), args.from_eval, args.folder)
        return 0
    knobs = [float(k) for k in args.knobs.split(",")]
    rows = sweep(args.folder, knobs, args.model, args.device)
    if args.csv:
        with args.csv.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print(f"{len({r['image'] for r in rows})} images from {args.folder}, model "
          f"{models.find(args.model).path.name}")
    print(table(rows, knobs))
    if args.update_card:
        update_card(models.find(args.model), rows, knobs, args)
    return 0


KEYS = ("bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s")


def _write_kodak(info: models.ModelInfo, command: str, images: int, points: list[dict]
                 ) -> None:
    """Store per-knob Kodak means (sorted by knob) as the card's ``kodak`` section."""
    import json
    import os
    import platform

    import torch

    card = info.card
    card["kodak"] = {
        "command": command,
        "images": images,
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, torch "
                   f"{torch.__version__}",
        "points": sorted(points, key=lambda p: p["knob"]),
    }
    info.path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")


def update_card(info: models.ModelInfo, rows: list[dict], knobs: list[float],
                args: argparse.Namespace) -> None:
    points = [{"knob": k, **{key: round(float(np.mean([r[key] for r in rows
                                                       if r["knob"] == k])), 4)
                             for key in KEYS}} for k in knobs]
    _write_kodak(info, f"python -m lcodec.evaluate.rd {args.folder} --knobs={args.knobs}",
                 len({r["image"] for r in rows}), points)


def card_from_eval(info: models.ModelInfo, eval_dir: Path, folder: Path) -> None:
    """Store the lcodec rows of ``eval_dir/curves_by_setting.csv`` (means over its images at
    each knob) as the card's ``kodak`` points."""
    with (eval_dir / "curves_by_setting.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["codec"] == "lcodec"]
    if not rows:
        raise SystemExit(f"{eval_dir}: no lcodec rows in curves_by_setting.csv")
    points = [{"knob": float(r["setting"]), **{k: round(float(r[k]), 4) for k in KEYS}}
              for r in rows]
    _write_kodak(info, f"lcodec eval {folder} --codecs lcodec,jpeg --model {info.path.stem} "
                       f"--out {eval_dir}, then python -m lcodec.evaluate.rd {folder} "
                       f"--model {info.path.stem} --from-eval {eval_dir}",
                 int(rows[0]["images"]), points)
    print(f"{info.path.with_suffix('.json').name}: {len(rows)} Kodak points from {eval_dir}")


if __name__ == "__main__":
    sys.exit(main())
