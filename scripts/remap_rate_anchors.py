"""Move a v2 checkpoint's rate anchors to a new λ range, keeping what each λ has learned.

The knob-indexed tables of ``lcodec.nets.cwic2`` (gains, importance offsets, priors) sit at
``rate_anchors`` knobs spread over [-1, 1]; training ties knob k to λ(k), log-linear between
``lam_range``. To widen or shift that range without starting the tables afresh, each new
anchor takes the old tables at the old knob with the same λ: interpolated inside the old
range, linearly extrapolated outside it for the gains and importance offsets (clamped for the
priors). Weights, optimizer state, steps and time are kept, so the run continues.

    python scripts/remap_rate_anchors.py OLD.ckpt NEW.ckpt --lam-range 0.00015 0.07
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

EXTRAPOLATED = ("log_gain_enc", "log_gain_dec", "imp_offset")
CLAMPED = ("prior_codes", "prior_qi")


def resample(table: torch.Tensor, s: torch.Tensor, extrapolate: bool) -> torch.Tensor:
    """Rows of ``table`` (anchors, ...) at old knob positions ``s`` (in anchor units)."""
    k = table.shape[0]
    if not extrapolate:
        s = s.clamp(0, k - 1)
    lo = s.floor().clamp(0, k - 2).long()
    w = (s - lo).view(-1, *([1] * (table.dim() - 1)))
    return (1 - w) * table[lo] + w * table[lo + 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--lam-range", type=float, nargs=2, required=True)
    args = ap.parse_args()
    st = torch.load(args.old, map_location="cpu", weights_only=False)
    old_lo, old_hi = st["net_config"]["lam_range"]
    new_lo, new_hi = args.lam_range
    k = st["model"]["imp_offset"].shape[0]
    lam = new_lo * (new_hi / new_lo) ** (torch.arange(k) / (k - 1))
    knob = 2 * torch.log(lam / old_lo) / math.log(old_hi / old_lo) - 1
    s = (knob + 1) / 2 * (k - 1)
    print("new anchors: λ", [f"{v:.5f}" for v in lam.tolist()],
          "at old knobs", [f"{v:.2f}" for v in knob.tolist()])
    for name in EXTRAPOLATED + CLAMPED:
        st["model"][name] = resample(st["model"][name], s, name in EXTRAPOLATED)
    st["net_config"]["lam_range"] = [new_lo, new_hi]
    st["config"]["lam_range"] = [new_lo, new_hi]
    st["phase"] = "constant"
    args.new.parent.mkdir(parents=True, exist_ok=True)
    torch.save(st, args.new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
