"""Plot a v2 run's learning curve: held-out PSNR and estimated bpp against CPU-hours.

``python scripts/plot_learning_curve.py RUN_DIR OUT.png`` reads ``RUN_DIR/val.csv`` (written
by ``python -m lcodec.train``: step, CPU-hours, knob, bpp, PSNR, coded fraction) and
draws the PSNR at fixed rates (0.25, 0.5, 1 bpp, interpolated in log-bpp between each
validation's six knobs, so a change of the knob's λ range does not break the curve) and the
knob's rate range (rows a resume went back behind are dropped), plus a markdown table on
stdout.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lcodec.train.export import learning_curve  # noqa: E402

FIXED_BPP = (0.25, 0.5, 1.0)


def psnr_at(points: list[tuple[float, float]], bpp: float) -> float | None:
    """PSNR at ``bpp`` from one validation's (bpp, PSNR) points, linear in log-bpp between
    the nearest measured rates (None outside them)."""
    pts = sorted(points)
    for (b0, q0), (b1, q1) in zip(pts, pts[1:], strict=False):
        if b0 <= bpp <= b1 and b1 > b0:
            w = (math.log(bpp) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return q0 + w * (q1 - q0)
    return None


def main(argv: list[str]) -> int:
    run, out = Path(argv[0]), Path(argv[1])
    validations: list[list[dict]] = []  # one validation = its knobs in increasing order
    for row in learning_curve(run):
        if not validations or row["knob"] <= validations[-1][-1]["knob"]:
            validations.append([])
        validations[-1].append(row)
    hours, at = [], {b: [] for b in FIXED_BPP}
    lo_bpp, hi_bpp = [], []
    for rows in validations:
        hours.append(rows[-1]["cpu_hours"])
        points = [(r["bpp"], r["psnr"]) for r in rows]
        for b in FIXED_BPP:
            at[b].append(psnr_at(points, b))
        lo_bpp.append(min(r["bpp"] for r in rows))
        hi_bpp.append(max(r["bpp"] for r in rows))
    fig, (a, c) = plt.subplots(1, 2, figsize=(10, 4))
    for b in FIXED_BPP:
        a.plot(hours, [math.nan if q is None else q for q in at[b]], marker=".",
               label=f"{b} bpp")  # gaps where the knob range did not reach this rate
    c.plot(hours, lo_bpp, label="lowest knob")
    c.plot(hours, hi_bpp, label="highest knob")
    a.set(xlabel="CPU-hours", ylabel="validation PSNR (dB)",
          title="held-out PSNR at a fixed rate")
    c.set(xlabel="CPU-hours", ylabel="estimated bpp", title="rate range of the knob",
          yscale="log")
    for ax in (a, c):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("| CPU-hours | " + " | ".join(f"PSNR @{b} bpp" for b in FIXED_BPP)
          + " | bpp range |\n|---:|" + "---:|" * len(FIXED_BPP) + "---|")
    n = len(validations)
    for i in sorted({0, n // 4, n // 2, 3 * n // 4, n - 2, n - 1} - {-1, -2}):
        cells = " | ".join("–" if at[b][i] is None else f"{at[b][i]:.2f}" for b in FIXED_BPP)
        print(f"| {hours[i]:.2f} | {cells} | {lo_bpp[i]:.3f}–{hi_bpp[i]:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
