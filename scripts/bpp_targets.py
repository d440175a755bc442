"""``--bpp`` accuracy on Kodak: for each target, the worst case over the images.

``python scripts/bpp_targets.py ../shared/data/kodak --targets 0.1,0.2,0.3,0.5,0.75,1.0
[--entropy auto|static|tcae] [--model NAME]`` encodes every image at every target and
prints, per target, the lowest and highest achieved bpp (over images whose target is not
below the model's smallest file) and how many files fell short of 0.97 × the target. With the
correction layer (format 1.3; ``--no-correction`` turns it off) a target above the networks'
largest file is filled by it; without it such a target counts as out of range.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcodec import api, codec, encoder, models
from lcodec.imageio import list_images, load_image


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--targets", default="0.1,0.2,0.3,0.5,0.75,1.0")
    ap.add_argument("--entropy", default="auto")
    ap.add_argument("--model", default=None,
                    help="model name (default: the one the encoder picks per target)")
    ap.add_argument("--every", type=int, default=1, help="use every N-th image only")
    ap.add_argument("--no-correction", dest="correction", action="store_false")
    args = ap.parse_args(argv)
    targets = [float(t) for t in args.targets.split(",")]
    # Without --model, each target goes to the model the encoder itself would pick, and to
    # another one when that model's smallest file is too big (lcodec.encoder.rate.fit_size).
    infos = [models.find(args.model)] if args.model else models.available()
    chosen = {t: infos[0] if args.model else models.for_bpp(t) for t in targets}
    loaded = {info.name: models.load(info, "cpu") for info in infos}
    results: dict[float, list[float]] = {t: [] for t in targets}
    used: dict[float, set[str]] = {t: set() for t in targets}
    out_of_range: dict[float, int] = {t: 0 for t in targets}
    for path in list_images(args.folder)[:: args.every]:
        src = load_image(path, str(path), alpha="drop", strip=True)
        px = src.width * src.height
        ranges = {}
        for name, model in loaded.items():
            analysis = encoder.analyse(model, src, args.entropy)
            ranges[name] = (len(analysis.encode(codec.KNOB_MIN)) * 8 / px,
                            len(analysis.encode(codec.KNOB_MAX)) * 8 / px)
        for t in targets:
            lo, hi = ranges[chosen[t].name]
            fallback = t < lo and any(a <= t <= b for a, b in ranges.values())
            if not (lo <= t <= (hi if not args.correction else float("inf")) or fallback):
                out_of_range[t] += 1
                continue
            res = api.encode_with_stats(src, bpp=t, model=args.model, entropy=args.entropy,
                                        verify=False, correction=args.correction)
            results[t].append(res.bpp)
            used[t].add(res.model)
            print(f"{path.name} target {t}: {res.bpp:.4f} ({res.model}, knob {res.knob:+.3f})",
                  file=sys.stderr, flush=True)
    print("| target bpp | model | images in range | lowest achieved | highest achieved | "
          "lowest / target | below 0.97 × target |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for t in targets:
        v = results[t]
        if v:
            names = ", ".join(sorted(used[t]))
            short = sum(b < 0.97 * t for b in v)
            print(f"| {t} | {names} | {len(v)} | {min(v):.4f} | {max(v):.4f} | "
                  f"{min(v) / t:.3f} | {short} |")
        else:
            print(f"| {t} | {chosen[t].name} | 0 | – | – | – | – |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
