"""Click commands of the evaluation tools: ``lcodec eval``.

Registered in :mod:`lcodec.cli` with ``cli.add_command(eval_command)``. Importing this module
imports only click; numpy, torch and the codecs load when the command runs.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from lcodec.effort import DEFAULT_EFFORT, MAX_EFFORT, MIN_EFFORT
from lcodec.errors import LcodecError

ALL_CODECS = "lcodec,jpeg,webp,jpeg2000,avif,heic,jxl"


def parse_codecs(text: str) -> list[str]:
    """'lcodec, jpeg' -> ['lcodec', 'jpeg']; LcodecError on unknown or repeated names."""
    from lcodec.evaluate.baselines import ALL_CODECS as known

    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise LcodecError("--codecs is empty; give e.g. --codecs lcodec,jpeg,webp")
    for n in names:
        if n not in known:
            raise LcodecError(f"unknown codec {n!r} in --codecs; choose from {', '.join(known)}")
    if len(set(names)) != len(names):
        raise LcodecError("a codec is named twice in --codecs; name each once")
    return names


def parse_range(text: str) -> tuple[float, float]:
    """'0.1,1.0' -> (0.1, 1.0); LcodecError unless 0 < lo < hi."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise LcodecError(f"--range must be two bpp values like 0.1,1.0, not {text!r}") from None
    if not 0 < lo < hi:
        raise LcodecError(f"--range needs 0 < low < high, not {text!r}")
    return lo, hi


@click.command("eval")
@click.argument("images", nargs=-1, required=True, metavar="IMAGES…")
@click.option("--codecs", default=ALL_CODECS, show_default=True,
              help="Comma-separated codecs to sweep.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the CSVs, plots, crops and results.md.")
@click.option("--anchor", default="jpeg", show_default=True,
              help="Codec the BD-rates are measured against.")
@click.option("--range", "rate_range", default="0.1,1.0", show_default=True,
              help="bpp range of the BD-rates, LOW,HIGH.")
@click.option("--model", default=None, help="lcodec model name (see `lcodec models`).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu",
              show_default=True, help="Where lcodec's networks run.")
@click.option("--crops", is_flag=True,
              help="Also write side-by-side crops of every codec at a matched bpp.")
@click.option("--crop-bpp", type=click.FloatRange(min=0, min_open=True), default=0.25,
              show_default=True, help="Target bpp of the crops (nearest setting).")
@click.option("--bd-fit", type=click.Choice(["pchip", "cubic"]), default="pchip",
              show_default=True, help="BD-rate fit: piecewise-cubic Hermite or cubic polynomial.")
@click.option("-e", "--effort", type=click.IntRange(MIN_EFFORT, MAX_EFFORT), default=DEFAULT_EFFORT,
              show_default=True, help="lcodec's encoder effort for its files.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes (one (codec, image) sweep each).")
@click.option("--threads", type=click.IntRange(0, 256), default=0,
              help="torch threads per worker [default: CPU count // jobs].")
@click.option("-f", "--force", is_flag=True, help="Overwrite the results of an earlier run.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def eval_command(images: tuple[str, ...], codecs: str, out_dir: str, anchor: str,
                 rate_range: str, model: str | None, device: str, crops: bool, crop_bpp: float,
                 bd_fit: str, effort: int, jobs: int, threads: int, force: bool, quiet: bool
                 ) -> None:
    """Sweep lcodec and traditional codecs over IMAGES (files or folders) on real bytes.

    Writes per-image and per-dataset curves, BD-rates against the anchor, RD plots and a
    Markdown summary (results.md) into --out.

    \b
      lcodec eval ../shared/data/kodak --out eval-kodak -j 2
      lcodec eval a.png b.png --codecs lcodec,jpeg,webp --out ev --crops
    """
    from lcodec.evaluate.runner import EvalConfig, collect_images, evaluate

    names = parse_codecs(codecs)
    lo, hi = parse_range(rate_range)
    anchor = anchor.strip().lower()
    out = Path(out_dir)
    if (out / "results.md").exists() and not force:
        raise LcodecError(f"{out} already holds results.md; use --force to overwrite it")
    paths = collect_images(list(images))
    argv = ["lcodec", "eval", *images, "--codecs", ",".join(names), "--out", out_dir,
            "--anchor", anchor, "--range", f"{lo:g},{hi:g}"]
    if model:
        argv += ["--model", model]
    argv += ["--device", device]
    if crops:
        argv += ["--crops", "--crop-bpp", f"{crop_bpp:g}"]
    argv += ["--bd-fit", bd_fit, "--effort", str(effort), "-j", str(jobs)]
    if threads:
        argv += ["--threads", str(threads)]
    cfg = EvalConfig(images=paths, codecs=names, out=out, anchor=anchor, rate_range=(lo, hi),
                     model=model, device=device, crops=crops, crop_bpp=crop_bpp,
                     effort=effort, jobs=jobs,
                     bd_fit=bd_fit, threads=threads, command=shlex.join(argv))

    def log(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    log(f"{len(paths)} images × {len(names)} codecs, {jobs} worker(s), "
        f"{cfg.torch_threads()} torch thread(s) each")
    evaluate(cfg, log)
    log(f"summary: {out / 'results.md'}")
