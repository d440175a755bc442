"""The syntheses a `.lic` file can name, behind one interface, found by their id.

A synthesis computes a file's pixels from its decoded codes (numpy arrays, one
:class:`CodeWindow` at a time). Each registers one :class:`Synthesiser` under its
:class:`~lcodec.container.Synthesis` id with :func:`register_synthesis`, in its own module,
which :data:`MODULES` names: :func:`synthesis_for` imports only the module of the one a file
names (a decoder of EXACT_INT_V2 files never loads torch). Adding a synthesis: a value in
``Synthesis`` (and its row in the container's format rules), one module with its class and
registration, and its row in :data:`MODULES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from lcodec.container import Synthesis
from lcodec.errors import LicError

if TYPE_CHECKING:
    from lcodec.models import LoadedModel
    from lcodec.nets.codes import Encoded


@dataclass(frozen=True)
class CodeWindow:
    """The symbols of one window of an image: qi (h, w), luma (n_luma, h, w) and chroma
    (n_chroma, h, w) integer level indices (numpy), and the rate knob they were made at."""

    qi: np.ndarray
    luma: np.ndarray
    chroma: np.ndarray
    knob: float


class Synthesiser(Protocol):
    """What the codec asks of a synthesis. ``model`` is a loaded model; the integer
    decoders a synthesis builds from its float weights are kept with it
    (:meth:`~lcodec.models.LoadedModel.cached`)."""

    exact: bool  # the same pixels on every machine: what an "exact" request may choose

    def available(self, model: LoadedModel) -> bool:
        """Whether files naming this synthesis decode with ``model``."""
        ...

    def encodes(self, model: LoadedModel) -> bool:
        """Whether new files of ``model`` may name this synthesis."""
        ...

    def window(self, stride: int) -> tuple[int, int]:
        """(window core, halo) in code positions for a network of total stride ``stride``;
        refuses a halo below the synthesis's reach where its pixels are exact."""
        ...

    def check(self, model: LoadedModel, grids: bytes) -> Any:
        """Refuses (:class:`~lcodec.errors.LicError`) a file this synthesis cannot decode
        with ``model``, before its symbols are entropy-decoded; returns what :meth:`pixels`
        needs from the header's ``grids`` (the synthesis's parsed state)."""
        ...

    def pixels(self, model: LoadedModel, state: Any, codes: CodeWindow, gray: bool
               ) -> np.ndarray:
        """The pixels of one window's codes: (h, w, 3) uint8 RGB (gray: Y replicated).
        ``state``: what :meth:`check` returned."""
        ...

    def grids_size(self, model: LoadedModel) -> int:
        """Bytes of the header's synthesis grids in this synthesis's files (0: none)."""
        ...

    def grids(self, model: LoadedModel, windows: Iterable[Encoded]) -> bytes:
        """The synthesis grids of an image's codes, given in the float decoder's windows
        (``b""`` where :meth:`grids_size` is 0)."""
        ...


SYNTHESES: dict[Synthesis, Synthesiser] = {}
MODULES = {  # the module that registers each synthesis
    Synthesis.FLOAT: "lcodec.synthesis.float_synthesis",
    Synthesis.EXACT_INT_V1: "lcodec.synthesis.exact_int_v1",
    Synthesis.EXACT_INT_V2: "lcodec.synthesis.exact_int_v2",
}
T = TypeVar("T")


def register_synthesis(synthesis: Synthesis) -> Callable[[type[T]], type[T]]:
    """Class decorator: an instance of the class is the synthesiser of ``synthesis``."""

    def wrap(cls: type[T]) -> type[T]:
        SYNTHESES[synthesis] = cls()
        return cls

    return wrap


def synthesis_for(synthesis: Synthesis) -> Synthesiser:
    """The synthesiser of the id a file names (its module imported on first use)."""
    if synthesis not in SYNTHESES and synthesis in MODULES:
        importlib.import_module(MODULES[synthesis])
    found = SYNTHESES.get(synthesis)
    if found is None:
        raise LicError(f"synthesis {getattr(synthesis, 'name', synthesis)} is not supported")
    return found


def all_syntheses() -> dict[Synthesis, Synthesiser]:
    """Every synthesis, each module imported (for an encoder's choice)."""
    for synthesis in MODULES:
        synthesis_for(synthesis)
    return SYNTHESES
