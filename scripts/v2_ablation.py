"""Network v2 ablations at equal CPU time (issue 11): Kodak RD points of runs that differ in
one switch (`configs/ablation/v2-*.json`: base, no importance map, decoder noise, mask-count
rate), each trained from scratch for the same minutes at one thread:

    for v in base nomask noise maskrate; do
        python -m lcodec.train ~/.cache/lcodec/runs/abl-$v \\
            --config configs/ablation/v2-$v.json --budget-minutes 20 --decay-minutes 5
    done
    python scripts/v2_ablation.py ../shared/data/kodak ~/.cache/lcodec/runs/abl-* \\
        --knobs=-0.6,0,0.6

Each run's last checkpoint is exported (fp16 + static tables fitted on training images) into
a temporary models folder and coded to real `.lic` files at each knob; prints one Markdown
table per run with its steps and CPU-hours.
"""

from __future__ import annotations

import sys

import torch
from quantizer_ablation import ablation_setup  # scripts/ is on sys.path when run


def main(argv: list[str] | None = None) -> int:
    args, knobs, tmp = ablation_setup(argv, __doc__, "-0.6,0,0.6")
    from lcodec.evaluate import rd
    from lcodec.train.export import export

    for run in args.runs:
        ckpt = torch.load(run / "last.ckpt", map_location="cpu", weights_only=False)
        name = f"ablation-{run.name}"
        export(run, name, args.table_images, tmp)
        rows = rd.sweep(args.images, knobs, name, "cpu")
        print(f"\n{run.name}: {ckpt['step']} steps, {ckpt['cpu_s'] / 3600:.2f} CPU-h, "
              f"config {ckpt['config']}\n")
        print(rd.table(rows, knobs))
        print(f"{name}: done", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
