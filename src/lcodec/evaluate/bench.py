"""Speed and memory of lcodec, stage by stage, next to JPEG, WebP and AVIF (``make bench``).

``python -m lcodec.evaluate.bench [IMAGES…] [--knob K | --bpp B] [--device cpu|cuda|all]
[--entropy auto|static|tcae]``

For each image (default: the Kodak folder ``../shared/data/kodak`` beside the checkout) it
times one lcodec encode and one decode, split into stages. The entropy method is the one
``codec.analyse(…, entropy=--entropy)`` picks (auto: the method the model's card records as
coding its symbols smaller, see ``codec.coder_for_encoding``); it is printed with each table.

encode
  network      RGB → tensor, padding, RGB→YCbCr, encoder networks (``codec.analyse``),
               LCMQ quantization and importance mask at the knob (``net.quantize``), and
               moving the codes to numpy.
  probs        entropy-model probabilities: the contexts of every symbol and its frequency
               row (static context: table look-ups; TCAE: the prefix masks and the integer
               networks' one forward pass, ``IntTcae.frequency_rows``).
  coding       range coding of those symbols with constriction.
  container    alpha/metadata side sections, header, framing and CRCs (``container.pack``).
decode
  container    parsing and CRC checks (``container.unpack``), model look-up (cached), side
               sections.
  probs        contexts and frequency rows of each batch of symbols (interleaved with coding:
               the contexts of channel k need the decoded channels before it; TCAE: the
               per-plane network work of ``IntTcae.decode``, plane t needs planes < t).
  coding       range decoding (the constriction calls, charged by ``entropy/coder.py``
               itself; for the TCAE interleaved plane by plane with the network work).
  network      codes → decoder networks → YCbCr→RGB → uint8 (``codec.reconstruct``).

The stages are the codec's own: ``codec.analyse``, ``Analysis.encode`` and ``codec.decode``
take a stage timer, and the range coder (``entropy/coder.py``) charges its calls to
"coding" inside the entropy method's "probs" (``timed_coding``), so every entropy method is
timed through its real path with no copy of it here.

Memory: the peak resident set size (RSS) of the whole process (Python, numpy, torch CPU
allocations and libraries) during each encode and decode, sampled every 2 ms from
``/proc/self/statm`` (elsewhere only ``resource.getrusage`` ru_maxrss, the process-lifetime
peak, is available and is printed at the end); on CUDA also ``torch.cuda.max_memory_allocated``.

The command line (``--cli N``, default 2 images): what ``time lcodec encode``/``decode`` shows
a user, i.e. the wall time of the real commands as subprocesses (``IMG → .lic`` at the same
knob, ``.lic → .png``), next to the start-up every command pays before its first pixel
(Python, ``import torch``, loading the model: a subprocess that does only that) and the
in-process times above. CLI − start-up − in-process is the PNG reading/writing and the
checks of the command (``encode`` also verifies its file by decoding the symbols).

Times are the best of ``--repeat`` runs after one untimed warm-up. The baselines are timed on
the same images at the setting of their ``lcodec eval`` sweep whose bpp is closest to lcodec's
file, and shown as ratios (lcodec seconds / codec seconds).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lcodec.errors import LcodecError

ENCODE_STAGES = ("network", "probs", "coding", "container")
DECODE_STAGES = ("container", "probs", "coding", "network")
DEFAULT_BASELINES = ("jpeg", "webp", "avif")
DEFAULT_IMAGES = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "kodak"


# --- timing and memory ---------------------------------------------------------------------

class StageTimer:
    """Accumulates seconds per stage; ``sync`` runs before each reading (CUDA synchronize).

    Stages nest: while an inner stage runs, the outer one's clock is paused, so each second
    is counted in exactly one stage.
    """

    def __init__(self, sync: Callable[[], None] = lambda: None) -> None:
        self.seconds: dict[str, float] = {}
        self.sync = sync
        self._stack: list[str] = []
        self._since = 0.0

    def _lap(self) -> float:
        """Charge the time since the last reading to the running stage; returns now."""
        self.sync()
        now = time.perf_counter()
        if self._stack:
            stage = self._stack[-1]
            self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._since
        self._since = now
        return now

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        self._lap()
        self._stack.append(stage)
        try:
            yield
        finally:
            self._lap()
            self._stack.pop()


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class RssPeak:
    """Peak RSS of this process while the block runs (a thread samples every ``interval``)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes() or 0)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssPeak:
        self.peak = _rss_bytes() or 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes() or 0)


