"""Conformance: hashes of what a `.lic` file decodes to, and manifests of them for CI.

A file's **pixel hash** is the SHA-256 of its decoded samples exactly as
:func:`lcodec.api.decode_full` gives them (what ``lcodec decode`` writes): the (H, W, 3)
uint8 RGB array in row-major order, a gray file's plane repeated in all three channels,
followed, when the file has an alpha channel, by its (H, W) uint8 alpha plane. Its **symbol
hash** is the SHA-256 of the entropy-decoded symbols those pixels were computed from: the
importance levels (h, w), then the luma codes (n, h, w), then the chroma codes (n_c, h, w;
all zero in a gray file), each as little-endian int64 in row-major order. These are the two
hashes ``tests/golden/MANIFEST.json`` records for every golden file (``pixels_sha256``,
``symbols_sha256``); the golden tests compute them with :func:`digests`.

Files of an exact synthesis (``EXACT_INT_V1``, ``EXACT_INT_V2``) decode to the same pixels
on every machine, device and thread count; other files (the float synthesis) to the same
symbols, their pixels within rounding (docs/format.md).

A **manifest** is what ``lcodec hash`` prints: the header line :data:`MANIFEST_HEADER`, then
one line per file, tab-separated::

    pixels_sha256<TAB>symbols_sha256<TAB>file

with lowercase hex hashes and the file's path relative to the manifest's folder (or
absolute). Blank lines and lines starting with ``#`` are ignored. :func:`check` decodes every
file a manifest lists and compares.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lcodec import api, container
from lcodec.errors import LcodecError

MANIFEST_HEADER = "pixels_sha256\tsymbols_sha256\tfile"
_HEX64 = re.compile(r"[0-9a-f]{64}")

__all__ = ["MANIFEST_HEADER", "Digests", "Entry", "check", "digests", "manifest_line",
           "manifest_path", "read_manifest"]


@dataclass(frozen=True)
class Digests:
    """The SHA-256 hashes (hex) of a file's decoded pixels and of its decoded symbols."""

    pixels_sha256: str
    symbols_sha256: str


def digests(data: Any, device: str = "cpu",
            max_pixels: int = container.DEFAULT_MAX_PIXELS) -> Digests:
    """The pixel and symbol hashes of a `.lic` (bytes, a path or a binary file object), from
    one decoding (the symbols are the ones the decoder computed the pixels from). Raises
    :class:`LcodecError` for a file that does not decode."""
    dec = api.decode_full(data, device, max_pixels, keep_symbols=True)
    pixels = hashlib.sha256(np.ascontiguousarray(dec.pixels).tobytes())
    if dec.alpha is not None:
        pixels.update(np.ascontiguousarray(dec.alpha).tobytes())
    symbols = hashlib.sha256()
    for plane in dec.symbols or ():
        symbols.update(np.ascontiguousarray(plane, dtype="<i8").tobytes())
    return Digests(pixels.hexdigest(), symbols.hexdigest())


def manifest_line(d: Digests, file: str) -> str:
    """One manifest line (no newline) for ``file`` as the manifest should name it."""
    if "\n" in file or "\r" in file:
        raise LcodecError(f"{file!r} has a line break in its name; a manifest cannot list it")
    return f"{d.pixels_sha256}\t{d.symbols_sha256}\t{file}"


def manifest_path(file: str | os.PathLike, manifest: str | os.PathLike) -> str:
    """How a manifest written to ``manifest`` names ``file``: relative to its folder,
    '/'-separated (absolute where no relative path exists, e.g. another drive)."""
    folder = Path(os.path.abspath(manifest)).parent
    try:
        rel = os.path.relpath(os.path.abspath(file), folder)
    except ValueError:
        return Path(os.path.abspath(file)).as_posix()
    return Path(rel).as_posix()


@dataclass(frozen=True)
class Entry:
    """A manifest line: the file as listed, its recorded hashes, the line number."""

    file: str
    digests: Digests
    line: int


def read_manifest(path: str | os.PathLike, text: str | None = None) -> list[Entry]:
    """The entries of the manifest at ``path`` (its ``text`` when given); a malformed one
    is an :class:`LcodecError` naming the line."""
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LcodecError(f"{path} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LcodecError(f"cannot read the manifest {path}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    entries: list[Entry] = []
    header = False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        if not header:
            if line != MANIFEST_HEADER:
                raise LcodecError(f"{path}:{n}: not an lcodec manifest (its first line must "
                                  "be the header 'pixels_sha256 symbols_sha256 file', "
                                  "tab-separated); write one with lcodec hash")
            header = True
            continue
        fields = line.split("\t", 2)
        if len(fields) != 3 or not fields[2] or not all(_HEX64.fullmatch(f)
                                                         for f in fields[:2]):
            raise LcodecError(f"{path}:{n}: expected two SHA-256 hashes (64 lowercase hex "
                              "digits) and a file name, tab-separated; write the manifest "
                              "with lcodec hash")
        entries.append(Entry(fields[2], Digests(fields[0], fields[1]), n))
    if not header:
        raise LcodecError(f"{path} is empty: not an lcodec manifest; write one with "
                          "lcodec hash")
    return entries


def check(manifest: str | os.PathLike, device: str = "cpu",
          max_pixels: int = container.DEFAULT_MAX_PIXELS
          ) -> Iterator[tuple[Entry, str | None]]:
    """Decode every file ``manifest`` lists (paths relative to its folder) and compare its
    hashes with the recorded ones: yields each entry with what is wrong with it (one
    sentence: missing, does not decode, pixels or symbols differ) or None when it matches.
    A malformed manifest raises :class:`LcodecError` before any file is decoded."""
    folder = Path(manifest).parent
    for entry in read_manifest(manifest):
        path = folder / entry.file
        if not path.is_file():
            yield entry, "not found" if not path.exists() else "not a file"
            continue
        try:
            data = path.read_bytes()
            got = digests(data, device, max_pixels)
        except LcodecError as exc:
            yield entry, f"does not decode ({exc})"
            continue
        except OSError as exc:
            yield entry, f"cannot be read ({exc.strerror or exc})"
            continue
        yield entry, _difference(entry.digests, got, data)


def _difference(want: Digests, got: Digests, data: bytes) -> str | None:
    """What differs between the recorded and the decoded hashes, or None."""
    wrong = [name for name, a, b in (("pixels", want.pixels_sha256, got.pixels_sha256),
                                     ("symbols", want.symbols_sha256, got.symbols_sha256))
             if a != b]
    if not wrong:
        return None
    text = " and ".join(f"its {name} hash is {getattr(got, name + '_sha256')}, not "
                        f"{getattr(want, name + '_sha256')}" for name in wrong)
    if wrong == ["pixels"] and container.unpack(data).header.synthesis == \
            container.Synthesis.FLOAT:
        text += (" (the file names the float synthesis, whose pixels may differ by rounding "
                 "between machines; its symbols match)")
    return text
