"""Plot a v2 run's learning curve: held-out PSNR and estimated bpp against CPU-hours.

``python scripts/plot_learning_curve.py RUN_DIR OUT.png`` reads ``RUN_DIR/val.csv`` (written
by ``python -m lcodec.train.rdloop``: step, CPU-hours, knob, bpp, PSNR, coded fraction) and
draws one line per rate knob (rows a resume went back behind are dropped), plus a markdown
table of the last validation on stdout.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lcodec.train.export import learning_curve  # noqa: E402


def main(argv: list[str]) -> int:
    run, out = Path(argv[0]), Path(argv[1])
    by_knob: dict[float, list[tuple[float, float, float]]] = defaultdict(list)
    for row in learning_curve(run):
        by_knob[row["knob"]].append((row["cpu_hours"], row["psnr"], row["bpp"]))
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for knob, rows in sorted(by_knob.items()):
        hours = [r[0] for r in rows]
        a.plot(hours, [r[1] for r in rows], label=f"knob {knob:+.1f}")
        b.plot(hours, [r[2] for r in rows], label=f"knob {knob:+.1f}")
    a.set(xlabel="CPU-hours", ylabel="validation PSNR (dB)", title="held-out PSNR")
    b.set(xlabel="CPU-hours", ylabel="estimated bpp", title="held-out rate", yscale="log")
    a.grid(alpha=0.3)
    b.grid(alpha=0.3)
    a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("| knob | CPU-hours | bpp (estimate) | PSNR (dB) |\n|---:|---:|---:|---:|")
    for knob, rows in sorted(by_knob.items()):
        h, p, r = rows[-1]
        print(f"| {knob:+.1f} | {h:.2f} | {r:.3f} | {p:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
