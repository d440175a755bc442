"""Fuzzing the decoder with mutated `.lic` files: ``python tests/fuzzing.py --cases 10000``.

Each case either decodes or raises :class:`LcodecError`; any other exception, a case slower
than ``--max-seconds``, or resident memory growing past ``--max-rss-mb`` is a failure.

Mutations: raw (byte flips, truncation, extension, insertion, deletion — caught by framing
and CRCs) and structural (a section's payload mutated or replaced, sections dropped or
swapped, header fields changed, then re-packed with valid CRCs, so the entropy decoder and
the networks see garbage symbols). Seed files are small images coded with the default model.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

import numpy as np

from lcodec import api, container
from lcodec.errors import LcodecError

MAX_PIXELS = 1 << 16  # the harness's decompression-bomb limit: keeps every case fast


def seed_files() -> list[bytes]:
    rng = np.random.default_rng(1)
    smooth = np.cumsum(rng.integers(-8, 9, (24, 32, 3)), axis=1)
    rgb = np.clip(smooth + 128, 0, 255).astype(np.uint8)
    from PIL import Image

    rgba = Image.fromarray(rgb).convert("RGBA")
    return [
        api.encode(rgb, knob=0.3),
        api.encode(rgb[:9, :13].copy(), knob=-0.2),
        api.encode(Image.fromarray(rgb).convert("L"), knob=0.0),
        api.encode(rgba, knob=0.1),
    ]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    kind = rng.integers(8)
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
            dst = container.SectionType(int(rng.integers(1, 6)))
            sections[dst] = sections.pop(src)
    return container.pack(container.LicFile(hdr, sections))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(cases: int, seed: int = 0, max_seconds: float = 2.0, max_rss_mb: float = 3000,
        verbose: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    seeds = seed_files()
    for s in seeds:  # the seeds themselves must decode
        api.decode_full(s, max_pixels=MAX_PIXELS)
    counts = {"decoded": 0, "rejected": 0}
    failures: list[str] = []
    slowest = 0.0
    t0 = time.perf_counter()
    for i in range(cases):
        data = mutate(seeds[i % len(seeds)], rng)
        start = time.perf_counter()
        try:
            api.decode_full(data, max_pixels=MAX_PIXELS)
            counts["decoded"] += 1
        except LcodecError:
            counts["rejected"] += 1
        except Exception as exc:  # noqa: BLE001 - the point of fuzzing
            failures.append(f"case {i}: {type(exc).__name__}: {exc}")
        took = time.perf_counter() - start
        slowest = max(slowest, took)
        if took > max_seconds:
            failures.append(f"case {i}: took {took:.2f} s")
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
    args = ap.parse_args(argv)
    res = run(args.cases, args.seed, verbose=True)
    for f in res["failures"][:20]:
        print(f, file=sys.stderr)
    print(f"{res['cases']} cases in {res['seconds']:.0f} s: {res['decoded']} decoded, "
          f"{res['rejected']} rejected with LcodecError, {len(res['failures'])} failures; "
          f"slowest {res['slowest_s']:.3f} s, peak RSS {res['peak_rss_mb']:.0f} MB")
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    raise SystemExit(main())
