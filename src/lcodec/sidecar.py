"""Sections stored beside the codes: lossless alpha and metadata (ICC profile, EXIF, XMP).

ALPHA payload: u8 method (1 = rows "Up"-filtered mod 256, then zlib), then the zlib stream.
METADATA payload: records of u8 kind (1 = ICC profile, 2 = EXIF, 3 = XMP packet), u32 length,
bytes. Decoders skip kinds they do not know, so kind 3 needed no new format version: a decoder
older than it reads the file and drops the XMP, as before.
Decoding bounds every size before inflating, so a crafted file cannot blow up memory.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from lcodec.errors import LicError

ALPHA_ZLIB_UP = 1
META_ICC = 1
META_EXIF = 2
META_XMP = 3  # the XMP packet (UTF-8 XML) as the source image carried it
_RECORD = struct.Struct("<BI")


def pack_alpha(alpha: np.ndarray) -> bytes:
    a = alpha.astype(np.uint8)
    filtered = a.copy()
    filtered[1:] = a[1:] - a[:-1]  # wraps mod 256
    return bytes([ALPHA_ZLIB_UP]) + zlib.compress(filtered.tobytes(), 9)


def unpack_alpha(payload: bytes, width: int, height: int) -> np.ndarray:
    if not payload or payload[0] != ALPHA_ZLIB_UP:
        raise LicError("unknown alpha coding method in the alpha section")
    need = width * height
    d = zlib.decompressobj()
    try:
        raw = d.decompress(payload[1:], need + 1)
    except zlib.error:
        raise LicError("corrupted alpha section (bad zlib data)") from None
    if len(raw) != need or not d.eof or d.unused_data:
        raise LicError("corrupted alpha section (wrong size)")
    filtered = np.frombuffer(raw, dtype=np.uint8).reshape(height, width)
    return np.cumsum(filtered, axis=0, dtype=np.uint8)


def pack_metadata(icc: bytes | None, exif: bytes | None, xmp: bytes | None = None) -> bytes:
    """The METADATA payload: a record for each of ``icc``, ``exif`` and ``xmp`` given (in that
    order; nothing at all when none is)."""
    out = b""
    for kind, blob in ((META_ICC, icc), (META_EXIF, exif), (META_XMP, xmp)):
        if blob:
            out += _RECORD.pack(kind, len(blob)) + blob
    return out


def unpack_metadata(payload: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    names = {META_ICC: "icc", META_EXIF: "exif", META_XMP: "xmp"}
    while pos < len(payload):
        if len(payload) - pos < _RECORD.size:
            raise LicError("corrupted metadata section (truncated record)")
        kind, length = _RECORD.unpack_from(payload, pos)
        pos += _RECORD.size
        if length > len(payload) - pos:
            raise LicError("corrupted metadata section (record runs past the end)")
        if kind in names:
            out[names[kind]] = bytes(payload[pos : pos + length])
        pos += length
    return out
