"""Build a compact training pack: a folder of training images under a size budget.

``python -m lcodec.train.pack ../shared/data/train pack/train --max-mib 46 [--min-side 256]``

A remote GPU run can take only a few tens of MiB along, so the pack copies a stable subset
of the source images *byte for byte* (no re-encoding: the originals' quality is kept): every
validation image first, then the others in the order of a hash of their names until the
budget is spent. The same source and budget always give the same pack. The source's
``MANIFEST.tsv`` rows of the chosen files are copied too, so licences travel with the data.
"""

from __future__ import annotations

import argparse
import shutil
import zlib
from pathlib import Path

from PIL import Image

from lcodec.imageio import list_images
from lcodec.train.data import is_validation

MANIFEST = "MANIFEST.tsv"


def choose(paths: list[Path], max_bytes: int, min_side: int, val_fraction: float) -> list[Path]:
    """Validation images first, then a name-hash order, while the total stays in budget."""
    usable = []
    for p in paths:
        with Image.open(p) as im:
            if min(im.size) >= min_side:
                usable.append(p)
    order = sorted(usable, key=lambda p: (not is_validation(p, val_fraction),
                                          zlib.crc32(p.name.encode()), p.name))
    chosen, total = [], 0
    for p in order:
        size = p.stat().st_size
        if total + size <= max_bytes:
            chosen.append(p)
            total += size
    return sorted(chosen)


def build(src: Path, out: Path, max_mib: float, min_side: int = 256,
          val_fraction: float = 0.02) -> list[Path]:
    """Copy the chosen images (and their manifest rows) into ``out``; returns the copies."""
    chosen = choose(list_images(src), int(max_mib * 2**20), min_side, val_fraction)
    out.mkdir(parents=True, exist_ok=True)
    copies = []
    for p in chosen:
        copies.append(out / p.name)
        shutil.copyfile(p, copies[-1])
    manifest = src / MANIFEST
    if manifest.exists():
        lines = manifest.read_text().splitlines()
        names = {p.name for p in chosen}
        rows = [lines[0]] + [ln for ln in lines[1:] if ln.split("\t", 1)[0] in names]
        (out / MANIFEST).write_text("\n".join(rows) + "\n")
    return copies


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lcodec.train.pack", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="folder of training images")
    ap.add_argument("out", type=Path, help="pack folder to write")
    ap.add_argument("--max-mib", type=float, default=46.0, help="size budget (MiB)")
    ap.add_argument("--min-side", type=int, default=256, help="skip smaller images")
    ap.add_argument("--val-fraction", type=float, default=0.02,
                    help="validation split of the training config (kept whole)")
    args = ap.parse_args(argv)
    copies = build(args.src, args.out, args.max_mib, args.min_side, args.val_fraction)
    total = sum(p.stat().st_size for p in copies) / 2**20
    print(f"{len(copies)} images, {total:.1f} MiB in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
