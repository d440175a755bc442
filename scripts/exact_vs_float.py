"""PSNR and decode time of the exact vs the float synthesis on the same symbols (issue 15).

    python scripts/exact_vs_float.py encode OUT_DIR IMAGE...   # NAME.{v2,v1,float}.lic
    python scripts/exact_vs_float.py decode OUT_DIR v2|v1|float THREADS IMAGE...

``encode`` analyses each image once and writes three files at knob 0 with the same symbols:
EXACT_INT_V2 (what the default model writes: a SYNTHESIS and a SYNTHESIS_GRIDS section),
the same symbols naming EXACT_INT_V1, and FLOAT. ``decode`` decodes one kind in this process
(after a warm-up decode that loads the model and builds the exact layers), prints wall and
CPU seconds, PSNR and the pixel hash, writes NAME.KIND.tTHREADS.png, and the peak RSS.
Run each kind in its own process so the peak RSS is that kind's.
"""

from __future__ import annotations

import hashlib
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"
WARM = {"v2": "v1.2-v2-mse-fffc224b-static-rgb-odd.lic",
        "v1": "v1.1-v2-mse-fffc224b-static-rgb-odd.lic",
        "float": "v1.0-v2-mse-static-rgb-odd.lic"}


def encode(out: Path, images: list[str]) -> None:
    from dataclasses import replace

    from lcodec import api, container, encoder, models
    from lcodec.container import Synthesis

    torch.set_num_threads(1)
    model = models.load(models.find("v2-mse"))
    for image in images:
        analysis = encoder.analyse(model, api.as_source(image))
        files = {"v2": analysis.encode(0.0)}
        lic = container.unpack(files["v2"])
        for kind, synthesis in (("v1", Synthesis.EXACT_INT_V1), ("float", Synthesis.FLOAT)):
            files[kind] = container.pack(replace(lic, header=replace(
                lic.header, synthesis=synthesis, synthesis_grids=b"")))
        stem = Path(image).stem
        for kind, data in files.items():
            (out / f"{stem}.{kind}.lic").write_bytes(data)
        print(f"{stem}: " + ", ".join(f"{k} {len(d)} bytes" for k, d in files.items()))


def decode(out: Path, kind: str, threads: int, images: list[str]) -> None:
    from lcodec import api
    from lcodec.metrics import psnr

    torch.set_num_threads(threads)
    api.decode_array((GOLDEN / WARM[kind]).read_bytes())
    for image in images:
        stem = Path(image).stem
        data = (out / f"{stem}.{kind}.lic").read_bytes()
        wall, cpu = time.perf_counter(), time.process_time()
        pixels = api.decode_array(data)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ref = np.asarray(Image.open(image).convert("RGB"))
        Image.fromarray(pixels).save(out / f"{stem}.{kind}.t{threads}.png")
        print(f"{stem} {kind} threads={threads} decode_s={wall:.2f} cpu_s={cpu:.2f} "
              f"psnr={psnr(ref, pixels):.4f} "
              f"sha256={hashlib.sha256(pixels.tobytes()).hexdigest()[:16]}", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "encode":
        encode(Path(argv[1]), argv[2:])
    elif len(argv) >= 5 and argv[0] == "decode" and argv[2] in WARM:
        decode(Path(argv[1]), argv[2], int(argv[3]), argv[4:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
