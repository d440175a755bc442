"""The command ``python -m lcodec.evaluate.bench`` (``make bench``): times lcodec on each
image and device, the real commands and the baselines, and prints the report."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np

from lcodec.effort import DEFAULT_EFFORT, MAX_EFFORT
from lcodec.errors import LcodecError
from lcodec.evaluate import bench
from lcodec.evaluate.bench.baseline_times import BaselineTiming, time_baseline
from lcodec.evaluate.bench.cli_times import time_cli, time_efforts
from lcodec.evaluate.bench.memory import max_rss_lifetime, rss_bytes
from lcodec.evaluate.bench.stages import LcodecTiming, time_lcodec
from lcodec.evaluate.bench.tables import (
    cli_table,
    effort_table,
    entropy_note,
    ratio_table,
    stage_table,
)
from lcodec.threads import set_threads

DEFAULT_BASELINES = ("jpeg", "webp", "avif")
DEFAULT_IMAGES = Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "kodak"


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

    from lcodec import api, encoder, models
    from lcodec.encoder.analysis import coder_for_encoding
    from lcodec.encoder.rate import fit_analysis
    from lcodec.evaluate import baselines
    from lcodec.imageio import load_image

    images = _images(args.images)[: args.limit or None]
    if args.threads:
        set_threads(args.threads)
    rss0 = rss_bytes()
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
    coder = coder_for_encoding(models.load(info, "cpu"), args.entropy)  # fails early
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
            for p in images:  # (the networks' search of the encoder, encoder.rate)
                src = load_image(p, str(p))
                budget = int(args.bpp * src.width * src.height / 8)
                a = encoder.analyse(loaded, src, args.entropy)
                knobs[p] = fit_analysis(a, budget).knob
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
    if args.cli and cpu_rows:
        cli = [time_cli(p, info.path.stem, knobs.get(p, args.knob), args.repeat, args.threads,
                        args.entropy) for p in images[: args.cli]]
        out("")
        out("## The command line: wall seconds of `lcodec encode`/`decode` as subprocesses, "
            "their start-up, and the in-process times above")
        out("")
        out(cli_table(cli, cpu_rows))
    if args.efforts and args.cli:
        efforts = [int(e) for e in args.efforts.split(",")]
        rate = ["--knob", str(args.knob)] if args.bpp is None else ["--bpp", str(args.bpp)]
        timed = time_efforts(images[: args.cli], efforts, rate, args.repeat, args.threads)
        out("")
        out(f"## Effort levels: wall seconds of `lcodec encode {' '.join(rate)} -e N` "
            f"(default effort {DEFAULT_EFFORT}), first {args.cli} images")
        out("")
        out(effort_table(timed))
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
                                 description=bench.__doc__.split("\n\n")[0],
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
    ap.add_argument("--cli", type=int, default=2,
                    help="also time the real commands on the first N images (0: no)")
    ap.add_argument("--efforts", default=f"1,{DEFAULT_EFFORT},{MAX_EFFORT}",
                    help="effort levels whose `lcodec encode` is timed on the --cli images "
                         "('' for none)")
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