def max_rss_lifetime() -> int:
    """Process-lifetime peak RSS in bytes (getrusage: kB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


# --- entropy stages, one class per entropy method ---------------------------------------------

# --- one lcodec encode and decode, stage by stage --------------------------------------------

@dataclass
class LcodecTiming:
    image: str
    bytes: int
    bpp: float
    encode: dict[str, float]
    decode: dict[str, float]
    rss_encode: int
    rss_decode: int
    entropy: str = ""  # EntropyMethod name of the file
    gpu_encode: int | None = None
    gpu_decode: int | None = None
    pixels: np.ndarray | None = field(default=None, repr=False)


def _sync_for(device: str) -> Callable[[], None]:
    if device == "cuda":
        import torch

        return torch.cuda.synchronize
    return lambda: None


def encode_stages(loaded, src, knob: float, t: StageTimer, entropy: str = "auto") -> bytes:
    """``codec.analyse(entropy=entropy)`` (network) + ``Analysis.encode(knob)``, the codec's
    own path, timed by the stages it reports to ``t``."""
    from lcodec import codec

    with t("network"):
        analysis = codec.analyse(loaded, src, entropy)
    return analysis.encode(knob, timer=t)


def decode_stages(data: bytes, device: str, t: StageTimer) -> np.ndarray:
    """``api.decode_full``'s path (parse, model look-up, ``codec.decode``) timed by stage."""
    from lcodec import codec, container, models

    with t("container"):
        lic = container.unpack(data)
        loaded = models.load(models.find(model_id=lic.header.model_id), device)
    return codec.decode(loaded, lic, timer=t).pixels


def time_lcodec(path: Path, loaded, knob: float, device: str, repeat: int,
                entropy: str = "auto") -> LcodecTiming:
    """Best-of-``repeat`` stage times of one encode and one decode of ``path`` with the
    entropy method ``codec.analyse(…, entropy)`` picks."""
    import torch

    from lcodec import container
    from lcodec.imageio import load_image

    src = load_image(path, str(path))  # as `lcodec encode` reads it
    sync = _sync_for(device)
    best_enc: dict[str, float] | None = None
    best_dec: dict[str, float] | None = None
    rss_e = rss_d = 0
    gpu_e = gpu_d = None
    data = b""
    pixels = None
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        te = StageTimer(sync)
        with RssPeak() as rp:
            data = encode_stages(loaded, src, knob, te, entropy)
        rss_e = max(rss_e, rp.peak)
        if device == "cuda":
            gpu_e = max(gpu_e or 0, torch.cuda.max_memory_allocated())
            torch.cuda.reset_peak_memory_stats()
        td = StageTimer(sync)
        with RssPeak() as rp:
            pixels = decode_stages(data, device, td)
        rss_d = max(rss_d, rp.peak)
        if device == "cuda":
            gpu_d = max(gpu_d or 0, torch.cuda.max_memory_allocated())
        if best_enc is None or sum(te.seconds.values()) < sum(best_enc.values()):
            best_enc = te.seconds
        if best_dec is None or sum(td.seconds.values()) < sum(best_dec.values()):
            best_dec = td.seconds
    h, w = src.rgb.shape[:2]
    method = container.unpack(data).header.entropy_method.name
    return LcodecTiming(path.name, len(data), len(data) * 8 / (w * h), best_enc or {},
                        best_dec or {}, rss_e, rss_d, method, gpu_e, gpu_d, pixels)


# --- the command line --------------------------------------------------------------------

@dataclass
class CliTiming:
    image: str
    startup_s: float
    encode_s: float
    decode_s: float


def _wall(cmd: list[str], repeat: int, env: dict[str, str]) -> float:
    import subprocess

    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
    return float(best)


