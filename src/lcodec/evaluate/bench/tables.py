"""The bench's report: Markdown tables of stage seconds and memory, of the command line, and
of lcodec against the traditional codecs, and the entropy methods' footnote."""

from __future__ import annotations

import numpy as np

from lcodec.evaluate.bench.baseline_times import BaselineTiming
from lcodec.evaluate.bench.cli_times import CliTiming, EffortTiming
from lcodec.evaluate.bench.stages import DECODE_STAGES, ENCODE_STAGES, LcodecTiming


def _times(lcodec_s: float, codec_s: float) -> str:
    return f"×{lcodec_s / codec_s:.3g}" if codec_s > 0 else "×inf"


def _mb(n: int | None) -> str:
    return "–" if n is None else f"{n / 2**20:.0f}"


def stage_table(rows: list[LcodecTiming], device: str) -> str:
    head = (["image", "bpp"] + [f"enc {s}" for s in ENCODE_STAGES] + ["enc total"]
            + [f"dec {s}" for s in DECODE_STAGES] + ["dec total", "peak RSS enc MB",
                                                     "peak RSS dec MB"])
    if device == "cuda":
        head += ["peak GPU enc MB", "peak GPU dec MB"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]

    def line(name: str, bpp: float, enc: dict, dec: dict, re: float, rd: float,
             ge: float | None, gd: float | None) -> str:
        cells = [name, f"{bpp:.4f}"]
        cells += [f"{enc.get(s, 0.0):.3f}" for s in ENCODE_STAGES] + [f"{sum(enc.values()):.3f}"]
        cells += [f"{dec.get(s, 0.0):.3f}" for s in DECODE_STAGES] + [f"{sum(dec.values()):.3f}"]
        cells += [_mb(int(re)), _mb(int(rd))]
        if device == "cuda":
            cells += [_mb(None if ge is None else int(ge)), _mb(None if gd is None else int(gd))]
        return "| " + " | ".join(cells) + " |"

    for r in rows:
        lines.append(line(r.image, r.bpp, r.encode, r.decode, r.rss_encode, r.rss_decode,
                          r.gpu_encode, r.gpu_decode))

    def mean_stage(attr: str, stages: tuple[str, ...]) -> dict[str, float]:
        return {s: float(np.mean([getattr(r, attr).get(s, 0.0) for r in rows])) for s in stages}

    ge = [r.gpu_encode for r in rows if r.gpu_encode is not None]
    gd = [r.gpu_decode for r in rows if r.gpu_decode is not None]
    lines.append(line("**mean** (memory: max)", float(np.mean([r.bpp for r in rows])),
                      mean_stage("encode", ENCODE_STAGES), mean_stage("decode", DECODE_STAGES),
                      max(r.rss_encode for r in rows), max(r.rss_decode for r in rows),
                      max(ge) if ge else None, max(gd) if gd else None))
    return "\n".join(lines)



def cli_table(cli: list[CliTiming], rows: list[LcodecTiming]) -> str:
    head = ["image", "start-up", "CLI encode", "in-process encode", "CLI decode",
            "in-process decode"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cli:
        r = next(r for r in rows if r.image == c.image)
        lines.append(f"| {c.image} | {c.startup_s:.2f} | {c.encode_s:.2f} | "
                     f"{sum(r.encode.values()):.2f} | {c.decode_s:.2f} | "
                     f"{sum(r.decode.values()):.2f} |")
    return "\n".join(lines)



def effort_table(rows: list[EffortTiming]) -> str:
    """Effort → mean CLI encode seconds and bpp, and the seconds against the lowest effort."""
    lines = ["| effort | CLI encode s (mean) | × effort " + str(rows[0].effort) + " | bpp (mean) |",
             "|---:|---:|---:|---:|"]
    first = float(np.mean(rows[0].encode_s))
    for r in rows:
        enc = float(np.mean(r.encode_s))
        lines.append(f"| {r.effort} | {enc:.2f} | {enc / first:.1f}× | "
                     f"{float(np.mean(r.bpp)):.4f} |")
    return "\n".join(lines)


def ratio_table(rows: list[LcodecTiming], base: dict[str, list[BaselineTiming]]) -> str:
    names = list(base)
    head = ["image", "lcodec enc s", "lcodec dec s"]
    for n in names:
        head += [f"{n} q (bpp)", f"{n} enc s (lcodec ×)", f"{n} dec s (lcodec ×)"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]

    def cells(enc: float, dec: float, bts: list[BaselineTiming | None]) -> list[str]:
        out = [f"{enc:.3f}", f"{dec:.3f}"]
        for bt in bts:
            if bt is None:
                out += ["", "", ""]
                continue
            out += [f"{bt.setting:g} ({bt.bpp:.3f})",
                    f"{bt.encode_s:.4f} ({_times(enc, bt.encode_s)})",
                    f"{bt.decode_s:.4f} ({_times(dec, bt.decode_s)})"]
        return out

    for i, r in enumerate(rows):
        enc, dec = sum(r.encode.values()), sum(r.decode.values())
        lines.append("| " + " | ".join([r.image, *cells(enc, dec, [base[n][i] for n in names])])
                     + " |")
    enc = float(np.mean([sum(r.encode.values()) for r in rows]))
    dec = float(np.mean([sum(r.decode.values()) for r in rows]))
    means = []
    for n in names:
        bts = base[n]
        means.append(BaselineTiming(n, float("nan"), float(np.mean([b.bpp for b in bts])),
                                    float(np.mean([b.encode_s for b in bts])),
                                    float(np.mean([b.decode_s for b in bts]))))
    mean_cells = cells(enc, dec, means)
    for k in range(len(names)):
        mean_cells[2 + 3 * k] = f"({means[k].bpp:.3f})"
    lines.append("| **mean** | " + " | ".join(mean_cells) + " |")
    return "\n".join(lines)


ENTROPY_NOTES = {
    "STATIC_CONTEXT_V1": "probs = context look-ups in the static tables; coding = constriction "
                         "range coding (decode: interleaved per channel, timed apart).",
    "INCLINED_TCAE_V1": "probs = the integer TCAE networks (encode: one forward pass giving "
                        "all frequency rows; decode: the per-plane network work of "
                        "IntTcae.decode); coding = the constriction calls (decode: interleaved "
                        "plane by plane with the network, timed apart by the range coder "
                        "itself).",
}


def entropy_note(rows: list[LcodecTiming]) -> str:
    """Footnote of a stage table: the entropy method(s) of the files and the probs/coding
    split."""
    methods = sorted({r.entropy for r in rows})
    other = "probs = the entropy model; coding = constriction."
    return " ".join(f"Entropy method {m}: {ENTROPY_NOTES.get(m, other)}" for m in methods)
