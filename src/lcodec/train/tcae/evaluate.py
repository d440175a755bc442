"""Code lengths of the TCAEs on held-out crops: the float models (training's validation), the
frozen integer models and, as the baseline to beat, a model's STATIC_CONTEXT_V1 tables."""

from __future__ import annotations

import numpy as np
import torch

from lcodec.codemask import code_mask_np
from lcodec.container import knob_thousandths
from lcodec.entropy.tcae import TcaeModels
from lcodec.entropy.tcae_net import TcaeNet, code_length_bits
from lcodec.train.tcae.codes import pixels_per_position
from lcodec.train.tcae.inputs import NAMES, batch_inputs


def evaluate_float(nets: dict[str, TcaeNet], codes: dict, idx: np.ndarray, cfgs, device,
              batch: int) -> dict[str, float]:
    """Bits per symbol per model and total bits per pixel on crops ``idx`` (float models)."""
    levels = int(codes["levels"])
    bits = dict.fromkeys(NAMES, 0.0)
    count = dict.fromkeys(NAMES, 0.0)
    pixels = 0
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            sel = idx[s : s + batch]
            qi, luma, chroma = (torch.from_numpy(codes[k][sel]).to(device)
                                for k in ("qi", "luma", "chroma"))
            knob = torch.from_numpy(codes["knob"][sel])
            pixels += qi.numel() * pixels_per_position(codes)
            for name, (cls, act, side, kb) in batch_inputs(qi, luma, chroma, levels, cfgs,
                                                           knob).items():
                nets[name].eval()
                b, c = code_length_bits(nets[name], cls, act, side, kb)
                bits[name] += b.item()
                count[name] += c.item()
    out = {f"bits_{n}": bits[n] / max(count[n], 1) for n in NAMES}
    out["bpp"] = sum(bits.values()) / max(pixels, 1)
    return out


def evaluate_frozen(models: TcaeModels, codes: dict, idx: np.ndarray) -> dict[str, float]:
    """Integer-model bits per symbol and bits per pixel on crops ``idx``."""
    bits = dict.fromkeys(NAMES, 0.0)
    count = dict.fromkeys(NAMES, 0)
    pixels = 0
    for i in idx:
        qi, luma, chroma = (codes[k][i].astype(np.int64) for k in ("qi", "luma", "chroma"))
        r = models.code_length_bits(qi, luma, chroma, knob_thousandths(float(codes["knob"][i])))
        m_y, m_c = models.masks(qi)
        for n, c in (("importance", qi.size), ("luma", int(m_y.sum())),
                     ("chroma", int(m_c.sum()))):
            bits[n] += r[n]
            count[n] += c
        pixels += qi.size * pixels_per_position(codes)
    out = {f"bits_{n}": bits[n] / max(count[n], 1) for n in NAMES}
    out["bpp"] = sum(bits.values()) / max(pixels, 1)
    return out


def evaluate_static(tables: dict[str, np.ndarray], codes: dict, idx: np.ndarray
                    ) -> dict[str, float]:
    """The same figures as :func:`evaluate_frozen` for a model's STATIC_CONTEXT_V1 tables
    (the method a TCAE has to beat), from the tables' own Σ −log2 p."""
    from lcodec.entropy import static_context as sc

    levels = int(codes["levels"])
    bits = dict.fromkeys(NAMES, 0.0)
    count = dict.fromkeys(NAMES, 0)
    pixels = 0
    for i in idx:
        qi, luma, chroma = (codes[k][i].astype(np.int64) for k in ("qi", "luma", "chroma"))
        bits["importance"] += sc.importance_code_length_bits(qi, tables["entropy.qi"])
        count["importance"] += qi.size
        for n, sym in (("luma", luma), ("chroma", chroma)):
            m = code_mask_np(qi, sym.shape[0], levels)
            bits[n] += sc.code_length_bits(sym, m, tables[f"entropy.{n}"])
            count[n] += int(m.sum())
        pixels += qi.size * pixels_per_position(codes)
    out = {f"bits_{n}": bits[n] / max(count[n], 1) for n in NAMES}
    out["bpp"] = sum(bits.values()) / max(pixels, 1)
    return out
