"""The entropy methods a `.lic` file can name, behind one interface.

``STATIC_CONTEXT_V1``: fixed context tables shipped inside the autoencoder weights.
``INCLINED_TCAE_V1``: the inclined trimmed-convolution models of ``models/entropy/``, whose
8-byte id the header carries. Both code the sections IMPORTANCE, LUMA and (for colour images)
CHROMA from (qi, luma, chroma) arrays as in :class:`lcodec.nets.cwic.Encoded`, batch axis off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lcodec.container import EntropyMethod, SectionType
from lcodec.entropy import static_context as sc
from lcodec.errors import LicError
from lcodec.quant import code_mask_np

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


class EntropyCoder(Protocol):
    method: EntropyMethod
    entropy_id: bytes

    def encode(self, qi: np.ndarray, luma: np.ndarray,
               chroma: np.ndarray | None) -> dict[SectionType, bytes]: ...

    def decode(self, sections: dict[SectionType, bytes], h: int, w: int,
               gray: bool) -> Arrays: ...


@dataclass
class StaticContextCoder:
    tables: dict[str, np.ndarray]
    n_luma: int
    n_chroma: int
    imp_levels: int
    method: EntropyMethod = EntropyMethod.STATIC_CONTEXT_V1
    entropy_id: bytes = bytes(8)

    def encode(self, qi, luma, chroma) -> dict[SectionType, bytes]:
        t = self.tables
        out = {
            SectionType.IMPORTANCE: sc.encode_importance(qi, t["entropy.qi"]),
            SectionType.LUMA: sc.encode_codes(luma, code_mask_np(qi, self.n_luma,
                                                                 self.imp_levels),
                                              t["entropy.luma"]),
        }
        if chroma is not None:
            out[SectionType.CHROMA] = sc.encode_codes(
                chroma, code_mask_np(qi, self.n_chroma, self.imp_levels), t["entropy.chroma"])
        return out

    def decode(self, sections, h, w, gray) -> Arrays:
        t = self.tables
        qi = sc.decode_importance(sections[SectionType.IMPORTANCE], (h, w), t["entropy.qi"])
        luma = sc.decode_codes(sections[SectionType.LUMA],
                               code_mask_np(qi, self.n_luma, self.imp_levels), t["entropy.luma"])
        if gray:
            chroma = np.zeros((self.n_chroma, h, w), dtype=np.uint8)
        else:
            chroma = sc.decode_codes(sections[SectionType.CHROMA],
                                     code_mask_np(qi, self.n_chroma, self.imp_levels),
                                     t["entropy.chroma"])
        return qi, luma, chroma


class TcaeCoder:
    """Adapter from :class:`lcodec.entropy.tcae.TcaeModels` to section payloads."""

    method = EntropyMethod.INCLINED_TCAE_V1
    _NAMES = {SectionType.IMPORTANCE: "importance", SectionType.LUMA: "luma",
              SectionType.CHROMA: "chroma"}

    def __init__(self, models) -> None:
        self.models = models
        self.entropy_id: bytes = models.entropy_id

    def encode(self, qi, luma, chroma) -> dict[SectionType, bytes]:
        payloads = self.models.encode(qi, luma, chroma)
        return {t: payloads[n] for t, n in self._NAMES.items() if n in payloads}

    def decode(self, sections, h, w, gray) -> Arrays:
        payloads = {n: sections[t] for t, n in self._NAMES.items()
                    if t in sections and not (gray and t == SectionType.CHROMA)}
        try:
            return self.models.decode(payloads, h, w)
        except ValueError as exc:
            raise LicError(f"malformed TCAE-coded sections ({exc})") from None
