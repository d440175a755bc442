"""The ``.lic`` container: the only module that knows its byte layout (spec: docs/format.md).

A file is a fixed 40-byte header (protected by a CRC32) followed by ``S`` framed sections,
each carrying its own CRC32. Everything is little-endian. :func:`unpack` and
:func:`read_header` validate every field and raise :class:`~lcodec.errors.LicError` with a
one-sentence message on any malformed input; :func:`pack` raises ``ValueError`` on
programmer errors (it is only called by lcodec's own encoder).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import IntEnum

from lcodec.errors import LicError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FIRST_VERSION",
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "HEADER_SIZE",
    "MAGIC",
    "SECTION_HEADER_SIZE",
    "ColourMode",
    "EntropyMethod",
    "Header",
    "LicFile",
    "SectionType",
    "Synthesis",
    "Version",
    "looks_like_lic",
    "pack",
    "packed_size",
    "read_header",
    "unpack",
]

MAGIC = b"\x89LIC"
FORMAT_MAJOR = 1
FORMAT_MINOR = 3  # the newest version in FIRST_VERSION
DEFAULT_MAX_PIXELS = 100_000_000  # decompression-bomb limit (a 48 MP photo fits twice)
ID_SIZE = 8  # model id and entropy model id: first 8 bytes of a SHA-256
SUPPORTED_BIT_DEPTH = 8

# magic, major, minor, width, height, colour mode, bit depth, model id, rate knob (thousandths),
# entropy method, entropy model id, section count; then the CRC32 of those bytes.
_HEADER_BODY = struct.Struct("<4sBBIIBB8shB8sB")
_HEADER_CRC = struct.Struct("<I")
_SECTION = struct.Struct("<BII")  # section type, payload length, CRC32 of type+length+payload
_VERSION_END = 6  # bytes 0..5 hold magic and version, enough to refuse other majors early

HEADER_SIZE = _HEADER_BODY.size + _HEADER_CRC.size
SECTION_HEADER_SIZE = _SECTION.size
assert HEADER_SIZE == 40 and SECTION_HEADER_SIZE == 9

_U8_MAX = 0xFF
_U32_MAX = 0xFFFF_FFFF
_I16_MIN, _I16_MAX = -0x8000, 0x7FFF
_KNOB_SCALE = 1000  # the rate knob is stored in thousandths


def _section_crc(section_type: int, length: int, payload) -> int:
    """CRC32 over the section's type byte, length and payload, so no framing byte is unprotected."""
    return zlib.crc32(payload, zlib.crc32(struct.pack("<BI", section_type, length)))


class ColourMode(IntEnum):
    RGB = 0
    GRAY = 1
    RGBA = 2


class EntropyMethod(IntEnum):
    STATIC_CONTEXT_V1 = 1
    INCLINED_TCAE_V1 = 2


class SectionType(IntEnum):
    IMPORTANCE = 1
    LUMA = 2
    CHROMA = 3
    METADATA = 4
    ALPHA = 5
    SYNTHESIS = 6  # names the decoder synthesis; parsed into Header.synthesis
    SYNTHESIS_GRIDS = 7  # EXACT_INT_V2's grids; parsed into Header.synthesis_grids
    CORRECTION = 8  # a low-resolution field added to the pixels (lcodec.correction)


class Synthesis(IntEnum):
    """How pixels are computed from the symbols (SYNTHESIS section; absent: FLOAT)."""

    FLOAT = 0  # floating-point decoder networks: pixels may differ by rounding between machines
    EXACT_INT_V1 = 1  # integer-exact decoder (network v2): the same pixels everywhere
    EXACT_INT_V2 = 2  # the same on 8-bit operands, on the file's grids (faster)


Version = tuple[int, int]  # (major, minor)

# The format rules, one table: the version each value a file can hold first appeared in; a file
# holding a value newer than its own version is refused. A new value: a row here and a minor
# bump (docs/format.md copies it). Keyed by enum: IntEnums of equal number compare equal.
FIRST_VERSION: dict[type[IntEnum], dict[IntEnum, Version]] = {
    ColourMode: {ColourMode.RGB: (1, 0), ColourMode.GRAY: (1, 0), ColourMode.RGBA: (1, 0)},
    EntropyMethod: {EntropyMethod.STATIC_CONTEXT_V1: (1, 0),
                    EntropyMethod.INCLINED_TCAE_V1: (1, 0)},
    Synthesis: {Synthesis.FLOAT: (1, 0), Synthesis.EXACT_INT_V1: (1, 1),
                Synthesis.EXACT_INT_V2: (1, 2)},
    SectionType: {SectionType.IMPORTANCE: (1, 0), SectionType.LUMA: (1, 0),
                  SectionType.CHROMA: (1, 0), SectionType.METADATA: (1, 0),
                  SectionType.ALPHA: (1, 0), SectionType.SYNTHESIS: (1, 1),
                  SectionType.SYNTHESIS_GRIDS: (1, 2), SectionType.CORRECTION: (1, 3)},
}
assert all(set(rows) == set(enum) for enum, rows in FIRST_VERSION.items())
assert max(max(rows.values()) for rows in FIRST_VERSION.values()) == (FORMAT_MAJOR, FORMAT_MINOR)

