"""The ``lcodec`` command line: encode, decode, info, models.

Thin over :mod:`lcodec.api`: parse, open files (``-`` is stdin/stdout), call, print. Data goes
to stdout only when an output is ``-``; messages go to stderr. Outputs are written atomically
(temporary file + rename) and never overwrite an existing file without ``--force``. torch is
imported only by commands that run a network, so ``--help`` and ``info`` stay fast.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import click

from lcodec import __version__
from lcodec.errors import LcodecError


@dataclass(frozen=True)
class EncodeOptions:
    """What `lcodec encode` passes to each job (picklable: batch workers get a copy)."""

    bpp: float | None = None
    size: int | None = None
    psnr: float | None = None
    quality: float | None = None
    knob: float | None = None
    model: str | None = None
    alpha: str = "keep"
    strip: bool = False
    entropy: str = "auto"
    verify: bool = True
    synthesis: str = "auto"
    correction: bool = True
    device: str = "cpu"
    force: bool = False
    want_psnr: bool = False  # measure the PSNR of the written file (-v, --json)
    in_worker: bool = False  # running in a batch worker process


@dataclass(frozen=True)
class DecodeOptions:
    """What `lcodec decode` passes to each job."""

    max_pixels: int
    device: str = "cpu"
    force: bool = False
    in_worker: bool = False


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    from lcodec.imageio import read_file

    return read_file(path)


def _input_file(path: str) -> str:
    """An input path that exists and is a file (the same errors as :func:`_read_input`)."""
    p = Path(path)
    if p.is_dir():
        raise LcodecError(f"{path} is a directory, not a file")
    if not p.exists():
        raise LcodecError(f"{path} not found")
    return path


def _check_output(path: str, force: bool) -> None:
    """Fail before any work if the output exists (without --force) or cannot be created."""
    if path == "-":
        return
    p = Path(path)
    if p.is_dir():
        raise LcodecError(f"{path} is a directory; give a file name")
    if p.exists() and not force:
        raise LcodecError(f"{path} already exists; use --force to overwrite it")
    if not p.parent.resolve().is_dir():
        raise LcodecError(f"the folder of {path} does not exist")
    _check_writable(p.parent)


def _check_writable(folder: Path) -> None:
    """Fail before any work if no file can be created in ``folder`` (tried for real: a
    permission check alone is wrong for root, read-only mounts and ACLs)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".lcodec-check.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise LcodecError(f"cannot write to the folder {folder or '.'}: "
                          f"{exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(tmp)


