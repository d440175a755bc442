"""Syntheses: how a file's pixels are computed from its codes, one module per id a file names.

``FLOAT`` (:mod:`~lcodec.synthesis.float_synthesis`): the float decoder networks.
``EXACT_INT_V1`` (:mod:`~lcodec.synthesis.exact_int_v1`, format 1.1) and ``EXACT_INT_V2``
(:mod:`~lcodec.synthesis.exact_int_v2`, format 1.2): integer decoders built from network v2's
float weights, the same pixels on every machine. The codec asks :func:`synthesis_for` for
the one a file names (which imports that one's module only) and :func:`for_encoding` for the
one a new file names, never a member module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lcodec.container import Synthesis
from lcodec.errors import LcodecError
from lcodec.settings import SYNTHESIS_CHOICES
from lcodec.synthesis.registry import CodeWindow, Synthesiser, all_syntheses, synthesis_for

if TYPE_CHECKING:
    from lcodec.models import LoadedModel

__all__ = ["ESTIMATE", "CodeWindow", "Synthesiser", "for_encoding", "synthesis_for"]

ESTIMATE = Synthesis.FLOAT  # what an encoder decodes with to weigh choices: fast, close to all


def for_encoding(model: LoadedModel, request: str = "auto") -> Synthesis:
    """The synthesis new files of ``model`` name. "exact": the newest exact synthesis the
    model encodes with (network v2: EXACT_INT_V2 where its card opts in, else EXACT_INT_V1);
    "auto": the same, else FLOAT; "float": FLOAT."""
    if request not in SYNTHESIS_CHOICES:
        raise LcodecError(f"unknown synthesis {request!r}; use auto, exact or float")
    if request != "float":
        exact = [sid for sid, s in all_syntheses().items() if s.exact and s.encodes(model)]
        if exact:
            return max(exact)
        if request == "exact":
            raise LcodecError(f"model {model.info.name} has no exact synthesis (only network "
                              "v2 models have one); use --synthesis float")
    return Synthesis.FLOAT
