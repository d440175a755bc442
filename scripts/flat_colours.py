"""Flat colours at ``--bpp 0.25`` for training runs (issue 11): ΔE00 of real files.

    OMP_NUM_THREADS=1 python scripts/flat_colours.py RUN_DIR [RUN_DIR ...]

Each run's last checkpoint is exported (fp16, static tables fitted on 100 training images)
into a temporary models folder; five flat 256² colours are encoded at 0.25 bpp with it and
decoded; prints ΔE00, the knob rate control chose and the file size per colour.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

COLOURS = [(10, 200, 30), (128, 128, 128), (250, 250, 250), (60, 90, 200), (200, 120, 80)]


def main(argv: list[str]) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="lcodec-flats-"))
    os.environ["LCODEC_MODELS"] = str(tmp)
    import numpy as np
    import torch

    from lcodec import api
    from lcodec.evaluate.quality import delta_e00
    from lcodec.train.export import export

    torch.set_num_threads(1)
    for run in map(Path, argv):
        name = f"flats-{run.name}"
        export(run, name, 100, tmp)
        out = []
        for colour in COLOURS:
            rgb = np.empty((256, 256, 3), np.uint8)
            rgb[:] = colour
            res = api.encode_with_stats(rgb, bpp=0.25, model=name)
            de = delta_e00(rgb, api.decode_array(res.data))
            out.append(f"{colour}: {de:.2f} (knob {res.knob:+.3f}, {len(res.data)} B)")
        print(run.name, "; ".join(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
