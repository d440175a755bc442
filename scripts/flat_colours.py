"""Flat colours at ``--bpp 0.25`` for training runs (issue 11): ΔE00 of real files.

    OMP_NUM_THREADS=1 python scripts/flat_colours.py RUN_DIR [RUN_DIR ...]
        [--tcae-of v2-mse]

Each run's last checkpoint is exported (fp16, static tables fitted on 100 training images)
into a temporary models folder; five flat 256² colours are encoded at 0.25 bpp with it and
decoded; prints ΔE00, the knob rate control chose and the file size per colour.
``--tcae-of NAME``: the runs are decoder-only fine-tunes of that shipped model (the same
symbols), so its inclined TCAE codes their files, as the default does.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

COLOURS = [(10, 200, 30), (128, 128, 128), (250, 250, 250), (60, 90, 200), (200, 120, 80)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--tcae-of", default=None)
    args = ap.parse_args()
    tmp_root = Path(tempfile.mkdtemp(prefix="lcodec-flats-"))
    import numpy as np
    import torch

    from lcodec import api, models
    from lcodec.evaluate.quality import delta_e00
    from lcodec.train.export import export

    torch.set_num_threads(1)
    shipped_entropy = models.entropy_dir().resolve()  # before LCODEC_MODELS moves
    for run in args.runs:
        tmp = tmp_root / run.name
        tmp.mkdir()
        os.environ["LCODEC_MODELS"] = str(tmp)
        name = args.tcae_of or f"flats-{run.name}"
        path = export(run, name, 100, tmp)
        card = json.loads(path.with_suffix(".json").read_text())
        if args.tcae_of:
            (tmp / "entropy").symlink_to(shipped_entropy)
            card["entropy"]["auto"] = "tcae"
        path.with_suffix(".json").write_text(json.dumps(card))
        out = []
        for colour in COLOURS:
            rgb = np.empty((256, 256, 3), np.uint8)
            rgb[:] = colour
            res = api.encode_with_stats(rgb, bpp=0.25, model=str(path.stem))
            de = delta_e00(rgb, api.decode_array(res.data))
            out.append(f"{colour}: {de:.2f} (knob {res.knob:+.3f}, {len(res.data)} B)")
        print(run.name, "; ".join(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
