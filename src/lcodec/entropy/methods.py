"""The entropy methods a `.lic` file can name, behind one interface, found by their id.

``STATIC_CONTEXT_V1``: fixed context tables shipped inside the autoencoder weights.
``INCLINED_TCAE_V1``: the inclined trimmed-convolution models of ``models/entropy/``, whose
8-byte id the header carries. Both code the sections IMPORTANCE, LUMA and (for colour images)
CHROMA from (qi, luma, chroma) arrays as in :class:`lcodec.nets.codes.Encoded`, batch axis off.

A method registers a factory under its :class:`~lcodec.container.EntropyMethod` with
:func:`register_method`; :func:`coder_for` builds the coder a file names (or a new file
uses) from a loaded model. Adding a method: a value in ``EntropyMethod``, one module with a
coder class and its registration, imported by ``lcodec/entropy/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from lcodec.codemask import code_mask_np
from lcodec.container import EntropyMethod, SectionType, knob_thousandths
from lcodec.entropy import static_context as sc
from lcodec.errors import LcodecError, LicError

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]
Factory = Callable[[Any, "bytes | None"], "EntropyCoder"]
"""(loaded model, entropy id from a file's header or None for a new file) -> coder. The
model is a :class:`lcodec.models.LoadedModel` (``config``, ``tables``, ``tcae``,
``entropy_model(id)``); methods only read it."""

METHODS: dict[EntropyMethod, Factory] = {}


def register_method(method: EntropyMethod) -> Callable[[Factory], Factory]:
    """Decorator: the factory of the coder for ``method``."""

    def wrap(factory: Factory) -> Factory:
        METHODS[method] = factory
        return factory

    return wrap


def coder_for(method: EntropyMethod, model: Any, entropy_id: bytes | None = None
              ) -> EntropyCoder:
    """The coder of ``method`` for ``model``: for decoding, ``entropy_id`` is the header's."""
    factory = METHODS.get(method)
    if factory is None:
        raise LicError(f"entropy method {method.name} is not supported")
    return factory(model, entropy_id)


class EntropyCoder(Protocol):
    """Codes (qi, luma, chroma) symbol arrays to the sections it owns, and back. ``knob``:
    the file's rate knob as its header stores it (a method may condition on it)."""

    method: EntropyMethod
    entropy_id: bytes
    cheap: bool  # codes fast enough to steer rate control by real sizes

    def encode(self, qi: np.ndarray, luma: np.ndarray,
               chroma: np.ndarray | None, knob: float) -> dict[SectionType, bytes]: ...

    def decode(self, sections: dict[SectionType, bytes], h: int, w: int,
               gray: bool, knob: float) -> Arrays: ...


@dataclass
class StaticContextCoder:
    tables: dict[str, np.ndarray]
    n_luma: int
    n_chroma: int
    imp_levels: int
    method: EntropyMethod = EntropyMethod.STATIC_CONTEXT_V1
    entropy_id: bytes = bytes(8)
    cheap: bool = True

    def encode(self, qi, luma, chroma, knob: float = 0.0) -> dict[SectionType, bytes]:
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

    def decode(self, sections, h, w, gray, knob: float = 0.0) -> Arrays:
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
    cheap = False
    _NAMES = {SectionType.IMPORTANCE: "importance", SectionType.LUMA: "luma",
              SectionType.CHROMA: "chroma"}

    def __init__(self, models) -> None:
        self.models = models
        self.entropy_id: bytes = models.entropy_id

    def encode(self, qi, luma, chroma, knob: float = 0.0) -> dict[SectionType, bytes]:
        payloads = self.models.encode(qi, luma, chroma, knob_thousandths(knob))
        return {t: payloads[n] for t, n in self._NAMES.items() if n in payloads}

    def decode(self, sections, h, w, gray, knob: float = 0.0) -> Arrays:
        payloads = {n: sections[t] for t, n in self._NAMES.items()
                    if t in sections and not (gray and t == SectionType.CHROMA)}
        try:
            return self.models.decode(payloads, h, w, knob_thousandths(knob))
        except ValueError as exc:
            raise LicError(f"malformed TCAE-coded sections ({exc})") from None


@register_method(EntropyMethod.STATIC_CONTEXT_V1)
def _static(model: Any, entropy_id: bytes | None = None) -> StaticContextCoder:
    cfg = model.config
    return StaticContextCoder(model.tables, cfg.n_luma, cfg.n_chroma, cfg.imp_levels)


@register_method(EntropyMethod.INCLINED_TCAE_V1)
def _tcae(model: Any, entropy_id: bytes | None = None) -> TcaeCoder:
    if entropy_id is not None:  # a file names its entropy model
        return TcaeCoder(model.entropy_model(entropy_id))
    if model.tcae is None:
        raise LcodecError(f"no inclined-TCAE entropy model is installed for {model.info.name}")
    return TcaeCoder(model.tcae)
