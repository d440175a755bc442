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
        dense_growth: channels added by each dense sub-block.
    """

    widths: tuple[int, int, int] = (64, 128, 256)
    chroma_widths: tuple[int, int, int] = (32, 64, 128)
    n_luma: int = 32
    n_chroma: int = 8
    levels: int = 8
    imp_levels: int = 16
    dense_growth: int = 32

    @property
    def stride(self) -> int:
        """Total down-sampling factor of the code maps."""
        return 8

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NetConfig:
        raw = json.loads(text)
        for key in ("widths", "chroma_widths"):
            raw[key] = tuple(raw[key])
        return cls(**raw)


CONFIGS: dict[str, NetConfig] = {
    "paper": NetConfig(),
    "mid": NetConfig(widths=(48, 96, 192), chroma_widths=(24, 48, 96), dense_growth=24),
    "lite": NetConfig(
        widths=(32, 64, 96), chroma_widths=(16, 32, 48), n_chroma=8, dense_growth=16
    ),
}
