"""Entropy method INCLINED_TCAE_V1: inclined trimmed-convolution context models, exact integers.

Seed 004 §4 (eqs. 21-27). Three frozen integer models give the probabilities of the three
sections: the importance map ``qi`` (h, w), the luma codes (n_y, h, w) and the chroma codes
(n_c, h, w); each section is one range-coded stream. The symbols, their coding order, the
network and its exact integer inference are specified in docs/format.md, "Section payloads
(entropy method INCLINED_TCAE_V1)". The parts live beside this coder:
:mod:`~lcodec.entropy.tcae_config` (a model's shape and side inputs),
:mod:`~lcodec.entropy.tcae_layout` (coding order), :mod:`~lcodec.entropy.tcae_int` (the
integer network), :mod:`~lcodec.entropy.tcae_store` (the frozen file) and
:mod:`~lcodec.entropy.tcae_net` (the float model used for training).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lcodec.codemask import code_mask_np
from lcodec.entropy import tcae_store
from lcodec.entropy.coder import SymbolDecoder
from lcodec.entropy.tcae_config import LUMA_THRESHOLDS, knob_bucket, luma_activity
from lcodec.entropy.tcae_int import IntTcae
from lcodec.errors import LcodecError


class TcaeModels:
    """The frozen integer models of the three sections: ``importance``, ``luma``, ``chroma``.

    Codes are given and returned as in :class:`lcodec.nets.codes.Encoded` (without the batch
    axis): ``qi`` (h, w) in 0..L-1, luma (n_y, h, w) and chroma (n_c, h, w) level indices in
    0..T-1, 0 where the eq. 4 mask is not set.
    """

    def __init__(self, importance: IntTcae, luma: IntTcae, chroma: IntTcae) -> None:
        if importance.cfg.channels != 1 or importance.cfg.offset != 0:
            raise LcodecError("the importance TCAE must be a one-channel model with offset 0")
        for m in (luma, chroma):
            if m.cfg.offset != 1:
                raise LcodecError("code TCAEs must use offset 1 (o' = level + 1)")
        if importance.cfg.luma_classes or luma.cfg.luma_classes:
            raise LcodecError("only the chroma TCAE can read luma classes")
        y = chroma.cfg.luma_classes
        if y and (not chroma.cfg.side_classes or y > len(LUMA_THRESHOLDS) + 1):
            raise LcodecError("the chroma TCAE's luma classes are malformed")
        self.importance, self.luma, self.chroma = importance, luma, chroma
        self.levels = importance.cfg.classes
        self.entropy_id: bytes | None = None

    @property
    def models(self) -> dict[str, IntTcae]:
        return {"importance": self.importance, "luma": self.luma, "chroma": self.chroma}

    # -- storage --

    def save(self, path: str | Path) -> bytes:
        """Write the safetensors file; returns (and remembers) its 8-byte entropy id."""
        self.entropy_id = tcae_store.save(self.models, path)
        return self.entropy_id

    @classmethod
    def load(cls, path: str | Path) -> TcaeModels:
        models, entropy_id = tcae_store.load(path)
        out = cls(*models)
        out.entropy_id = entropy_id
        return out

    # -- coding --

    def masks(self, qi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (code_mask_np(qi, self.luma.cfg.channels, self.levels),
                code_mask_np(qi, self.chroma.cfg.channels, self.levels))

    def _arrays(self, qi, luma, chroma) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        qi = np.asarray(qi, dtype=np.int64)
        if qi.ndim != 2 or min(qi.shape) < 1:
            raise ValueError(f"qi must be a non-empty (h, w) map, got shape {qi.shape}")
        h, w = qi.shape
        if qi.min() < 0 or qi.max() >= self.levels:
            raise ValueError("qi values out of range")
        out = [qi]
        for name, x, m in (("luma", luma, self.luma), ("chroma", chroma, self.chroma)):
            if x is None and name == "chroma":
                out.append(None)
                continue
            x = np.asarray(x, dtype=np.int64)
            if x.shape != (m.cfg.channels, h, w):
                raise ValueError(f"{name} must have shape {(m.cfg.channels, h, w)}")
            if x.size and (x.min() < 0 or x.max() >= m.cfg.classes):
                raise ValueError(f"{name} level indices out of range")
            out.append(x)
        return out[0], out[1], out[2]

    def _luma_class(self, luma: np.ndarray, m_y: np.ndarray) -> np.ndarray | None:
        """The chroma model's luma classes (None when it has none)."""
        y = self.chroma.cfg.luma_classes
        return luma_activity(luma, m_y, self.luma.cfg.classes, y) if y else None

    def buckets(self, knob: int) -> dict[str, int]:
        """Each model's knob bucket for a header knob (thousandths)."""
        return {n: knob_bucket(m.cfg.knob_buckets, knob) for n, m in self.models.items()}

    def encode(self, qi: np.ndarray, luma: np.ndarray, chroma: np.ndarray | None,
               knob: int = 0) -> dict[str, bytes]:
        """Payloads ``importance``, ``luma`` and (unless ``chroma`` is None) ``chroma``.

        Only positions inside the eq. 4 mask are coded; other values are ignored (decoded as 0).
        ``knob``: the header's rate knob in thousandths (read by models with knob buckets).
        """
        qi, luma, chroma = self._arrays(qi, luma, chroma)
        m_y, m_c = self.masks(qi)
        b = self.buckets(knob)
        out = {"importance": self.importance.encode(qi[None], np.ones((1, *qi.shape), bool),
                                                    b["importance"]),
               "luma": self.luma.encode(luma, m_y, b["luma"])}
        if chroma is not None:
            out["chroma"] = self.chroma.encode(chroma, m_c, b["chroma"],
                                               self._luma_class(luma, m_y))
        return out

    def decode(self, payloads: dict[str, bytes], h: int, w: int, knob: int = 0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(qi (h, w), luma (n_y, h, w), chroma (n_c, h, w)) int64; LicError on bad data.

        Without a ``chroma`` payload (a gray image coded with ``chroma=None``) chroma is zero.
        """
        if h < 1 or w < 1:
            raise ValueError("code maps must be at least 1×1")
        for name in ("importance", "luma"):
            if name not in payloads:
                raise ValueError(f"missing {name} payload")
        b = self.buckets(knob)
        qi = self.importance.decode(SymbolDecoder(payloads["importance"]),
                                    np.ones((1, h, w), bool), b["importance"])[0]
        m_y, m_c = self.masks(qi)
        luma = self.luma.decode(SymbolDecoder(payloads["luma"]), m_y, b["luma"])
        if "chroma" in payloads:
            chroma = self.chroma.decode(SymbolDecoder(payloads["chroma"]), m_c, b["chroma"],
                                        self._luma_class(luma, m_y))
        else:
            chroma = np.zeros(m_c.shape, dtype=np.int64)
        return qi, luma, chroma

    def code_length_bits(self, qi: np.ndarray, luma: np.ndarray, chroma: np.ndarray | None,
                         knob: int = 0) -> dict[str, float]:
        """Σ -log2 p per section with the integer frequencies (the ideal coded size)."""
        qi, luma, chroma = self._arrays(qi, luma, chroma)
        m_y, m_c = self.masks(qi)
        ones = np.ones((1, *qi.shape), bool)
        b = self.buckets(knob)
        return {
            "importance": self.importance.code_length_bits(qi[None], ones, b["importance"]),
            "luma": self.luma.code_length_bits(luma, m_y, b["luma"]),
            "chroma": 0.0 if chroma is None else self.chroma.code_length_bits(
                chroma, m_c, b["chroma"], self._luma_class(luma, m_y)),
        }
