"""Claims about the `.lic` container (src/lcodec/container.py, spec in docs/format.md)."""

from __future__ import annotations

import random
import re
import struct
import tracemalloc
import zlib
from enum import IntEnum
from pathlib import Path

import pytest

from lcodec.container import (
    DEFAULT_MAX_PIXELS,
    FIRST_VERSION,
    FORMAT_MAJOR,
    FORMAT_MINOR,
    HEADER_SIZE,
    MAGIC,
    SECTION_HEADER_SIZE,
    ColourMode,
    EntropyMethod,
    Header,
    LicFile,
    SectionType,
    Synthesis,
    Version,
    looks_like_lic,
    pack,
    read_header,
    unpack,
)
from lcodec.errors import LcodecError, LicError

MAJOR_OFFSET, MINOR_OFFSET = 4, 5
WIDTH_OFFSET = 6
BIT_DEPTH_OFFSET = 15
SECTION_COUNT_OFFSET = 35
CRC_OFFSET = 36


def make_header(**overrides: object) -> Header:
    fields: dict[str, object] = dict(
        width=17,
        height=9,
        colour_mode=ColourMode.RGB,
        bit_depth=8,
        model_id=bytes(range(1, 9)),
        rate_knob=-0.125,
        entropy_method=EntropyMethod.STATIC_CONTEXT_V1,
        entropy_id=bytes(8),
    )
    fields.update(overrides)
    return Header(**fields)  # type: ignore[arg-type]


def make_lic(seed: int = 0, **header_overrides: object) -> LicFile:
    rng = random.Random(seed)
    sections = {
        t: rng.randbytes(rng.randint(20, 40))
        for t in (SectionType.CHROMA, SectionType.IMPORTANCE, SectionType.LUMA)
    }
    return LicFile(header=make_header(**header_overrides), sections=sections)


def with_header_crc(data: bytearray) -> bytes:
    """Recompute the header CRC after editing header bytes, so only the edit is under test."""
    struct.pack_into("<I", data, CRC_OFFSET, zlib.crc32(data[:CRC_OFFSET]))
    return bytes(data)


def test_pack_unpack_round_trips() -> None:
    lic = make_lic()
    back = unpack(pack(lic))
    assert back == lic
    assert list(back.sections) == sorted(lic.sections)  # ascending SectionType order
    assert isinstance(back.header.colour_mode, ColourMode)
    assert isinstance(back.header.entropy_method, EntropyMethod)


@pytest.mark.parametrize("mode", list(ColourMode))
@pytest.mark.parametrize("method", list(EntropyMethod))
def test_every_colour_mode_and_entropy_method_round_trips(
    mode: ColourMode, method: EntropyMethod
) -> None:
    lic = make_lic(colour_mode=mode, entropy_method=method, entropy_id=b"\xaa" * 8)
    assert unpack(pack(lic)) == lic


def test_file_without_sections_round_trips() -> None:
    lic = LicFile(header=make_header(), sections={})
    data = pack(lic)
    assert len(data) == HEADER_SIZE
    assert unpack(data) == lic


def test_header_is_tens_of_bytes() -> None:
    assert HEADER_SIZE == 40
    assert SECTION_HEADER_SIZE == 9
    lic = make_lic()
    payload = sum(len(p) for p in lic.sections.values())
    assert len(pack(lic)) == HEADER_SIZE + len(lic.sections) * SECTION_HEADER_SIZE + payload


def test_layout_matches_the_spec() -> None:
    data = pack(make_lic(width=0x01020304, height=0x0A0B0C0D, rate_knob=-0.125))
    assert data[:4] == MAGIC == b"\x89LIC"
    assert (data[MAJOR_OFFSET], data[MINOR_OFFSET]) == (FORMAT_MAJOR, FORMAT_MINOR) == (1, 3)
    assert data[6:10] == bytes([4, 3, 2, 1])  # little-endian width
    assert data[10:14] == bytes([0xD, 0xC, 0xB, 0xA])
    assert data[14] == ColourMode.RGB == 0 and data[15] == 8
    assert data[16:24] == bytes(range(1, 9))
    assert struct.unpack_from("<h", data, 24) == (-125,)
    assert data[26] == EntropyMethod.STATIC_CONTEXT_V1 == 1
    assert data[27:35] == bytes(8)
    assert data[SECTION_COUNT_OFFSET] == 3
    assert struct.unpack_from("<I", data, CRC_OFFSET) == (zlib.crc32(data[:36]),)
    assert data[HEADER_SIZE] == SectionType.IMPORTANCE == 1


