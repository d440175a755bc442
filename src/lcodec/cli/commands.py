"""The click commands: the ``lcodec`` group, encode, decode, info and models.

Each command parses its options, builds a job (:mod:`lcodec.cli.jobs`) and hands it to
:mod:`lcodec.cli.batch`; torch is imported only by the jobs that run a network, so ``--help``,
``info`` and ``models`` stay fast."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from lcodec import __version__
from lcodec.cli.batch import named, run_batch, run_single
from lcodec.cli.cluster import cluster_options
from lcodec.cli.files import check_output, read_input, write_output
from lcodec.cli.jobs import DecodeJob, EncodeJob, Job
from lcodec.effort import DEFAULT_EFFORT, MAX_EFFORT, MIN_EFFORT
from lcodec.errors import LcodecError
from lcodec.settings import ALPHA_CHOICES, ENTROPY_CHOICES, SYNTHESIS_CHOICES, EncodeSettings

if TYPE_CHECKING:
    from lcodec.models import ModelInfo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lcodec")
def cli() -> None:
    """lcodec: a learned lossy image codec.

    \b
      lcodec encode photo.png photo.lic --bpp 0.2
      lcodec decode photo.lic back.png
      lcodec info photo.lic
    """


_device = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu",
                       show_default=True, help="Where the networks run.")
_force = click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
_quiet = click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
_verbose = click.option("-v", "--verbose", is_flag=True, help="Print one line of statistics.")
_json = click.option("--json", "as_json", is_flag=True,
                     help="Print statistics as JSON (on stderr when the data goes to stdout).")
_outdir = click.option("-o", "--output-dir", type=click.Path(file_okay=False), default=None,
                       help="Batch mode: every PATH is an input; outputs go to this folder.")
_max_pixels = click.option(
    "--max-pixels", type=click.IntRange(1), default=None,
    help="Refuse files declaring more pixels (default 100 million); raise it only for files "
         "you trust.")
_jobs = click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
                     help="Worker processes in batch mode.")
_threads = click.option(
    "--threads", type=click.IntRange(1, 256), default=None,
    help="Torch threads for the networks, per worker with -j (default: all CPU cores, shared "
         "out among the -j workers).")
_skip_existing = click.option(
    "--skip-existing", is_flag=True,
    help="Skip a file whose output exists (for encode: a valid .lic file), so that a batch "
         "can be rerun; counted as skipped.")
_paths = click.argument("paths", nargs=-1, metavar="IN OUT | IN… -o OUTDIR")


def _coding_options(fn):
    """The options encode and decode share."""
    for option in (_json, _verbose, _quiet, _skip_existing, _force, _device, _threads, _jobs,
                   _outdir):
        fn = option(fn)
    return fn


def _run(job: Job, paths: tuple[str, ...], output_dir: str | None, suffix: str, jobs: int,
         threads: int | None, verbose: bool, quiet: bool, as_json: bool) -> None:
    if output_dir is None:
        run_single(job, paths, verbose, quiet, as_json, threads)
    else:
        run_batch(job, paths, output_dir, suffix, jobs, verbose, quiet, as_json, threads)


# Each encode option's name is the EncodeSettings field it sets (``**settings`` below).
@cli.command()
@_paths
@click.option("--bpp", type=float, default=None,
              help="Target bits per pixel: the highest rate knob whose file is not above it.")
@click.option("--size", type=int, default=None,
              help="Target file size in bytes: the highest rate knob whose file is not above it.")
@click.option("--psnr", type=float, default=None,
              help="Target PSNR in dB: the smallest file whose decoded image reaches it.")
@click.option("--quality", type=float, default=None,
              help="Quality 0-100, mapped linearly onto the rate knob (no search).")
@click.option("--knob", type=float, default=None,
              help="Fixed rate knob in [-1, 1] (importance-map offset; 0 is the default), "
                   "no search.")
@click.option("--model", default=None,
              help="Model name (see `lcodec models`); default: the default model, or with "
                   "--bpp/--size the one measured best at that bpp.")
@click.option("--alpha", type=click.Choice(ALPHA_CHOICES), default="keep",
              show_default=True, help="Keep an alpha channel losslessly, or drop it.")
@click.option("--strip", is_flag=True,
              help="Do not keep the ICC profile, EXIF data and XMP packet.")
@click.option("--entropy", type=click.Choice(ENTROPY_CHOICES), default="auto",
              show_default=True,
              help="Entropy model: auto (the one measured to code this model's symbols "
                   "smaller, as its card records), tcae, or static.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Decode the symbols of the finished file before writing it.")
@click.option("--synthesis", type=click.Choice(SYNTHESIS_CHOICES), default="auto",
              show_default=True,
              help="Decoder the file names: exact (integer networks, the same pixels on "
                   "every machine; network v2 only), float, or auto (exact where the model "
                   "has it).")
@click.option("-e", "--effort", type=click.IntRange(MIN_EFFORT, MAX_EFFORT), default=DEFAULT_EFFORT,
              show_default=True,
              help="Encoder effort 1-9: higher searches more (the correction layer's fields, "
                   "its rate slope, the knob) for smaller files at the same quality, and "
                   "takes longer; 1 codes the networks alone. Any effort decodes the same.")
@click.option("--correction/--no-correction", default=True, show_default=True,
              help="Let the encoder add a low-resolution correction layer where it buys more "
                   "than its bytes would on the networks (and to fill a --bpp/--size target "
                   "above the networks' largest file).")
@_coding_options
@cluster_options("encode")
def encode(paths: tuple[str, ...], output_dir: str | None, jobs: int, threads: int | None,
           force: bool, skip_existing: bool, quiet: bool, verbose: bool, as_json: bool,
           **settings: Any) -> None:
    """Encode image IN (PNG, JPEG, …; '-' for stdin) to the .lic file OUT ('-' for stdout),
    or several images into OUTDIR with -o.

    With --bpp or --size the encoder searches the model's rate knob for the highest knob whose file
    fits (without --model, among the shipped models the one measured best at that bpp on
    Kodak), with --psnr for the smallest file that reaches the quality; --quality and --knob
    fix the knob (default: knob 0).
    """
    job = EncodeJob(EncodeSettings.of(measure_psnr=verbose or as_json, **settings), force,
                    skip_existing)
    _check_models(job.settings)
    _run(job, paths, output_dir, ".lic", jobs, threads, verbose, quiet, as_json)


def _check_models(settings: EncodeSettings) -> None:
    """Before any file: the model asked for (or, without --model, any model that encodes) is
    installed. Its error is about the installation, so it names no input file, and a batch
    gives it once. No torch is imported."""
    from lcodec import models

    if settings.model is not None:
        models.find(settings.model)
    else:
        models.listing()


@cli.command()
@_paths
@click.option("--format", "fmt", default="png", show_default=True,
              help="Output extension in batch mode (png, bmp, tif, webp, …).")
@click.option("--out-quality", type=click.IntRange(0, 100), default=None,
              help="Quality 0-100 of a lossy output format (JPEG, WebP, AVIF), which "
                   "re-encodes the decoded image (default 95; a notice says so); lossless "
                   "formats ignore it.")
@_max_pixels
@_coding_options
@cluster_options("decode")
def decode(paths: tuple[str, ...], fmt: str, out_quality: int | None, max_pixels: int | None,
           output_dir: str | None, jobs: int, threads: int | None, device: str, force: bool,
           skip_existing: bool, quiet: bool, verbose: bool, as_json: bool) -> None:
    """Decode the .lic file IN ('-' for stdin) to image OUT, whose extension sets the format
    ('-' writes PNG to stdout); or several files into OUTDIR with -o."""
    from lcodec.container import DEFAULT_MAX_PIXELS

    job = DecodeJob(max_pixels or DEFAULT_MAX_PIXELS, device, force, skip_existing,
                    out_quality)
    _run(job, paths, output_dir, "." + fmt.lstrip("."), jobs, threads, verbose, quiet,
         as_json)


@cli.command()
@click.argument("input_path", metavar="FILE")
@_json
@click.option("--importance-map", "map_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the decoded importance map as a picture (PNG, …).")
@_max_pixels
@_force
def info(input_path: str, as_json: bool, map_path: str | None, max_pixels: int | None,
         force: bool) -> None:
    """Show the header and section sizes of a .lic FILE (no network is loaded).

    With --importance-map, also decode the file's importance map and write it as a picture
    (white: where the encoder spent the most bits; one level per 8 × 8 block).
    """
    from lcodec import container, models

    limit = max_pixels or container.DEFAULT_MAX_PIXELS
    if map_path is not None:
        from lcodec.imageio import image_format_for  # numpy and PIL for the map only

        image_format_for(map_path)
        check_output(map_path, force)
    data = read_input(input_path)
    try:
        h, sections = container.read_header(data, limit)
    except LcodecError as exc:
        raise LcodecError(named(str(exc), input_path, "-")) from None
    model = models.by_id(h.model_id)  # its name beside the id, or None when not installed
    out = {
        "file": input_path, "bytes": len(data), "width": h.width, "height": h.height,
        "bpp": round(len(data) * 8 / (h.width * h.height), 5),
        "format": "{}.{}".format(*h.version), "colour_mode": h.colour_mode.name,
        "bit_depth": h.bit_depth, "model": model.name if model else None,
        "model_id": h.model_id.hex(), "rate_knob": h.rate_knob,
        "entropy_method": h.entropy_method.name, "entropy_id": h.entropy_id.hex(),
        "synthesis": h.synthesis.name,
        "sections": {t.name.lower(): n for t, n in sections},
    }
    if map_path is not None:
        _write_importance_map(data, map_path, force, limit)
    if as_json:
        click.echo(json.dumps(out))
        return
    for key, value in out.items():
        if key == "sections":
            for name, n in value.items():
                click.echo(f"{'section ' + name:16} {n} bytes")
        elif key == "model":
            click.echo(f"{key:16} {_model_line(h.model_id, model)}")
        elif key != "model_id":
            click.echo(f"{key:16} {value}")


def _model_line(model_id: bytes, model: ModelInfo | None) -> str:
    """``v2-mse (fffc224be2680914)``; says so when the model is retired or not installed."""
    from lcodec.models import models_dir

    if model is None:
        return f"{model_id.hex()} (not installed in {models_dir()}; decoding needs it)"
    return f"{model.name} ({model_id.hex()}{', decode-only' if model.retired else ''})"


def _write_importance_map(data: bytes, path: str, force: bool, max_pixels: int) -> None:
    import io

    from PIL import Image

    from lcodec import api
    from lcodec.imageio import image_format_for

    buf = io.BytesIO()
    Image.fromarray(api.importance_map(data, max_pixels), "L").save(
        buf, format=image_format_for(path))
    write_output(path, buf.getvalue(), force)


@cli.command(name="models")
@click.option("--all", "all_models", is_flag=True,
              help="Also list the retired models, which only decode the files they wrote.")
def list_models(all_models: bool) -> None:
    """List the models you can encode with (--model NAME): name, id, what it was trained
    for, its measured Kodak point. Exit code 1 when none is installed."""
    from lcodec import models

    rows = [(m.name, m.model_id.hex(), m.distortion,
             m.describe() + (" (default)" if m.name == models.DEFAULT_MODEL and not m.retired
                             else ""))
            for m in models.listing(all_models)]
    rows.insert(0, ("name", "id", "distortion", "description"))
    width = max(len(r[0]) for r in rows)
    for name, model_id, distortion, text in rows:
        click.echo(f"{name:{width}}  {model_id:16}  {distortion:10}  {text}".rstrip())


from lcodec.cli.conformance import check_command, hash_command  # noqa: E402
from lcodec.evaluate.commands import eval_command  # noqa: E402  (imports only click)

cli.add_command(eval_command)
cli.add_command(hash_command)
cli.add_command(check_command)
