"""Fuzzing the decoder with mutated `.lic` files: ``python tests/fuzzing.py --cases 10000``.

Each case either decodes or raises :class:`LcodecError`; any other exception, a case that
uses more than ``max_seconds`` of CPU time (process time, so a busy machine does not make a
case "slow"; a hang spins and is caught), or resident memory growing past ``max_rss_mb`` is a
failure.

Mutations: raw (byte flips, truncation, extension, insertion, deletion — caught by framing
and CRCs) and structural (a section's payload mutated or replaced, sections dropped or
swapped, header fields changed, then re-packed with valid CRCs, so the entropy decoder and
the networks see garbage symbols). Seed files are small images coded with the default model.

``--structured`` is the structure-aware mode: every case is mutated inside the container
and re-packed with valid CRCs, so nothing is stopped by a CRC check. Besides the structural
mutations above it appends, inserts, drops or rewrites words inside a coded stream, rewrites
metadata records (kinds, lengths, EXIF and ICC bytes, TIFF-looking garbage) and alpha
streams; seeds include both entropy methods and files with ICC + EXIF. A file that decodes
is then written as PNG, TIFF, JPEG or WebP, as ``lcodec decode`` does, so the metadata
parsers and writers see the mutated records too.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import resource
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from lcodec import api, container, sidecar
from lcodec.container import SectionType
from lcodec.correction import Correction
from lcodec.encoder import correction_choice
from lcodec.encoder.correction_choice import fit
from lcodec.encoder.draft import Draft
from lcodec.errors import LcodecError

MAX_PIXELS = 1 << 16  # the harness's decompression-bomb limit: keeps every case fast



def with_fix(data: bytes, fix: Correction) -> bytes:
    """``data`` (a file) with ``fix`` as its CORRECTION section."""
    return container.pack(correction_choice.with_fix(Draft(container.unpack(data)), fix).lic)


def seed_files() -> list[bytes]:
    rng = np.random.default_rng(1)
    smooth = np.cumsum(rng.integers(-8, 9, (24, 32, 3)), axis=1)
    rgb = np.clip(smooth + 128, 0, 255).astype(np.uint8)
    from PIL import Image

    rgba = Image.fromarray(rgb).convert("RGBA")
    plain = api.encode(rgb, knob=0.3, correction=False)
    shifted = np.clip(rgb.astype(int) + 6, 0, 255).astype(np.uint8)  # a cast to correct
    fix = fit(shifted, api.decode_array(plain), 2, 4, 8)
    return [
        api.encode(rgb, knob=0.3),
        with_fix(plain, fix),  # a CORRECTION section (format 1.3)
        api.encode(rgb[:9, :13].copy(), knob=-0.2),
        api.encode(Image.fromarray(rgb).convert("L"), knob=0.0),
        api.encode(rgba, knob=0.1),
    ]


def structured_seed_files() -> list[bytes]:
    """Seeds for the structure-aware mode: both entropy methods, metadata and alpha."""
    from PIL import Image, ImageCms

    rng = np.random.default_rng(2)
    smooth = np.cumsum(rng.integers(-8, 9, (24, 32, 3)), axis=1)
    rgb = np.clip(smooth + 128, 0, 255).astype(np.uint8)
    im = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x010F] = "fuzz camera"
    exif[0x0132] = "2026:12:01 12:00:00"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    with_meta = api.as_source(im)
    with_meta.icc, with_meta.exif = icc, exif.tobytes()
    with_meta.xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    rgba = im.convert("RGBA")
    rgba.putalpha(Image.fromarray(rgb[..., 0]))
    out = [api.encode(with_meta, knob=0.2), api.encode(rgba, knob=0.0),
           api.encode(im.convert("LA"), knob=-0.1)]
    for seed in seed_files()[:2]:
        out.append(seed)
    with contextlib.suppress(LcodecError):  # no TCAE installed: static seeds only
        out.append(api.encode(with_meta, knob=0.1, entropy="tcae"))
    return out


def _mutate_words(p: bytearray, rng: np.random.Generator) -> bytearray:
    """Append, insert, drop or rewrite 32-bit words of a range-coded stream."""
    words = len(p) // 4
    op = rng.integers(4)
    extra = rng.bytes(4 * int(rng.integers(1, 4))) if rng.random() < 0.7 else bytes(4)
    if op == 0:
        return p + extra
    at = 4 * int(rng.integers(words + 1))
    if op == 1:
        return p[:at] + extra + p[at:]
    if op == 2 and words:
        return p[:at] + p[at + 4:]
    if words:
        at = 4 * int(rng.integers(words))
        p[at : at + 4] = rng.bytes(4)
    return p


def _mutate_metadata(p: bytes, rng: np.random.Generator) -> bytes:
    """Rewrite the records of a METADATA payload (or make one)."""
    try:
        records = sidecar.unpack_metadata(p)
    except LcodecError:
        records = {}
    icc, exif, xmp = records.get("icc"), records.get("exif"), records.get("xmp")
    op = rng.integers(7)
    if op == 0 and exif:  # flip bytes inside the EXIF block
        b = bytearray(exif)
        for _ in range(rng.integers(1, 6)):
            b[rng.integers(len(b))] ^= int(rng.integers(1, 256))
        exif = bytes(b)
    elif op == 1:  # TIFF-looking garbage
        exif = (b"II*\x00" if rng.random() < 0.5 else b"MM\x00*") + rng.bytes(
            int(rng.integers(0, 120)))
    elif op == 2 and icc:
        b = bytearray(icc)
        for _ in range(rng.integers(1, 6)):
            b[rng.integers(len(b))] ^= int(rng.integers(1, 256))
        icc = bytes(b)
    elif op == 3:
        icc = rng.bytes(int(rng.integers(0, 300)))
    elif op == 4:  # a record whose kind or length is wrong
        blob = sidecar.pack_metadata(icc, exif, xmp) or b"\x02\x04\x00\x00\x00abcd"
        b = bytearray(blob)
        b[int(rng.integers(min(len(b), 5)))] = int(rng.integers(256))
        return bytes(b)
    elif op == 5:  # an XMP packet of any bytes (UTF-8 or not), or XML-looking text
        xmp = rng.bytes(int(rng.integers(0, 200))) if rng.random() < 0.5 else (
            b"<x:xmpmeta>" + bytes(rng.integers(32, 127, int(rng.integers(0, 120)),
                                                dtype=np.uint8)))
    else:
        exif = rng.bytes(int(rng.integers(0, 80)))
    return sidecar.pack_metadata(icc, exif, xmp)


def _mutate_alpha(p: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(p)
    if rng.random() < 0.3 and b:
        b[0] = int(rng.integers(256))  # the method byte
    elif rng.random() < 0.5:
        return bytes([sidecar.ALPHA_ZLIB_UP]) + zlib.compress(
            rng.bytes(int(rng.integers(0, 2000))))
    elif b:
        for _ in range(rng.integers(1, 4)):
            b[rng.integers(len(b))] ^= int(rng.integers(1, 256))
    return bytes(b)


CODED = (SectionType.IMPORTANCE, SectionType.LUMA, SectionType.CHROMA)


def mutate_structured(data: bytes, rng: np.random.Generator) -> bytes:
    """A structure-aware mutation, re-packed with valid CRCs."""
    kind = rng.integers(7)
    if kind >= 5:
        return _mutate_packed(data, rng, 4 + int(rng.integers(4)))
    lic = container.unpack(data)
    sections = dict(lic.sections)
    coded = [t for t in CODED if t in sections]
    if kind in (0, 1) and coded:
        t = coded[rng.integers(len(coded))]
        sections[t] = bytes(_mutate_words(bytearray(sections[t]), rng))
    elif kind == 2:
        sections[SectionType.METADATA] = _mutate_metadata(
            sections.get(SectionType.METADATA, b""), rng)
    elif kind == 3:
        sections[SectionType.ALPHA] = _mutate_alpha(sections.get(SectionType.ALPHA, b"\x01"),
                                                    rng)
    elif coded:  # swap two coded streams of the same file
        a, b = rng.choice(len(coded), 2) if len(coded) > 1 else (0, 0)
        sections[coded[a]], sections[coded[b]] = sections[coded[b]], sections[coded[a]]
    return container.pack(container.LicFile(lic.header, sections))


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    return _mutate_packed(data, rng, int(rng.integers(8)))


def _mutate_packed(data: bytes, rng: np.random.Generator, kind: int) -> bytes:
    b = bytearray(data)
    if kind == 0:  # flip a few bytes
        for _ in range(rng.integers(1, 9)):
            b[rng.integers(len(b))] ^= int(rng.integers(1, 256))
        return bytes(b)
    if kind == 1:
        return bytes(b[: rng.integers(len(b))])
    if kind == 2:
        return bytes(b) + rng.bytes(int(rng.integers(1, 64)))
    if kind == 3:
        at = int(rng.integers(len(b)))
        return bytes(b[:at] + rng.bytes(int(rng.integers(1, 16))) + b[at:])
    lic = container.unpack(data)
    sections = dict(lic.sections)
    hdr = lic.header
    if kind == 4 and sections:  # mutate one payload, keep valid CRCs
        t = list(sections)[rng.integers(len(sections))]
        p = bytearray(sections[t])
        for _ in range(rng.integers(1, 5)):
            if p:
                p[rng.integers(len(p))] ^= int(rng.integers(1, 256))
        sections[t] = bytes(p)
    elif kind == 5 and sections:  # replace or drop a payload
        t = list(sections)[rng.integers(len(sections))]
        if rng.random() < 0.5:
            del sections[t]
        else:
            sections[t] = rng.bytes(int(rng.integers(0, 200)))
    elif kind == 6:  # change header fields
        hdr = dataclasses.replace(
            hdr,
            width=int(rng.integers(1, 300)) if rng.random() < 0.5 else hdr.width,
            height=int(rng.integers(1, 200)) if rng.random() < 0.5 else hdr.height,
            colour_mode=container.ColourMode(int(rng.integers(3))),
        )
    else:  # move a payload to another section type
        if sections:
            src = list(sections)[rng.integers(len(sections))]
            dst = container.SectionType(int(rng.choice([1, 2, 3, 4, 5, 8])))
            sections[dst] = sections.pop(src)
    return container.pack(container.LicFile(hdr, sections))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


WRITE_FORMATS = ("PNG", "TIFF", "JPEG", "WEBP")


def decode_and_write(data: bytes, rng: np.random.Generator) -> None:
    """What ``lcodec decode`` does with a file: decode, then write an image format."""
    from lcodec.imageio import encode_image

    im, _ = api.decode_with_notices(data, max_pixels=MAX_PIXELS)
    fmt = WRITE_FORMATS[rng.integers(len(WRITE_FORMATS))]
    if fmt == "JPEG" and im.mode in ("RGBA", "LA"):
        fmt = "PNG"
    encode_image(im, fmt, im.info.get("icc_profile"), im.info.get("exif"), im.info.get("xmp"))


def run(cases: int, seed: int = 0, max_seconds: float = 2.0, max_rss_mb: float = 3000,
        verbose: bool = False, structured: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    seeds = structured_seed_files() if structured else seed_files()
    mutator = mutate_structured if structured else mutate
    for s in seeds:  # the seeds themselves must decode
        api.decode_full(s, max_pixels=MAX_PIXELS)
    counts = {"decoded": 0, "rejected": 0}
    failures: list[str] = []
    slowest = 0.0
    t0 = time.perf_counter()
    for i in range(cases):
        data = mutator(seeds[i % len(seeds)], rng)
        start = time.process_time()
        try:
            if structured:
                decode_and_write(data, rng)
            else:
                api.decode_full(data, max_pixels=MAX_PIXELS)
            counts["decoded"] += 1
        except LcodecError:
            counts["rejected"] += 1
        except Exception as exc:  # noqa: BLE001 - the point of fuzzing
            failures.append(f"case {i}: {type(exc).__name__}: {exc}")
        took = time.process_time() - start
        slowest = max(slowest, took)
        if took > max_seconds:
            failures.append(f"case {i}: took {took:.2f} CPU s")
        if verbose and i % 1000 == 999:
            print(f"{i + 1} cases, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if rss_mb() > max_rss_mb:
        failures.append(f"peak RSS {rss_mb():.0f} MB over {max_rss_mb} MB")
    return {"cases": cases, **counts, "failures": failures, "slowest_s": slowest,
            "seconds": time.perf_counter() - t0, "peak_rss_mb": rss_mb()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--structured", action="store_true",
                    help="structure-aware mode: mutate inside sections, recompute CRCs")
    args = ap.parse_args(argv)
    res = run(args.cases, args.seed, verbose=True, structured=args.structured)
    for f in res["failures"][:20]:
        print(f, file=sys.stderr)
    mode = "structure-aware " if args.structured else ""
    print(f"{res['cases']} {mode}cases in {res['seconds']:.0f} s: {res['decoded']} decoded, "
          f"{res['rejected']} rejected with LcodecError, {len(res['failures'])} failures; "
          f"slowest {res['slowest_s']:.3f} CPU s, peak RSS {res['peak_rss_mb']:.0f} MB")
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    raise SystemExit(main())