def test_enum_values_are_frozen() -> None:
    assert {m.name: m.value for m in ColourMode} == {"RGB": 0, "GRAY": 1, "RGBA": 2}
    assert {m.name: m.value for m in EntropyMethod} == {
        "STATIC_CONTEXT_V1": 1,
        "INCLINED_TCAE_V1": 2,
    }
    assert {m.name: m.value for m in SectionType} == {
        "IMPORTANCE": 1,
        "LUMA": 2,
        "CHROMA": 3,
        "METADATA": 4,
        "ALPHA": 5,
        "SYNTHESIS": 6,
        "SYNTHESIS_GRIDS": 7,
        "CORRECTION": 8,
    }
    assert {m.name: m.value for m in Synthesis} == {"FLOAT": 0, "EXACT_INT_V1": 1,
                                                    "EXACT_INT_V2": 2}


def test_rate_knob_is_rounded_to_thousandths() -> None:
    for knob in (0.0, 0.3333, -1.2346, 32.767, -32.768):
        got = unpack(pack(make_lic(rate_knob=knob))).header.rate_knob
        assert abs(got - knob) < 0.0005


@pytest.mark.parametrize("knob", [32.768, -32.7691, float("nan"), float("inf")])
def test_pack_rejects_unstorable_rate_knob(knob: float) -> None:
    with pytest.raises(ValueError):
        pack(make_lic(rate_knob=knob))


