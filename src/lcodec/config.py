"""Network configurations: widths and code sizes, stored with the weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class NetConfig:
    """Shape of a CWIC network (seed 004 §3.1, seeds 000/001 for the chroma branch).

    Args:
        widths: channels of the three stride-2 stages of the luma trunk (paper: 64/128/256).
        chroma_widths: channels of the three stages of the chroma encoder/decoder.
        n_luma: luma code maps n (paper: 32).
        n_chroma: chroma code maps; chroma channel k is kept where k < n_chroma·QI/L.
        levels: quantization levels T per code channel (paper: 8).
        imp_levels: importance levels L (paper: 16).
        dense_growth: channels added by each dense sub-block (``cwic`` only).
        stride: total down-sampling factor of the code maps (``cwic``: 8, ``cwic2``: 16).
        base_level: lowest importance level a ``cwic2`` map takes, so every position keeps
            ``n·base_level/L`` maps (the base layer); 0 for ``cwic``.
        rate_anchors: ``cwic2`` rate knobs with their own learned gains, spread evenly over
            [-1, 1]; knobs in between interpolate them (0 for ``cwic``).
        lam_range: the λ (weight of 255²·MSE against bits per pixel) trained at knob −1 and +1
            (``cwic2``; geometric in between).
        refine: residual blocks (3×3 conv, ReLU, 3×3 conv) on the ``cwic2`` luma decoder's
            1/2-resolution features, where the detail of high rates is made (0: none).
    """

    widths: tuple[int, int, int] = (64, 128, 256)
    chroma_widths: tuple[int, int, int] = (32, 64, 128)
    n_luma: int = 32
    n_chroma: int = 8
    levels: int = 8
    imp_levels: int = 16
    dense_growth: int = 32
    stride: int = 8
    base_level: int = 0
    rate_anchors: int = 0
    lam_range: tuple[float, float] = (0.0, 0.0)
    refine: int = 0

    def to_json(self) -> str:
        raw = asdict(self)
        if not raw["refine"]:  # configs from before the field keep their exact JSON
            del raw["refine"]
        return json.dumps(raw, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NetConfig:
        raw = json.loads(text)
        for key in ("widths", "chroma_widths", "lam_range"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)


CONFIGS: dict[str, NetConfig] = {
    "paper": NetConfig(),
    "mid": NetConfig(widths=(48, 96, 192), chroma_widths=(24, 48, 96), dense_growth=24),
    "lite": NetConfig(
        widths=(32, 64, 96), chroma_widths=(16, 32, 48), n_chroma=8, dense_growth=16
    ),
    # Network v2 (lcodec.nets.cwic2): GDN transforms at stride 16, variable rate by gains.
    "v2": NetConfig(
        widths=(64, 128, 128), chroma_widths=(32, 64, 64), n_luma=96, n_chroma=32, levels=16,
        imp_levels=16, dense_growth=0, stride=16, base_level=2, rate_anchors=6,
        lam_range=(0.0012, 0.09),
    ),
    # v2 with two refinement blocks at 1/2 resolution in the luma decoder (+18 kMAC/px each).
    "v2r": NetConfig(
        widths=(64, 128, 128), chroma_widths=(32, 64, 64), n_luma=96, n_chroma=32, levels=16,
        imp_levels=16, dense_growth=0, stride=16, base_level=2, rate_anchors=6,
        lam_range=(0.0012, 0.09), refine=2,
    ),
}