_SYNTHESIS_PAYLOAD = 1  # bytes: u8 Synthesis


def _too_new(values: Iterable[IntEnum], version: Version) -> str | None:
    """Why a file of ``version`` may not hold ``values`` (the first one newer than it), or None."""
    for value in values:
        since = FIRST_VERSION[type(value)][value]
        if since > version:
            name = value.name.lower().replace("_", " ")
            what = {SectionType: f"a {name} section", Synthesis: f"synthesis {value.name}",
                    ColourMode: f"colour mode {value.name}",
                    EntropyMethod: f"entropy method {value.name}"}[type(value)]
            return (f"{what} in a format {version[0]}.{version[1]} file (it needs format "
                    f"{since[0]}.{since[1]})")
    return None


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    colour_mode: ColourMode
    bit_depth: int
    model_id: bytes
    rate_knob: float
    entropy_method: EntropyMethod
    entropy_id: bytes = bytes(ID_SIZE)
    synthesis: Synthesis = Synthesis.FLOAT  # stored in a SYNTHESIS section, not in the 40 bytes
    # EXACT_INT_V2 only: one byte per activation tensor (a SYNTHESIS_GRIDS section; the
    # decoder checks them against the model, synthesis/exact_int_v2.GridSpec)
    synthesis_grids: bytes = b""
    # The format version the file was read with (not compared; pack writes the current one).
    version: Version = field(default=(FORMAT_MAJOR, FORMAT_MINOR), compare=False)


@dataclass(frozen=True)
class LicFile:
    header: Header
    sections: dict[SectionType, bytes]  # written in ascending SectionType order


def looks_like_lic(prefix: bytes) -> bool:
    """Whether ``prefix`` starts with the ``.lic`` magic (no other check)."""
    return bytes(prefix[: len(MAGIC)]) == MAGIC


# --------------------------------------------------------------------------------------- pack


