"""A `.lic` file being built: its header and sections, sized without packing."""

from __future__ import annotations

from dataclasses import dataclass, replace

from lcodec import container
from lcodec.container import LicFile, SectionType


@dataclass(frozen=True)
class Draft:
    """A candidate file of the encoder. ``len()`` is the size of the packed file, computed
    from the parts; rate control compares drafts, and only the chosen one is packed.

    Until :meth:`ImageAnalysis.final` gives it its synthesis grids, a draft carries
    placeholder grids of the right length (so its size is exact)."""

    lic: LicFile
    final: bool = False  # its synthesis grids are the real ones

    def __len__(self) -> int:
        return container.packed_size(self.lic)

    @property
    def knob(self) -> float:
        return self.lic.header.rate_knob

    def section(self, kind: SectionType) -> bytes | None:
        return self.lic.sections.get(kind)

    def with_section(self, kind: SectionType, payload: bytes | None) -> Draft:
        """This draft with ``payload`` as its ``kind`` section (None: without one)."""
        sections = {k: v for k, v in self.lic.sections.items() if k != kind}
        if payload is not None:
            sections[kind] = payload
        return replace(self, lic=replace(self.lic, sections=sections))

    def with_grids(self, grids: bytes) -> Draft:
        """This draft with its real synthesis grids (the same length as the placeholder)."""
        if len(grids) != len(self.lic.header.synthesis_grids):
            raise ValueError("synthesis grids of another length than the draft's placeholder")
        header = replace(self.lic.header, synthesis_grids=grids)
        return replace(self, lic=replace(self.lic, header=header), final=True)
