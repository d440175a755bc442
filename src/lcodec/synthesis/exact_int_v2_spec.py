"""The grids of synthesis EXACT_INT_V2 as a file carries them (its SYNTHESIS_GRIDS): which
activation tensors there are, which the encoder holds wide, and their validation. Shared by
the decoder (:mod:`~lcodec.synthesis.exact_int_v2`) and the encoder's calibration
(:mod:`~lcodec.synthesis.exact_int_v2_grids`)."""

from __future__ import annotations

from dataclasses import dataclass

from lcodec.errors import LicError
from lcodec.synthesis.exact_int_v2_layers import Grid, norm_frac

# The fuse convs' two inputs share a grid (and so a width): the luma features at 1/8, 1/4 and
# 1/2 are wide, so the chroma features beside them are too.
SHARED = (("c.x8", "y.f8"), ("c.x4", "y.f4"), ("c.x2", "y.f2"))
WIDE = frozenset({"y.f8", "y.f4", "y.in2", "y.f2", "c.fuse2", "c.x8", "c.x4", "c.x2"})
def tensor_names(refine: int) -> tuple[str, ...]:
    """The activation tensors a grid spec names, in its byte order."""
    luma = ["y.in8", "y.norm8", "y.f8", "y.in4", "y.norm4", "y.f4", "y.in2", "y.norm2", "y.f2"]
    luma += [f"y.r{i}" for i in range(refine)]
    chroma = ["c.in8", "c.norm8", "c.x8", "c.fuse8", "c.in4", "c.norm4", "c.x4", "c.fuse4",
              "c.in2", "c.norm2", "c.x2", "c.fuse2"]
    return tuple(luma + chroma)


@dataclass(frozen=True)
class GridSpec:
    """The grids of one file: one byte per tensor of :func:`tensor_names` (a :class:`Grid`:
    bit 7 says wide; a normaliser's byte has it clear, its grid is 16 bits). The fuse convs'
    two inputs (:data:`SHARED`) have one ``frac``."""

    codes: bytes

    @classmethod
    def parse(cls, payload: bytes, refine: int) -> GridSpec:
        """Validate grid bytes (as a file carries them) for a network with ``refine``
        refinement blocks."""
        names = tensor_names(refine)
        if len(payload) != len(names):
            raise LicError(f"invalid synthesis grids: {len(payload)} bytes, expected "
                           f"{len(names)} for this model")
        grids = {n: Grid.decode(b) for n, b in zip(names, payload, strict=True)}
        for n, g in grids.items():
            if g.wide and ".norm" in n:
                raise LicError(f"invalid synthesis grids: the normaliser {n} has the wide bit")
        for c, y in SHARED:
            if grids[c].frac != grids[y].frac:
                raise LicError(f"invalid synthesis grids: {c} and {y} must share a grid")
        return cls(bytes(payload))

    def grid(self, names: tuple[str, ...], name: str) -> Grid:
        return Grid.decode(self.codes[names.index(name)])

    @classmethod
    def from_largest(cls, names: tuple[str, ...], largest: dict[str, float],
                     wide: frozenset[str] = WIDE) -> GridSpec:
        """The finest grids that hold 1.5× the largest values. A fuse conv's two inputs get
        one grid, the coarser of the two (with unequal grids one part's weights would lose
        the difference)."""
        grids = {n: Grid(norm_frac(largest[n])) if ".norm" in n
                 else Grid.fit(largest[n], n in wide) for n in names}
        for c, y in SHARED:
            frac = min(grids[c].frac, grids[y].frac)
            grids[c], grids[y] = Grid(frac, c in wide), Grid(frac, y in wide)
        return cls(bytes(grids[n].code() for n in names))