def time_cli(path: Path, model_stem: str, knob: float, repeat: int, threads: int,
             entropy: str = "auto") -> CliTiming:
    """Wall seconds of ``lcodec encode``/``decode`` run as a user runs them, and of a
    process that only starts up (imports torch and loads the model)."""
    import tempfile

    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    script = Path(sys.executable).with_name("lcodec")  # the command users run
    py = [str(script)] if script.exists() else [sys.executable, "-m", "lcodec.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        lic, png = str(Path(tmp) / "a.lic"), str(Path(tmp) / "a.png")
        startup = _wall([sys.executable, "-c",
                         "import lcodec.api, lcodec.models as m; "
                         f"m.load(m.find({model_stem!r}), 'cpu')"], repeat, env)
        enc = _wall([*py, "encode", str(path), lic, "--knob", str(knob), "--model",
                     model_stem, "--entropy", entropy, "--force", "-q"], repeat, env)
        dec = _wall([*py, "decode", lic, png, "--force", "-q"], repeat, env)
    return CliTiming(path.name, startup, enc, dec)


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


# --- baselines ---------------------------------------------------------------------------

@dataclass
class BaselineTiming:
    codec: str
    setting: float
    bpp: float
    encode_s: float
    decode_s: float


def time_baseline(name: str, rgb: np.ndarray, bpp: float, repeat: int) -> BaselineTiming:
    """Time the codec at the sweep setting whose bpp is nearest ``bpp`` (bisection on the
    sweep, which is monotone in rate)."""
    from lcodec.evaluate import baselines

    b = baselines.get(name)
    px = rgb.shape[0] * rgb.shape[1]
    sizes: dict[float, float] = {}

    def rate(s: float) -> float:
        if s not in sizes:
            sizes[s] = len(b.encode(rgb, s)) * 8 / px
        return sizes[s]

    settings = sorted(b.settings, key=lambda s: s if b.setting_name != "distance" else -s)
    lo, hi = 0, len(settings) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if rate(settings[mid]) < bpp:
            lo = mid
        else:
            hi = mid
    best = min((settings[lo], settings[hi]), key=lambda s: abs(np.log(rate(s) / bpp)))
    enc = dec = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        data = b.encode(rgb, best)
        t1 = time.perf_counter()
        b.decode(data)
        t2 = time.perf_counter()
        enc, dec = min(enc, t1 - t0), min(dec, t2 - t1)
    return BaselineTiming(name, best, len(data) * 8 / px, enc, dec)


# --- report ------------------------------------------------------------------------------

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


def _images(paths: list[str]) -> list[Path]:
    from lcodec.evaluate.runner import collect_images

    if not paths:
        if not DEFAULT_IMAGES.is_dir():
            raise LcodecError(f"no images given and {DEFAULT_IMAGES.resolve()} does not exist; "
                              "give image files or folders")
        paths = [str(DEFAULT_IMAGES)]
    return collect_images(paths)


def run(args: argparse.Namespace, out=print) -> None:
    import torch

    from lcodec import api, codec, models
    from lcodec.container import EntropyMethod
    from lcodec.evaluate import baselines
    from lcodec.imageio import load_image
    from lcodec.ratecontrol import fit_budget, fit_budget_two_stage

    images = _images(args.images)[: args.limit or None]
    if args.threads:
        torch.set_num_threads(args.threads)
    rss0 = _rss_bytes()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if args.device == "all" and not torch.cuda.is_available():
        devices = ["cpu"]
    for d in devices:
        api.resolve_device(d)
    names = [n for n in args.baselines.split(",") if n]
    for n in names:
        reason = baselines.get(n).available()
        if reason:
            raise LcodecError(reason)
    info = models.find(args.model)
    coder = codec.coder_for_encoding(models.load(info, "cpu"), args.entropy)  # fails early
    ent = coder.method.name
    if any(coder.entropy_id):
        ent += f" {coder.entropy_id.hex()}"
    rate = f"knob {args.knob:g}" if args.bpp is None else f"bpp ≤ {args.bpp:g}"
    out(f"# lcodec bench: model {info.name} ({info.model_id.hex()}), entropy {ent} "
        f"(--entropy {args.entropy}), {rate}, {len(images)} images")
    out(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeat} after a "
        "warm-up; seconds.")
    cpu_rows: list[LcodecTiming] = []
    for device in devices:
        loaded = models.load(info, device)
        knobs = {}
        if args.bpp is not None:  # untimed: the knob that meets the budget on each image
            for p in images:  # (the search of api.encode_full)
                src = load_image(p, str(p))
                budget = int(args.bpp * src.width * src.height / 8)
                a = codec.analyse(loaded, src, args.entropy)
                if a.coder.method == EntropyMethod.STATIC_CONTEXT_V1:
                    knobs[p] = fit_budget(a.encode, budget).knob
                else:
                    knobs[p] = fit_budget_two_stage(a.encode_static, a.encode, budget).knob
        time_lcodec(images[0], loaded, knobs.get(images[0], args.knob), device, 1,
                    args.entropy)  # warm-up
        rows = [time_lcodec(p, loaded, knobs.get(p, args.knob), device, args.repeat,
                            args.entropy) for p in images]
        out("")
        out(f"## lcodec on {device} ({', '.join(sorted({r.entropy for r in rows}))}): "
            "stage seconds and peak memory")
        out("")
        out(stage_table(rows, device))
        out("")
        out(entropy_note(rows))
        if device == "cpu":
            cpu_rows = rows
        else:
            ref = cpu_rows or None
            if ref:
                same = all(np.array_equal(a.pixels, b.pixels) for a, b in zip(ref, rows,
                                                                               strict=True))
                out("")
                out(f"CUDA decodings {'equal' if same else 'differ from'} the CPU ones "
                    "(the bytes are checked equal by construction).")
    if args.cli and cpu_rows:
        cli = [time_cli(p, info.path.stem, knobs.get(p, args.knob), args.repeat, args.threads,
                        args.entropy) for p in images[: args.cli]]
        out("")
        out("## The command line: wall seconds of `lcodec encode`/`decode` as subprocesses, "
            "their start-up, and the in-process times above")
        out("")
        out(cli_table(cli, cpu_rows))
    if names:
        rows = cpu_rows or rows
        base: dict[str, list[BaselineTiming]] = {n: [] for n in names}
        for p, r in zip(images, rows, strict=True):
            rgb = load_image(p, str(p), alpha="drop", strip=True).rgb
            for n in names:
                base[n].append(time_baseline(n, rgb, r.bpp, args.repeat))
        label = "CPU" if cpu_rows else devices[-1]
        out("")
        out(f"## lcodec ({label}) vs traditional codecs at the nearest bpp: seconds "
            "(lcodec seconds / codec seconds)")
        out("")
        out(ratio_table(rows, base))
    out("")
    start = "" if rss0 is None else f"; RSS before loading the model: {rss0 / 2**20:.0f} MB"
    out(f"Process-lifetime peak RSS (getrusage): {max_rss_lifetime() / 2**20:.0f} MB{start}.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lcodec.evaluate.bench",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="*", help="image files or folders (default: Kodak)")
    rate = ap.add_mutually_exclusive_group()
    rate.add_argument("--knob", type=float, default=0.0, help="rate knob in [-1, 1] (0)")
    rate.add_argument("--bpp", type=float, default=None,
                      help="find each image's knob for this bpp first (untimed)")
    ap.add_argument("--model", default=None, help="model name (default model if omitted)")
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                    help="cpu, cuda, or all = cpu and cuda when available (default)")
    ap.add_argument("--entropy", choices=["auto", "static", "tcae"], default="auto",
                    help="entropy method, as `lcodec encode --entropy`: auto = the one the "
                         "model's card records as smaller (default), static = context "
                         "tables, tcae = inclined TCAE")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per image (best kept)")
    ap.add_argument("--baselines", default=",".join(DEFAULT_BASELINES),
                    help="comma-separated codecs to compare with ('' for none)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    ap.add_argument("--cli", type=int, default=2,
                    help="also time the real commands on the first N images (0: no)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    try:
        run(args)
    except LcodecError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