@pytest.mark.parametrize(
    "overrides",
    [
        {"model_id": bytes(7)},
        {"entropy_id": bytes(9)},
        {"width": 0},
        {"height": 2**32},
        {"bit_depth": 16},
        {"colour_mode": 9},
        {"entropy_method": 0},
    ],
)
def test_pack_rejects_invalid_header_fields(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        pack(make_lic(**overrides))


def test_lic_error_is_an_lcodec_error() -> None:
    assert issubclass(LicError, LcodecError)


def test_every_single_byte_flip_is_rejected() -> None:
    # Section CRCs cover payloads only; a flipped type byte is caught here because the types
    # 1, 2, 3 can only turn into unknown, duplicate or out-of-order types.
    data = pack(make_lic())
    for pos in range(len(data)):
        for mask in (0xFF, 0x01):
            mutated = bytearray(data)
            mutated[pos] ^= mask
            with pytest.raises(LicError):
                unpack(bytes(mutated))


def test_every_truncation_is_rejected() -> None:
    data = pack(make_lic())
    for length in range(len(data)):
        with pytest.raises(LicError):
            unpack(data[:length])
    with pytest.raises(LicError, match="truncated"):
        unpack(data[: HEADER_SIZE - 1])
    with pytest.raises(LicError, match="truncated"):
        unpack(data[:-1])


def test_bad_magic_is_rejected() -> None:
    data = bytearray(pack(make_lic()))
    data[1:4] = b"PNG"
    with pytest.raises(LicError, match="not a .lic file"):
        unpack(bytes(data))
    with pytest.raises(LicError, match="not a .lic file"):
        unpack(b"GIF89a")


def test_newer_major_version_is_rejected_with_upgrade_hint() -> None:
    data = bytearray(pack(make_lic()))
    data[MAJOR_OFFSET], data[MINOR_OFFSET] = FORMAT_MAJOR + 1, 0
    with pytest.raises(LicError, match=r"newer lcodec \(format 2\.0\); upgrade lcodec"):
        unpack(with_header_crc(data))
    # The version is checked before the header length: a v2 layout may differ entirely.
    with pytest.raises(LicError, match="upgrade lcodec"):
        unpack(bytes(data[:6]))


def test_older_unknown_major_version_is_rejected() -> None:
    data = bytearray(pack(make_lic()))
    data[MAJOR_OFFSET], data[MINOR_OFFSET] = 0, 0
    with pytest.raises(LicError, match="unknown .lic format version 0.0"):
        unpack(with_header_crc(data))


def test_newer_minor_version_is_accepted() -> None:
    lic = make_lic()
    data = bytearray(pack(lic))
    data[MINOR_OFFSET] = FORMAT_MINOR + 1
    assert unpack(with_header_crc(data)) == lic


def _append_section(data: bytes, section_type: int, payload: bytes) -> bytearray:
    out = bytearray(data)
    out[SECTION_COUNT_OFFSET] += 1
    crc = zlib.crc32(payload, zlib.crc32(struct.pack("<BI", section_type, len(payload))))
    out += struct.pack("<BII", section_type, len(payload), crc) + payload
    return out


def test_unknown_section_type_is_rejected() -> None:
    data = _append_section(pack(make_lic()), 200, b"future")
    with pytest.raises(LicError, match="unknown section type 200"):
        unpack(with_header_crc(data))


def test_unknown_section_of_a_newer_minor_version_is_skipped() -> None:
    lic = make_lic()
    data = _append_section(pack(lic), 200, b"optional future data")
    data[MINOR_OFFSET] = FORMAT_MINOR + 1
    assert unpack(with_header_crc(data)) == lic


def test_unknown_enum_values_are_rejected() -> None:
    for offset, value, message in (
        (14, 3, "unknown colour mode 3"),
        (26, 0, "unknown entropy method 0"),
        (26, 3, "unknown entropy method 3"),
        (BIT_DEPTH_OFFSET, 16, "unsupported bit depth 16"),
    ):
        data = bytearray(pack(make_lic()))
        data[offset] = value
        with pytest.raises(LicError, match=message):
            unpack(with_header_crc(data))


def test_corrupted_header_is_rejected() -> None:
    data = bytearray(pack(make_lic()))
    data[20] ^= 0x10  # inside the model id, which no other check looks at
    with pytest.raises(LicError, match="corrupted header"):
        unpack(bytes(data))


def test_corrupted_section_is_named() -> None:
    data = bytearray(pack(make_lic()))
    data[-1] ^= 0x01  # last byte of the last (chroma) section
    with pytest.raises(LicError, match="corrupted chroma section"):
        unpack(bytes(data))


@pytest.mark.parametrize("field", ["width", "height"])
def test_zero_dimensions_are_rejected(field: str) -> None:
    data = bytearray(pack(make_lic()))
    offset = WIDTH_OFFSET if field == "width" else WIDTH_OFFSET + 4
    struct.pack_into("<I", data, offset, 0)
    with pytest.raises(LicError, match="empty"):
        unpack(with_header_crc(data))


def test_duplicate_section_is_rejected() -> None:
    data = _append_section(pack(make_lic()), SectionType.CHROMA, b"again")
    with pytest.raises(LicError, match="duplicate chroma section"):
        unpack(with_header_crc(data))


def test_sections_out_of_order_are_rejected() -> None:
    data = _append_section(pack(make_lic()), SectionType.IMPORTANCE, b"late")
    with pytest.raises(LicError, match="out of order"):
        unpack(with_header_crc(data))


def test_trailing_garbage_is_rejected() -> None:
    data = pack(make_lic())
    for tail in (b"\x00", b"garbage", pack(make_lic())):
        with pytest.raises(LicError, match="trailing data after the last section"):
            unpack(data + tail)


def test_oversize_dimensions_are_rejected_before_allocation() -> None:
    big = pack(LicFile(header=make_header(width=2**32 - 1, height=2**32 - 1), sections={}))
    with pytest.raises(LicError, match=r"4294967295×4294967295 pixels, over the limit of"):
        unpack(big)
    with pytest.raises(LicError, match="pass a higher limit"):
        read_header(big)
    assert DEFAULT_MAX_PIXELS < 20_000 * 20_000
    square = pack(LicFile(header=make_header(width=20_000, height=20_000), sections={}))
    with pytest.raises(LicError, match="over the limit of 100000000"):
        unpack(square)
    assert unpack(square, max_pixels=20_000 * 20_000).header.width == 20_000
    with pytest.raises(LicError, match="over the limit of 152"):
        unpack(pack(make_lic()), max_pixels=17 * 9 - 1)


def test_huge_declared_section_length_is_rejected_without_allocating() -> None:
    data = bytearray(pack(LicFile(header=make_header(), sections={})))
    data[SECTION_COUNT_OFFSET] = 1
    data += struct.pack("<BII", SectionType.LUMA, 2**32 - 1, 0) + b"tiny"
    tracemalloc.start()
    try:
        with pytest.raises(LicError, match="luma section declares 4294967295 bytes"):
            unpack(with_header_crc(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_read_header_lists_sections() -> None:
    lic = make_lic()
    header, sections = read_header(pack(lic))
    assert header == lic.header
    assert sections == [(t, len(lic.sections[t])) for t in sorted(lic.sections)]
    assert [t for t, _ in sections] == [
        SectionType.IMPORTANCE,
        SectionType.LUMA,
        SectionType.CHROMA,
    ]


def test_read_header_validates_section_crcs() -> None:
    data = bytearray(pack(make_lic()))
    data[-1] ^= 0xFF
    with pytest.raises(LicError, match="corrupted chroma section"):
        read_header(bytes(data))


def test_unpack_accepts_bytearray_and_memoryview() -> None:
    lic = make_lic()
    data = pack(lic)
    assert unpack(bytearray(data)) == lic
    assert unpack(memoryview(data)) == lic


def test_looks_like_lic() -> None:
    data = pack(make_lic())
    assert looks_like_lic(data)
    assert looks_like_lic(data[:4])
    assert looks_like_lic(MAGIC + b"anything")
    assert not looks_like_lic(data[:3])
    assert not looks_like_lic(b"")
    assert not looks_like_lic(b"\x89PNG\r\n\x1a\n")


def test_section_type_bytes_are_protected_by_the_section_crc() -> None:
    """A flipped type byte that still names a valid, in-order section is caught by the CRC."""
    lic = LicFile(make_lic().header, {SectionType.IMPORTANCE: b"a" * 5, SectionType.METADATA: b"m"})
    data = bytearray(pack(lic))
    meta_type_at = HEADER_SIZE + SECTION_HEADER_SIZE + 5
    assert data[meta_type_at] == SectionType.METADATA
    data[meta_type_at] = SectionType.ALPHA
    with pytest.raises(LicError, match="corrupted alpha section"):
        unpack(bytes(data))


# ---------------------------------------------------------------- synthesis (format 1.1)


def test_exact_synthesis_round_trips_as_a_one_byte_last_section() -> None:
    lic = make_lic(synthesis=Synthesis.EXACT_INT_V1)
    data = pack(lic)
    assert data[SECTION_COUNT_OFFSET] == 4
    assert data[-SECTION_HEADER_SIZE - 1] == SectionType.SYNTHESIS == 6
    assert data[-1] == Synthesis.EXACT_INT_V1 == 1
    assert unpack(data) == lic and SectionType.SYNTHESIS not in unpack(data).sections
    header, listing = read_header(data)
    assert header.synthesis == Synthesis.EXACT_INT_V1
    assert listing[-1] == (SectionType.SYNTHESIS, 1)


def test_float_synthesis_writes_no_section_so_old_layouts_mean_float() -> None:
    data = pack(make_lic())
    assert data[SECTION_COUNT_OFFSET] == 3
    assert unpack(data).header.synthesis == Synthesis.FLOAT
    old = bytearray(data)
    old[MINOR_OFFSET] = 0  # a format 1.0 file: no synthesis section, the float decoder
    assert unpack(with_header_crc(old)).header.synthesis == Synthesis.FLOAT


def test_a_synthesis_section_passed_as_a_section_is_a_programmer_error() -> None:
    lic = LicFile(make_header(), {SectionType.SYNTHESIS: b"\x01"})
    with pytest.raises(ValueError, match="header field"):
        pack(lic)


def test_a_format_1_0_decoder_skips_the_synthesis_section_of_a_1_1_file() -> None:
    """What an older decoder sees: an optional section of a newer minor version, skipped by
    framing and CRC (it then decodes with its float networks)."""
    data = pack(make_lic(synthesis=Synthesis.EXACT_INT_V1))
    body = data[:-SECTION_HEADER_SIZE - 1]
    type_, length, crc = struct.unpack_from("<BII", data, len(body))
    assert (type_, length) == (6, 1)
    assert crc == zlib.crc32(b"\x01", zlib.crc32(struct.pack("<BI", 6, 1)))


def test_bad_synthesis_sections_are_rejected() -> None:
    base = bytearray(pack(make_lic()))
    for payload, message in ((b"\x07", "unknown synthesis 7"),
                             (b"", "invalid synthesis section: 0 bytes"),
                             (b"\x01\x00", "invalid synthesis section: 2 bytes")):
        data = _append_section(bytes(base), SectionType.SYNTHESIS, payload)
        with pytest.raises(LicError, match=message):
            unpack(with_header_crc(data))
        with pytest.raises(LicError, match=message):
            read_header(with_header_crc(data))
    newer = _append_section(bytes(base), SectionType.SYNTHESIS, b"\x07")
    newer[MINOR_OFFSET] = FORMAT_MINOR + 1
    with pytest.raises(LicError, match="unknown synthesis 7.*upgrade lcodec"):
        unpack(with_header_crc(newer))


# ------------------------------------------------------- synthesis EXACT_INT_V2 (format 1.2)

GRIDS = bytes(range(40, 63))  # 23 bytes, as a v2 model with two refinement blocks has


def test_exact_v2_round_trips_with_its_grids_as_the_last_section() -> None:
    lic = make_lic(synthesis=Synthesis.EXACT_INT_V2, synthesis_grids=GRIDS)
    data = pack(lic)
    assert data[SECTION_COUNT_OFFSET] == 5
    assert data[-len(GRIDS) - SECTION_HEADER_SIZE] == SectionType.SYNTHESIS_GRIDS == 7
    assert data[-len(GRIDS):] == GRIDS
    back = unpack(data)
    assert back == lic and back.header.synthesis_grids == GRIDS
    assert SectionType.SYNTHESIS_GRIDS not in back.sections
    assert read_header(data)[1][-2:] == [(SectionType.SYNTHESIS, 1),
                                          (SectionType.SYNTHESIS_GRIDS, len(GRIDS))]


def test_grids_go_with_exact_v2_and_only_with_it_when_packing() -> None:
    for synthesis, grids in ((Synthesis.EXACT_INT_V2, b""), (Synthesis.EXACT_INT_V1, GRIDS),
                             (Synthesis.FLOAT, GRIDS)):
        with pytest.raises(ValueError, match="only with it"):
            pack(make_lic(synthesis=synthesis, synthesis_grids=grids))
    with pytest.raises(ValueError, match="header fields"):
        pack(LicFile(make_header(), {SectionType.SYNTHESIS_GRIDS: GRIDS}))


def test_files_that_break_the_grid_rules_are_refused() -> None:
    v1 = pack(make_lic(synthesis=Synthesis.EXACT_INT_V1))
    v2_bare = bytearray(v1)
    v2_bare[-1] = Synthesis.EXACT_INT_V2  # the synthesis byte is the payload's last byte
    v2_bare = _section_crc_fixed(v2_bare)
    cases = [
        (v2_bare, "EXACT_INT_V2 without its synthesis grids section"),
        (_append_section(v1, SectionType.SYNTHESIS_GRIDS, GRIDS),
         "synthesis grids section in a EXACT_INT_V1 file"),
        (_append_section(pack(make_lic()), SectionType.SYNTHESIS_GRIDS, GRIDS),
         "synthesis grids section in a FLOAT file"),
        (_append_section(bytes(v2_bare), SectionType.SYNTHESIS_GRIDS, b""),
         "invalid synthesis grids section: empty"),
    ]
    for data, message in cases:
        with pytest.raises(LicError, match=message):
            unpack(with_header_crc(bytearray(data)))
    old = bytearray(pack(make_lic(synthesis=Synthesis.EXACT_INT_V2, synthesis_grids=GRIDS)))
    old[MINOR_OFFSET] = 1  # a 1.1 file cannot hold them
    with pytest.raises(LicError, match="format 1.1 file"):
        unpack(with_header_crc(old))


def test_a_format_1_1_decoder_refuses_an_exact_v2_file_by_its_synthesis_byte() -> None:
    """What lcodec 1.1 sees: synthesis 2, which it does not know, in a newer minor version
    (so it says to upgrade); the grids section after it is one it skips by framing."""
    data = pack(make_lic(synthesis=Synthesis.EXACT_INT_V2, synthesis_grids=GRIDS))
    assert data[MINOR_OFFSET] == FORMAT_MINOR >= 2
    at = len(data) - len(GRIDS) - SECTION_HEADER_SIZE - 1 - SECTION_HEADER_SIZE
    assert struct.unpack_from("<BI", data, at) == (SectionType.SYNTHESIS, 1)
    assert data[at + SECTION_HEADER_SIZE] == 2


def _section_crc_fixed(data: bytearray) -> bytearray:
    """Recompute the CRC of the last section after editing its one-byte payload."""
    at = len(data) - 1 - SECTION_HEADER_SIZE
    type_, length, _ = struct.unpack_from("<BII", data, at)
    crc = zlib.crc32(data[-length:], zlib.crc32(struct.pack("<BI", type_, length)))
    struct.pack_into("<BII", data, at, type_, length, crc)
    return data


def test_the_header_reports_the_format_version_the_file_was_written_in() -> None:
    data = bytearray(pack(make_lic()))
    assert read_header(bytes(data))[0].version == (FORMAT_MAJOR, FORMAT_MINOR)
    data[MINOR_OFFSET] = FORMAT_MINOR + 1
    assert unpack(with_header_crc(data)).header.version == (FORMAT_MAJOR, FORMAT_MINOR + 1)


# ------------------------------------------------------------ format versions (FIRST_VERSION)

RULES = [(value, since) for rows in FIRST_VERSION.values() for value, since in rows.items()]
RULE_IDS = [f"{type(value).__name__}.{value.name}" for value, _ in RULES]
NEWER_THAN_1_0 = [(value, since) for value, since in RULES if since > (1, 0)]
NEWER_IDS = [f"{type(value).__name__}.{value.name}" for value, _ in NEWER_THAN_1_0]
SECTION_PAYLOADS = {SectionType.SYNTHESIS: bytes([Synthesis.FLOAT]),
                    SectionType.SYNTHESIS_GRIDS: GRIDS}


def _file_holding(version: Version, values: list[IntEnum]) -> bytes:
    """A file of format ``version`` holding ``values`` (a colour mode, an entropy method, a
    synthesis, section types), built byte by byte, as a writer of that version would have."""
    fields: dict[str, object] = {}
    sections: dict[int, bytes] = {}
    for value in values:
        if isinstance(value, ColourMode):
            fields["colour_mode"] = value
        elif isinstance(value, EntropyMethod):
            fields["entropy_method"] = value
        elif isinstance(value, Synthesis):
            if value != Synthesis.FLOAT:  # FLOAT is a file without a SYNTHESIS section
                sections[SectionType.SYNTHESIS] = bytes([value])
        else:
            sections.setdefault(value, SECTION_PAYLOADS.get(value, b"payload"))
    data = bytearray(pack(LicFile(make_header(**fields), {})))
    for section_type in sorted(sections):
        data = _append_section(bytes(data), section_type, sections[section_type])
    data[MAJOR_OFFSET], data[MINOR_OFFSET] = version
    return with_header_crc(data)


def _with_companions(value: IntEnum) -> list[IntEnum]:
    """``value`` and what a valid file holding it needs beside it (EXACT_INT_V2 and its grids
    go together)."""
    # (type, value) pairs: members of different IntEnums with equal numbers compare equal
    if (type(value), value) in ((Synthesis, 2), (SectionType, 7)):
        return [Synthesis.EXACT_INT_V2, SectionType.SYNTHESIS_GRIDS]
    return [value]


def _named(value: IntEnum) -> str:
    """How a refusal names ``value``."""
    return {SectionType: f"a {value.name.lower().replace('_', ' ')} section",
            Synthesis: f"synthesis {value.name}", ColourMode: f"colour mode {value.name}",
            EntropyMethod: f"entropy method {value.name}"}[type(value)]


def _lic_holding(values: list[IntEnum]) -> LicFile:
    """What the encoder would pack for a file holding ``values``."""
    fields: dict[str, object] = {}
    sections: dict[SectionType, bytes] = {}
    for value in values:
        if isinstance(value, ColourMode):
            fields["colour_mode"] = value
        elif isinstance(value, EntropyMethod):
            fields["entropy_method"] = value
        elif isinstance(value, Synthesis):
            fields["synthesis"] = value
        elif value == SectionType.SYNTHESIS:
            fields.setdefault("synthesis", Synthesis.EXACT_INT_V1)
        elif value == SectionType.SYNTHESIS_GRIDS:
            fields["synthesis_grids"] = GRIDS
        else:
            sections[SectionType(value)] = b"payload"
    return LicFile(make_header(**fields), sections)


def test_every_value_has_a_first_version_and_the_newest_is_the_current_format() -> None:
    assert set(FIRST_VERSION) == {ColourMode, EntropyMethod, Synthesis, SectionType}
    for enum, rows in FIRST_VERSION.items():
        assert set(rows) == set(enum), enum.__name__
    assert max(since for _, since in RULES) == (FORMAT_MAJOR, FORMAT_MINOR)


@pytest.mark.parametrize(("value", "since"), RULES, ids=RULE_IDS)
def test_a_value_is_accepted_in_a_file_of_the_version_it_appeared_in(
    value: IntEnum, since: Version
) -> None:
    data = _file_holding(since, _with_companions(value))
    header, listing = read_header(data)
    lic = unpack(data)
    assert header.version == lic.header.version == since
    held = [header.colour_mode, header.entropy_method, header.synthesis, *(t for t, _ in listing)]
    assert (type(value), value) in [(type(h), h) for h in held]


@pytest.mark.parametrize(("value", "since"), NEWER_THAN_1_0, ids=NEWER_IDS)
def test_a_value_is_refused_in_a_file_one_minor_version_older(
    value: IntEnum, since: Version
) -> None:
    major, minor = since
    data = _file_holding((major, minor - 1), [value])
    message = (f"{_named(value)} in a format {major}.{minor - 1} file (it needs format "
               f"{major}.{minor}); the file is corrupted")
    for parse in (unpack, read_header):
        with pytest.raises(LicError, match=f"^{re.escape(message)}$"):
            parse(data)


def test_a_synthesis_section_in_a_format_1_0_file_is_refused() -> None:
    """Once read as EXACT_INT_V1 (its "since 1.1" was only a comment); now refused like a
    CORRECTION section in a 1.2 file."""
    old = bytearray(pack(make_lic(synthesis=Synthesis.EXACT_INT_V1)))
    old[MINOR_OFFSET] = 0
    with pytest.raises(LicError, match=r"^synthesis EXACT_INT_V1 in a format 1\.0 file \(it "
                                       r"needs format 1\.1\); the file is corrupted$"):
        unpack(with_header_crc(old))
    float_named = _file_holding((1, 0), [SectionType.SYNTHESIS])  # a FLOAT payload
    with pytest.raises(LicError, match=r"^a synthesis section in a format 1\.0 file"):
        unpack(float_named)
    old[MINOR_OFFSET] = 1
    assert unpack(with_header_crc(old)).header.synthesis == Synthesis.EXACT_INT_V1


def test_a_correction_section_is_refused_before_format_1_3_and_accepted_from_it() -> None:
    lic = LicFile(make_header(), {SectionType.LUMA: b"l", SectionType.CORRECTION: b"fix"})
    data = bytearray(pack(lic))
    assert unpack(bytes(data)) == lic
    for minor in (0, 1, 2):
        data[MINOR_OFFSET] = minor
        with pytest.raises(LicError, match=rf"^a correction section in a format 1\.{minor} file"
                                           r" \(it needs format 1\.3\)"):
            unpack(with_header_crc(data))


@pytest.mark.parametrize(("value", "since"), RULES, ids=RULE_IDS)
def test_the_table_alone_decides_for_reading_and_writing(
    value: IntEnum, since: Version, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row moved to a future version: unpack refuses a current file holding the value, and
    pack refuses to write one."""
    current = (FORMAT_MAJOR, FORMAT_MINOR)
    data = _file_holding(current, _with_companions(value))
    lic = _lic_holding(_with_companions(value))
    assert unpack(pack(lic)) == lic and unpack(data).header.version == current
    monkeypatch.setitem(FIRST_VERSION[type(value)], value, (FORMAT_MAJOR, FORMAT_MINOR + 1))
    message = re.escape(f"{_named(value)} in a format {FORMAT_MAJOR}.{FORMAT_MINOR} file")
    with pytest.raises(LicError, match=f"^{message}"):
        unpack(data)
    with pytest.raises(ValueError, match=f"^{message}"):
        pack(lic)


def test_the_format_spec_lists_the_same_first_versions() -> None:
    spec = (Path(__file__).parents[1] / "docs" / "format.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)\.(\w+)` \| (\d+)\.(\d+) \|$", spec, re.MULTILINE)
    documented = {(enum, name): (int(major), int(minor)) for enum, name, major, minor in rows}
    assert documented == {(type(v).__name__, v.name): since for v, since in RULES}