def _write_output(path: str, data: bytes, force: bool) -> None:
    """Write atomically: a temporary file beside the target, then a rename."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    _check_output(path, force)
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise LcodecError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if not force and target.exists():
            raise LcodecError(f"{path} appeared while encoding; use --force to overwrite it")
        os.replace(tmp, target)
    except OSError as exc:  # disk full, quota, …: never leave the temporary file
        Path(tmp).unlink(missing_ok=True)
        raise LcodecError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:  # interrupted (a signal): never leave the temporary file
        Path(tmp).unlink(missing_ok=True)
        raise


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


def _coding_options(fn):
    """The options encode and decode share."""
    for option in (_json, _verbose, _quiet, _force, _device, _jobs, _outdir):
        fn = option(fn)
    return fn


def _encode_one(input_path: str, output_path: str, opts: EncodeOptions) -> dict:
    """Encode one file; returns its statistics. Raises LcodecError on bad input."""
    import io

    from lcodec import api
    from lcodec.imageio import load_image

    _check_output(output_path, opts.force)
    t0 = time.perf_counter()
    # A file is opened by path, so its compressed bytes are not held during the encode.
    source = io.BytesIO(_read_input("-")) if input_path == "-" else _input_file(input_path)
    src = load_image(source, "stdin" if input_path == "-" else input_path, opts.alpha,
                     opts.strip)
    res = api.encode_with_stats(src, bpp=opts.bpp, size=opts.size, psnr=opts.psnr,
                                quality=opts.quality, knob=opts.knob, model=opts.model,
                                device=opts.device, entropy=opts.entropy, verify=opts.verify,
                                measure_psnr=opts.want_psnr, synthesis=opts.synthesis,
                                correction=opts.correction)
    seconds = time.perf_counter() - t0
    _write_output(output_path, res.data, opts.force)
    stats = {"input": input_path, "output": output_path, "bytes": len(res.data),
             "bpp": round(res.bpp, 5), "knob": res.knob, "model": res.model,
             "width": res.width, "height": res.height, "seconds": round(seconds, 3),
             "notices": res.notices}
    if res.psnr is not None:
        stats["psnr"] = round(res.psnr, 3)
    return stats


def _decode_one(input_path: str, output_path: str, opts: DecodeOptions) -> dict:
    from lcodec import api, container
    from lcodec.imageio import check_format_holds, encode_image, image_format_for

    fmt = image_format_for(output_path)
    _check_output(output_path, opts.force)
    t0 = time.perf_counter()
    data = _read_input(input_path)
    check_format_holds(fmt, _decoded_mode(*container.read_header(data, opts.max_pixels)))
    img, notices = api.decode_with_notices(data, opts.device, opts.max_pixels)
    seconds = time.perf_counter() - t0
    payload, more = encode_image(img, fmt, img.info.get("icc_profile"), img.info.get("exif"))
    _write_output(output_path, payload, opts.force)
    w, h = img.size
    return {"input": input_path, "output": output_path, "width": w, "height": h,
            "mode": img.mode, "bytes": len(data), "bpp": round(len(data) * 8 / (w * h), 5),
            "seconds": round(seconds, 3),
            "notices": [f"{output_path}: {n}" for n in notices + more]}


def _decoded_mode(header, sections) -> str:
    """The PIL mode a file decodes to, from its header and section list."""
    from lcodec.container import ColourMode, SectionType

    alpha = any(t == SectionType.ALPHA for t, _ in sections)
    if header.colour_mode == ColourMode.GRAY:
        return "LA" if alpha else "L"
    return "RGBA" if alpha else "RGB"


def _encode_line(st: dict) -> str:
    psnr = f", PSNR {st['psnr']:.2f} dB" if "psnr" in st else ""
    return (f"{st['input']} -> {st['output']}: {st['bytes']} bytes, {st['bpp']:.4f} bpp"
            f"{psnr}, model {st['model']}, knob {st['knob']:+.3f}, {st['seconds']:.2f} s")


def _decode_line(st: dict) -> str:
    return (f"{st['input']} -> {st['output']}: {st['width']}×{st['height']} {st['mode']}, "
            f"{st['bpp']:.4f} bpp, {st['seconds']:.2f} s")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop like Ctrl-C does (outputs are cleaned up on the way out)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_main_pid = os.getpid()  # the process whose main() installed the handlers
_busy = False  # a worker is inside a job (so a stop signal must unwind it, not just exit)


def _on_stop_signal(signum: int, _frame) -> None:
    """Unwind like Ctrl-C (temporary files are removed on the way). A batch worker (forked:
    another pid) that is not inside a job, e.g. still starting, exits at once instead."""
    if os.getpid() != _main_pid and not _busy:
        os._exit(128 + signum)
    raise Terminated(signum)


def _worker_init(threads: int) -> None:
    signal.signal(signal.SIGINT, _on_stop_signal)  # first: a signal may come during imports
    import torch

    torch.set_num_threads(threads)


Options = EncodeOptions | DecodeOptions


def _run_one(job: tuple[str, str, str, Options]) -> tuple[dict | None, str | None]:
    global _busy
    kind, src, dst, opts = job
    _busy = True
    try:
        fn = _encode_one if kind == "encode" else _decode_one
        return fn(src, dst, opts), None
    except LcodecError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"{src}: {exc.strerror or exc}"
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP in a worker: stop quietly
        if opts.in_worker:
            os._exit(128 + getattr(exc, "signum", signal.SIGINT))
        raise
    finally:
        _busy = False


def _in_pool(job_list: list, jobs: int, collect) -> None:
    """Run the jobs in ``jobs`` worker processes; on any interruption (Ctrl-C, SIGTERM,
    SIGHUP) the workers are stopped and waited for before this returns."""
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = multiprocessing.Pool(jobs, initializer=_worker_init, initargs=(threads,))
    try:
        collect(pool.imap(_run_one, [(k, s, d, replace(o, in_worker=True))
                                     for k, s, d, o in job_list]))
        pool.close()
    except BaseException:
        pool.terminate()  # SIGTERM to each worker: it unwinds its job and exits
        raise
    finally:
        pool.join()


def _single_or_batch(kind: str, paths: tuple[str, ...], output_dir: str | None, jobs: int,
                     opts: Options, suffix: str, verbose: bool, quiet: bool,
                     as_json: bool) -> None:
    """Run one file (IN OUT) or a batch (PATHS… -o DIR); exit 1 if any file failed."""
    line = _encode_line if kind == "encode" else _decode_line
    if output_dir is None:
        if len(paths) != 2:
            raise click.UsageError("give IN and OUT, or several inputs with -o OUTDIR")
        stats = (_encode_one if kind == "encode" else _decode_one)(paths[0], paths[1], opts)
        to_stdout = paths[1] == "-"
        for notice in stats["notices"]:
            if not quiet:
                click.echo(f"Notice: {notice}", err=True)
        if as_json:
            click.echo(json.dumps(stats, sort_keys=True), err=to_stdout)
        elif verbose and not quiet:
            click.echo(line(stats), err=True)
        return
    if not paths:
        raise click.UsageError("no input files")
    if "-" in paths:
        raise click.UsageError("'-' (stdin) cannot be used in batch mode")
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LcodecError(f"cannot create the folder {output_dir}: "
                          f"{exc.strerror or exc}") from None
    _check_writable(out)
    targets = [str(out / (Path(p).stem + suffix)) for p in paths]
    if len(set(targets)) != len(targets):
        raise LcodecError("two inputs would write the same output name; rename one")
    job_list = [(kind, p, t, opts) for p, t in zip(paths, targets, strict=True)]
    t0 = time.perf_counter()
    results: list[tuple[dict | None, str | None]] = []
    show_bar = not quiet and not as_json and len(paths) > 1

    def collect(iterator) -> None:
        with click.progressbar(iterator, length=len(job_list), label=f"{kind} ",
                               file=sys.stderr, show_pos=True) if show_bar else _nullbar(
                                   iterator) as bar:
            for stats, err in bar:
                results.append((stats, err))
                lead = "\n" if show_bar else ""
                if err:
                    click.echo(f"{lead}Error: {err}", err=True)
                    continue
                for notice in stats["notices"] if not quiet else ():
                    click.echo(f"{lead}Notice: {notice}", err=True)
                if as_json:
                    click.echo(json.dumps(stats, sort_keys=True))
                elif stats and verbose and not quiet:
                    click.echo(line(stats), err=True)

    if jobs == 1:
        collect(map(_run_one, job_list))
    else:
        _in_pool(job_list, jobs, collect)
    ok = [s for s, e in results if e is None and s]
    failed = len(results) - len(ok)
    if not quiet:
        total = sum(s["bytes"] for s in ok)
        click.echo(f"{kind}d {len(ok)} of {len(results)} files ({failed} failed), "
                   f"{total} bytes, {time.perf_counter() - t0:.1f} s", err=True)
    if failed:
        raise SystemExit(1)


class _nullbar:
    def __init__(self, iterator) -> None:
        self.iterator = iterator

    def __enter__(self):
        return self.iterator

    def __exit__(self, *exc) -> None:
        return None


@cli.command()
@click.argument("paths", nargs=-1, metavar="IN OUT | IN… -o OUTDIR")
@click.option("--bpp", type=float, default=None,
              help="Target bits per pixel: the highest rate knob whose file is not above it.")
@click.option("--size", "size_bytes", type=int, default=None,
              help="Target file size in bytes: the highest rate knob whose file is not above it.")
@click.option("--psnr", "psnr_db", type=float, default=None,
              help="Target PSNR in dB: the smallest file whose decoded image reaches it.")
@click.option("--quality", type=float, default=None,
              help="Quality 0-100, mapped linearly onto the rate knob (no search).")
@click.option("--knob", type=float, default=None,
              help="Fixed rate knob in [-1, 1] (importance-map offset; 0 is the default), "
                   "no search.")
@click.option("--model", default=None,
              help="Model name (see `lcodec models`); default: the default model, or with "
                   "--bpp/--size the one measured best at that bpp.")
@click.option("--alpha", type=click.Choice(["keep", "drop"]), default="keep",
              show_default=True, help="Keep an alpha channel losslessly, or drop it.")
@click.option("--strip", is_flag=True, help="Do not keep the ICC profile and EXIF data.")
@click.option("--entropy", type=click.Choice(["auto", "tcae", "static"]), default="auto",
              show_default=True,
              help="Entropy model: auto (the one measured to code this model's symbols "
                   "smaller, as its card records), tcae, or static.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Decode the symbols of the finished file before writing it.")
@click.option("--synthesis", type=click.Choice(["auto", "exact", "float"]), default="auto",
              show_default=True,
              help="Decoder the file names: exact (integer networks, the same pixels on "
                   "every machine; network v2 only), float, or auto (exact where the model "
                   "has it).")
@click.option("--correction/--no-correction", default=True, show_default=True,
              help="Let the encoder add a low-resolution correction layer where it buys more "
                   "than its bytes would on the networks (and to fill a --bpp/--size target "
                   "above the networks' largest file).")
@_coding_options
def encode(paths: tuple[str, ...], bpp: float | None, size_bytes: int | None,
           psnr_db: float | None, quality: float | None, knob: float | None,
           model: str | None, alpha: str, strip: bool, entropy: str, verify: bool,
           synthesis: str, correction: bool, output_dir: str | None, jobs: int, device: str,
           force: bool, quiet: bool, verbose: bool, as_json: bool) -> None:
    """Encode image IN (PNG, JPEG, …; '-' for stdin) to the .lic file OUT ('-' for stdout),
    or several images into OUTDIR with -o.

    With --bpp or --size the encoder searches the model's rate knob for the highest knob whose file
    fits (without --model, among the shipped models the one measured best at that bpp on
    Kodak), with --psnr for the smallest file that reaches the quality; --quality and --knob
    fix the knob (default: knob 0).
    """
    opts = EncodeOptions(bpp=bpp, size=size_bytes, psnr=psnr_db, quality=quality, knob=knob,
                         model=model, alpha=alpha, strip=strip, entropy=entropy,
                         verify=verify, synthesis=synthesis, correction=correction,
                         device=device, force=force, want_psnr=verbose or as_json)
    _single_or_batch("encode", paths, output_dir, jobs, opts, ".lic", verbose, quiet, as_json)


@cli.command()
@click.argument("paths", nargs=-1, metavar="IN OUT | IN… -o OUTDIR")
@click.option("--format", "fmt", default="png", show_default=True,
              help="Output extension in batch mode (png, bmp, tif, webp, …).")
@_max_pixels
@_coding_options
def decode(paths: tuple[str, ...], fmt: str, max_pixels: int | None, output_dir: str | None,
           jobs: int, device: str, force: bool, quiet: bool, verbose: bool,
           as_json: bool) -> None:
    """Decode the .lic file IN ('-' for stdin) to image OUT, whose extension sets the format
    ('-' writes PNG to stdout); or several files into OUTDIR with -o."""
    from lcodec.container import DEFAULT_MAX_PIXELS

    opts = DecodeOptions(max_pixels=max_pixels or DEFAULT_MAX_PIXELS, device=device,
                         force=force)
    _single_or_batch("decode", paths, output_dir, jobs, opts, "." + fmt.lstrip("."), verbose,
                     quiet, as_json)


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
    from lcodec import container
    from lcodec.imageio import image_format_for

    limit = max_pixels or container.DEFAULT_MAX_PIXELS
    if map_path is not None:
        image_format_for(map_path)
        _check_output(map_path, force)
    data = _read_input(input_path)
    header, sections = container.read_header(data, limit)
    h = header
    out = {
        "file": input_path, "bytes": len(data), "width": h.width, "height": h.height,
        "bpp": round(len(data) * 8 / (h.width * h.height), 5),
        "format": "{}.{}".format(*h.version), "colour_mode": h.colour_mode.name,
        "bit_depth": h.bit_depth, "model_id": h.model_id.hex(), "rate_knob": h.rate_knob,
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
        else:
            click.echo(f"{key:16} {value}")


def _write_importance_map(data: bytes, path: str, force: bool, max_pixels: int) -> None:
    import io

    from PIL import Image

    from lcodec import api
    from lcodec.imageio import image_format_for

    buf = io.BytesIO()
    Image.fromarray(api.importance_map(data, max_pixels), "L").save(
        buf, format=image_format_for(path))
    _write_output(path, buf.getvalue(), force)


@cli.command(name="models")
def list_models() -> None:
    """List the installed models."""
    from lcodec import models

    for m in models.available():
        if m.retired:
            note = " (retired: decodes its files, never encodes)"
        else:
            note = " (default)" if m.name == models.DEFAULT_MODEL else ""
        click.echo(f"{m.name:16} {m.model_id.hex()}  {m.path.name}{note}")


from lcodec.evaluate.commands import eval_command  # noqa: E402  (imports only click)

cli.add_command(eval_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: library errors become one 'Error:' line and exit code 1; SIGTERM and
    SIGHUP stop like Ctrl-C (workers stopped, no partial file), exit code 128 + signal."""
    previous = _catch_stop_signals()
    try:
        return _main(argv)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _catch_stop_signals() -> dict:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` (only possible in the main thread)."""
    import threading

    global _main_pid
    if threading.current_thread() is not threading.main_thread():
        return {}
    _main_pid = os.getpid()
    return {sig: signal.signal(sig, _on_stop_signal) for sig in _STOP_SIGNALS}


def _main(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="lcodec", standalone_mode=False)
    except click.exceptions.Abort as exc:
        stop = exc.__cause__ or exc.__context__
        if isinstance(stop, Terminated):
            click.echo(f"Stopped by {signal.Signals(stop.signum).name}.", err=True)
            return 128 + stop.signum
        click.echo("Aborted.", err=True)
        return 130
    except Terminated as exc:
        click.echo(f"Stopped by {signal.Signals(exc.signum).name}.", err=True)
        return 128 + exc.signum
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except LcodecError as exc:
        click.echo(f"Error: {exc}", err=True)
        return 1
    except SystemExit as exc:
        return int(exc.code or 0)
    except BrokenPipeError:
        return 1
    except OSError as exc:
        click.echo(f"Error: {exc.strerror or exc}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