def _check_id(name: str, value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ValueError(f"{name} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != ID_SIZE:
        raise ValueError(f"{name} must be {ID_SIZE} bytes, got {len(value)}")
    return value


def knob_thousandths(knob: float) -> int:
    """The rate knob as a header stores it: an integer number of thousandths."""
    if not math.isfinite(knob):
        raise ValueError(f"rate knob must be finite, got {knob}")
    stored = round(knob * _KNOB_SCALE)
    if not _I16_MIN <= stored <= _I16_MAX:
        raise ValueError(
            f"rate knob {knob} is outside the storable range "
            f"[{_I16_MIN / _KNOB_SCALE}, {_I16_MAX / _KNOB_SCALE}]"
        )
    return stored


def pack(lic: LicFile) -> bytes:
    """Serialise ``lic``; sections are written in ascending :class:`SectionType` order.

    The rate knob is rounded to the nearest thousandth. Raises ``ValueError`` on invalid fields.
    """
    h = lic.header
    for name, value in (("width", h.width), ("height", h.height)):
        if not isinstance(value, int) or not 1 <= value <= _U32_MAX:
            raise ValueError(f"{name} must be an integer in [1, {_U32_MAX}], got {value!r}")
    colour_mode = ColourMode(h.colour_mode)
    entropy_method = EntropyMethod(h.entropy_method)
    if h.bit_depth != SUPPORTED_BIT_DEPTH:
        raise ValueError(f"bit depth must be {SUPPORTED_BIT_DEPTH}, got {h.bit_depth!r}")
    model_id = _check_id("model_id", h.model_id)
    entropy_id = _check_id("entropy_id", h.entropy_id)
    knob = knob_thousandths(h.rate_knob)

    sections = sorted((SectionType(t), bytes(p)) for t, p in lic.sections.items())
    if len({t for t, _ in sections}) != len(sections):
        raise ValueError("section types must be distinct")
    if any(t in (SectionType.SYNTHESIS, SectionType.SYNTHESIS_GRIDS) for t, _ in sections):
        raise ValueError("the synthesis and its grids are header fields (Header.synthesis, "
                         "Header.synthesis_grids), not sections")
    synthesis = Synthesis(h.synthesis)
    grids = bytes(h.synthesis_grids)
    if (synthesis == Synthesis.EXACT_INT_V2) != bool(grids):
        raise ValueError("synthesis grids go with synthesis EXACT_INT_V2, and only with it")
    if len(grids) > _U8_MAX:
        raise ValueError(f"at most {_U8_MAX} synthesis grid bytes, got {len(grids)}")
    if synthesis != Synthesis.FLOAT:  # FLOAT files keep the 1.0 layout: no section at all
        sections.append((SectionType.SYNTHESIS, bytes([synthesis])))
    if grids:
        sections.append((SectionType.SYNTHESIS_GRIDS, grids))
    sections.sort()
    if len(sections) > _U8_MAX:
        raise ValueError(f"at most {_U8_MAX} sections fit in a .lic file, got {len(sections)}")
    late = _too_new([colour_mode, entropy_method, synthesis, *(t for t, _ in sections)],
                    (FORMAT_MAJOR, FORMAT_MINOR))
    if late:
        raise ValueError(late)

    body = _HEADER_BODY.pack(
        MAGIC,
        FORMAT_MAJOR,
        FORMAT_MINOR,
        h.width,
        h.height,
        colour_mode,
        h.bit_depth,
        model_id,
        knob,
        entropy_method,
        entropy_id,
        len(sections),
    )
    out = [body, _HEADER_CRC.pack(zlib.crc32(body))]
    for section_type, payload in sections:
        if len(payload) > _U32_MAX:
            raise ValueError(f"{section_type.name} section is over {_U32_MAX} bytes")
        crc = _section_crc(section_type, len(payload), payload)
        out.append(_SECTION.pack(section_type, len(payload), crc))
        out.append(payload)
    return b"".join(out)


def packed_size(lic: LicFile) -> int:
    """``len(pack(lic))``, computed from the parts without packing (the encoder sizes many
    candidate files and packs one)."""
    h = lic.header
    framed = [len(p) for p in lic.sections.values()]
    if Synthesis(h.synthesis) != Synthesis.FLOAT:  # as pack: FLOAT files have no section
        framed.append(_SYNTHESIS_PAYLOAD)
    if h.synthesis_grids:
        framed.append(len(h.synthesis_grids))
    return HEADER_SIZE + sum(SECTION_HEADER_SIZE + n for n in framed)


# ------------------------------------------------------------------------------------- unpack


def _is_member(enum: type[IntEnum], value: int) -> bool:
    return any(member.value == value for member in enum)


def _section_name(section_type: int) -> str:
    try:
        return SectionType(section_type).name.lower()
    except ValueError:
        return f"type-{section_type}"


def _short_header(size: int) -> str:
    return f"truncated .lic file: {size} bytes, shorter than the {HEADER_SIZE}-byte header"


def _parse(
    data: bytes, max_pixels: int, keep_payloads: bool
) -> tuple[Header, list[tuple[SectionType, int]], dict[SectionType, bytes]]:
    view = memoryview(data).cast("B")
    size = len(view)

    # Magic and version first: a different major version may not even have this header size.
    if bytes(view[: len(MAGIC)]) != MAGIC[: min(size, len(MAGIC))]:
        raise LicError("not a .lic file (the magic bytes do not match)")
    if size < _VERSION_END:
        raise LicError(_short_header(size))
    major, minor = view[4], view[5]
    if major > FORMAT_MAJOR:
        raise LicError(
            f"this file was written by a newer lcodec (format {major}.{minor}); upgrade lcodec"
        )
    if major != FORMAT_MAJOR:
        raise LicError(f"unknown .lic format version {major}.{minor}; the file is corrupted")
    newer_minor = minor > FORMAT_MINOR
    upgrade_hint = f" (the file is format {major}.{minor}; upgrade lcodec)" if newer_minor else ""

    if size < HEADER_SIZE:
        raise LicError(_short_header(size))
    (stored_crc,) = _HEADER_CRC.unpack_from(view, _HEADER_BODY.size)
    if zlib.crc32(view[: _HEADER_BODY.size]) != stored_crc:
        raise LicError("corrupted header (CRC mismatch)")
    (
        _magic,
        _major,
        _minor,
        width,
        height,
        colour_mode,
        bit_depth,
        model_id,
        knob,
        entropy_method,
        entropy_id,
        n_sections,
    ) = _HEADER_BODY.unpack_from(view, 0)

    if width == 0 or height == 0:
        raise LicError(f"invalid header: the image is {width}×{height} pixels, which is empty")
    if width * height > max_pixels:
        raise LicError(
            f"the file declares {width}×{height} pixels, over the limit of {max_pixels}; "
            "pass a higher limit if you trust the file"
        )
    if not _is_member(ColourMode, colour_mode):
        raise LicError(f"unknown colour mode {colour_mode} in the header{upgrade_hint}")
    if bit_depth != SUPPORTED_BIT_DEPTH:
        raise LicError(
            f"unsupported bit depth {bit_depth} (format {FORMAT_MAJOR}.x allows only "
            f"{SUPPORTED_BIT_DEPTH}){upgrade_hint}"
        )
    if not _is_member(EntropyMethod, entropy_method):
        raise LicError(f"unknown entropy method {entropy_method} in the header{upgrade_hint}")

    header = Header(
        width=width,
        height=height,
        colour_mode=ColourMode(colour_mode),
        bit_depth=bit_depth,
        model_id=model_id,
        rate_knob=knob / _KNOB_SCALE,
        entropy_method=EntropyMethod(entropy_method),
        entropy_id=entropy_id,
    )

    listing: list[tuple[SectionType, int]] = []
    payloads: dict[SectionType, bytes] = {}
    synthesis = Synthesis.FLOAT
    grids = b""
    pos = HEADER_SIZE
    previous = 0  # section types must be strictly ascending (this also rules out duplicates)
    for index in range(n_sections):
        where = f"section {index + 1} of {n_sections}"
        if size - pos < SECTION_HEADER_SIZE:
            raise LicError(f"truncated .lic file: the header of {where} runs past the end")
        section_type, length, stored_crc = _SECTION.unpack_from(view, pos)
        pos += SECTION_HEADER_SIZE
        known = _is_member(SectionType, section_type)
        if not known and not newer_minor:
            raise LicError(f"unknown section type {section_type} ({where})")
        name = _section_name(section_type)
        if section_type == previous:
            raise LicError(f"duplicate {name} section")
        if section_type < previous:
            raise LicError(
                f"sections out of order: {name} after {_section_name(previous)} ({where})"
            )
        previous = section_type
        if length > size - pos:  # checked before slicing anything
            raise LicError(
                f"truncated .lic file: the {name} section declares {length} bytes "
                f"but only {size - pos} remain"
            )
        payload = view[pos : pos + length]
        pos += length
        if _section_crc(section_type, length, payload) != stored_crc:
            raise LicError(f"corrupted {name} section (CRC mismatch)")
        if not known:
            continue  # an optional section added by a newer minor version: safe to skip
        listing.append((SectionType(section_type), length))
        if section_type == SectionType.SYNTHESIS:
            synthesis = _synthesis(payload, upgrade_hint)
        elif section_type == SectionType.SYNTHESIS_GRIDS:
            grids = _grids(payload)
        elif keep_payloads:
            payloads[SectionType(section_type)] = bytes(payload)

    if pos != size:
        raise LicError(f"trailing data after the last section ({size - pos} bytes)")
    late = _too_new([header.colour_mode, header.entropy_method, synthesis,
                     *(t for t, _ in listing)], (major, minor))
    if late:
        raise LicError(f"{late}; the file is corrupted")
    if (synthesis == Synthesis.EXACT_INT_V2) != bool(grids):
        raise LicError("synthesis EXACT_INT_V2 without its synthesis grids section"
                       if not grids else
                       f"a synthesis grids section in a {synthesis.name} file")
    header = replace(header, synthesis=synthesis, synthesis_grids=grids, version=(major, minor))
    return header, listing, payloads


def _synthesis(payload: memoryview, upgrade_hint: str) -> Synthesis:
    """The SYNTHESIS section's payload: one u8, a known :class:`Synthesis`."""
    if len(payload) != _SYNTHESIS_PAYLOAD:
        raise LicError(f"invalid synthesis section: {len(payload)} bytes, expected "
                       f"{_SYNTHESIS_PAYLOAD}")
    if not _is_member(Synthesis, payload[0]):
        raise LicError(f"unknown synthesis {payload[0]} in the file{upgrade_hint}")
    return Synthesis(payload[0])


def _grids(payload: memoryview) -> bytes:
    """The SYNTHESIS_GRIDS section's payload: at least one byte (its length and bytes are
    checked against the model when the file is decoded)."""
    if not len(payload):
        raise LicError("invalid synthesis grids section: empty")
    return bytes(payload)


def unpack(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> LicFile:
    """Parse and fully validate a ``.lic`` byte string; raises :class:`LicError` if malformed.

    ``max_pixels`` bounds ``width * height`` (a decompression-bomb guard). Sections of a type
    unknown to this version are skipped only in files of a newer minor format version.
    """
    header, _, payloads = _parse(data, max_pixels, keep_payloads=True)
    return LicFile(header=header, sections=payloads)


def read_header(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[Header, list[tuple[SectionType, int]]]:
    """The header and ``(type, payload length)`` of each section, after validating the whole
    file (section CRCs included) exactly as :func:`unpack` does, without copying payloads."""
    header, listing, _ = _parse(data, max_pixels, keep_payloads=False)
    return header, listing
