"""Speed of the integer TCAEs: encode and decode seconds of one code map tiled from crops."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from lcodec.container import knob_thousandths
from lcodec.entropy.coder import SymbolDecoder
from lcodec.entropy.tcae import TcaeModels
from lcodec.entropy.tcae_net import TcaeNet
from lcodec.train.tcae.codes import load_codes, synthetic_codes
from lcodec.train.tcae.freeze import freeze_models
from lcodec.train.tcae.inputs import configs_for


def random_models(codes: dict, seed: int = 0) -> TcaeModels:
    """Untrained default-size models frozen on ``codes`` (for timing: speed ignores weights)."""
    torch.manual_seed(seed)
    nets = {n: TcaeNet(c).eval() for n, c in configs_for(codes).items()}
    return freeze_models(nets, codes, np.arange(min(4, len(codes["qi"]))))


def mosaic(codes: dict, h: int, w: int, start: int = 0) -> tuple[np.ndarray, ...]:
    """An (h, w) code map tiled from consecutive crops (for realistic mask densities)."""
    cs_h, cs_w = codes["qi"].shape[1:]
    out = []
    for key in ("qi", "luma", "chroma"):
        a = codes[key]
        rows = []
        n = start
        for _ in range(-(-h // cs_h)):
            row = []
            for _ in range(-(-w // cs_w)):
                row.append(a[n % len(a)])
                n += 1
            rows.append(np.concatenate(row, -1))
        out.append(np.concatenate(rows, -2)[..., :h, :w].astype(np.int64))
    return tuple(out)


def bench(weights: str | None, codes_path: str | None, h: int, w: int, repeat: int,
          knob: float | None = 0.0) -> dict:
    """Encode / decode seconds (wall and CPU) of one h×w code map (best of ``repeat``),
    tiled from the crops of rate knob ``knob``."""
    codes = load_codes(Path(codes_path)) if codes_path else synthetic_codes(8, 32)
    models = TcaeModels.load(weights) if weights else random_models(codes)
    sel = np.arange(len(codes["qi"]))
    if knob is not None and "knob" in codes:
        sel = sel[np.isclose(codes["knob"], knob)]
    qi, luma, chroma = mosaic({k: codes[k][sel] for k in ("qi", "luma", "chroma")}, h, w)
    m_y, m_c = models.masks(qi)
    best: dict[str, float] = {}

    cpu: dict[str, float] = {}

    def timed(key: str, fn, *args):
        t, c = time.perf_counter(), time.process_time()
        out = fn(*args)
        best[key] = min(best.get(key, math.inf), time.perf_counter() - t)
        cpu[key] = min(cpu.get(key, math.inf), time.process_time() - c)
        return out

    pay: dict[str, bytes] = {}
    kt = knob_thousandths(knob or 0.0)
    b = models.buckets(kt)
    for _ in range(repeat):
        pay = timed("encode_all", models.encode, qi, luma, chroma, kt)
        timed("decode_importance", models.importance.decode,
              SymbolDecoder(pay["importance"]), np.ones((1, h, w), bool), b["importance"])
        timed("decode_luma", models.luma.decode, SymbolDecoder(pay["luma"]), m_y, b["luma"])
        timed("decode_chroma", models.chroma.decode, SymbolDecoder(pay["chroma"]), m_c,
              b["chroma"])
    for d in (best, cpu):
        d["decode_importance_plus_luma"] = d["decode_importance"] + d["decode_luma"]
    sizes = {k: len(v) for k, v in pay.items()}
    return {"h": h, "w": w, "luma_density": float(m_y.mean()), "luma_symbols": int(m_y.sum()),
            "bytes": sizes, "wall_seconds": {k: round(v, 3) for k, v in best.items()},
            "cpu_seconds": {k: round(v, 3) for k, v in cpu.items()}}
