"""The shape of one inclined TCAE and the inputs it reads besides its symbols.

What a model is (:class:`TcaeConfig`) and the classes it derives from what the decoder already
knows: the side classes from the code mask, the luma activity classes and the rate-knob bucket.
Specification: docs/format.md, "Section payloads (entropy method INCLINED_TCAE_V1)".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class TcaeConfig:
    """Shape of one inclined TCAE.

    Args:
        channels: n, code channels of the cuboid (1 for the importance map).
        classes: symbol alphabet (T = 8 levels, or L = 16 importance levels).
        offset: input class of a coded symbol s is s + offset (1 for codes: class 0 is "not
            coded"; 0 for the importance map, where every position is coded).
        groups: g, feature groups per code channel in the hidden layers.
        k_before: taps reach channels down to k - k_before.
        k_after: taps reach channels up to k + k_after (only spatially earlier ones).
        kernel: spatial kernel size (5 in the paper).
        blocks: residual blocks (3 in the paper).
        side_classes: S classes of the side input clip(K(i', j') - k, 0, S - 1); 0 = none.
        side_kernel: spatial window of the side input.
        embed: 0: the first layer reads the one-hot input classes (paper); d > 0: it reads a
            learned d-dimensional embedding of (input channel k', class), so a level means
            something different in each code channel; frozen, both are the same table lookup.
        knob_buckets: B > 0: a first-layer bias per rate-knob bucket (:func:`knob_bucket`).
        luma_classes: Y > 0 (chroma): the side class also carries the co-located luma codes'
            activity class (:func:`luma_activity`), so the side input has S·Y classes.
    """

    channels: int
    classes: int
    offset: int
    groups: int
    k_before: int
    k_after: int
    kernel: int = 5
    blocks: int = 3
    side_classes: int = 0
    side_kernel: int = 3
    embed: int = 0
    knob_buckets: int = 0
    luma_classes: int = 0

    @property
    def in_classes(self) -> int:
        return self.classes + self.offset

    @property
    def side_count(self) -> int:
        """Classes of the side input: S, or S·Y with luma classes."""
        return self.side_classes * max(1, self.luma_classes)

    @property
    def table_channels(self) -> int:
        """First-layer tables per input channel k' (embedding) or one shared table."""
        return self.channels if self.embed else 1

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("knob_buckets", "luma_classes"):  # older configs keep their exact text
            if not d[key]:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, raw: dict) -> TcaeConfig:
        return cls(**{k: int(v) for k, v in raw.items()})


def knob_bucket(buckets: int, knob_thousandths: int) -> int:
    """The knob bucket of a header knob (thousandths): nearest of ``buckets`` evenly spaced
    knobs over [-1, 1], halves rounded up, in integer arithmetic (0 without buckets)."""
    if buckets <= 1:
        return 0
    k = min(max(int(knob_thousandths), -1000), 1000)
    return ((k + 1000) * (buckets - 1) + 1000) // 2000


def side_classes(active: np.ndarray, classes: int) -> np.ndarray:
    """(n, h, w) side class clip(K(i, j) - k, 0, classes - 1), K = coded channels at (i, j)."""
    n = active.shape[0]
    count = active.sum(0, dtype=np.int64)
    k = np.arange(n, dtype=np.int64).reshape(n, 1, 1)
    return np.clip(count[None] - k, 0, classes - 1)


# luma activity classes: class c holds Σ|level − T/2| over the coded luma channels of a
# position in [LUMA_THRESHOLDS[c − 1], LUMA_THRESHOLDS[c]) (steps of about √2)
LUMA_THRESHOLDS = (1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512)


def luma_activity(luma: np.ndarray, active: np.ndarray, levels: int, classes: int
                  ) -> np.ndarray:
    """(h, w) class in 0..classes−1 of the coded luma codes at each position: how many of
    the first ``classes − 1`` thresholds Σ_k active·|luma − levels // 2| reaches (integers)."""
    act = (np.abs(luma.astype(np.int64) - levels // 2) * active).sum(0)
    t = np.asarray(LUMA_THRESHOLDS[: classes - 1], dtype=np.int64)
    return (act[..., None] >= t).sum(-1)


def combined_side(active: np.ndarray, cfg: TcaeConfig, luma_class: np.ndarray | None
                  ) -> np.ndarray:
    """The side classes of a cuboid: :func:`side_classes`, times Y plus the luma class of
    the position when the config has luma classes."""
    side = side_classes(active, cfg.side_classes)
    if not cfg.luma_classes:
        return side
    if luma_class is None:
        raise ValueError("this TCAE needs the luma classes of its positions")
    return side * cfg.luma_classes + luma_class[None]
