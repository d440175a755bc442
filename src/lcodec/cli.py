"""The ``lcodec`` command line: encode, decode, info, models.

Thin over :mod:`lcodec.api`: parse, open files (``-`` is stdin/stdout), call, print. Data goes
to stdout only when an output is ``-``; messages go to stderr. Outputs are written atomically
(temporary file + rename) and never overwrite an existing file without ``--force``. torch is
imported only by commands that run a network, so ``--help`` and ``info`` stay fast.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import click

from lcodec import __version__
from lcodec.errors import LcodecError


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise LcodecError(f"{path} not found") from None
    except IsADirectoryError:
        raise LcodecError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise LcodecError(f"cannot read {path}: {exc.strerror}") from None


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


def _write_output(path: str, data: bytes, force: bool) -> None:
    """Write atomically: a temporary file beside the target, then a rename."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    _check_output(path, force)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if not force and target.exists():
            raise LcodecError(f"{path} appeared while encoding; use --force to overwrite it")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    except OSError as exc:  # pragma: no cover - reported by the handler in main()
        raise LcodecError(f"cannot write {path}: {exc.strerror}") from None


def _report(stats: dict, as_json: bool, verbose: bool, quiet: bool, out_is_stdout: bool,
            line: str) -> None:
    if as_json:
        text = json.dumps(stats, sort_keys=True)
        click.echo(text, err=out_is_stdout)
    elif verbose and not quiet:
        click.echo(line, err=True)


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
_force = click.option("-f", "--force", is_flag=True, help="Overwrite an existing output file.")
_quiet = click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
_verbose = click.option("-v", "--verbose", is_flag=True, help="Print one line of statistics.")
_json = click.option("--json", "as_json", is_flag=True,
                     help="Print statistics as JSON (on stderr when the data goes to stdout).")


@cli.command()
@click.argument("input_path", metavar="IN")
@click.argument("output_path", metavar="OUT")
@click.option("--bpp", type=float, default=None,
              help="Target bits per pixel: the largest file not above it.")
@click.option("--size", "size_bytes", type=int, default=None,
              help="Target file size in bytes: the largest file not above it.")
@click.option("--knob", type=float, default=None,
              help="Fixed rate knob in [-1, 1] (importance-map offset; 0 is the default), "
                   "no search.")
@click.option("--model", default=None, help="Model name (see `lcodec models`).")
@_device
@_force
@_quiet
@_verbose
@_json
def encode(input_path: str, output_path: str, bpp: float | None, size_bytes: int | None,
           knob: float | None, model: str | None, device: str, force: bool, quiet: bool,
           verbose: bool, as_json: bool) -> None:
    """Encode image IN (PNG, JPEG, …; '-' for stdin) to the .lic file OUT ('-' for stdout).

    With --bpp or --size the encoder searches the model's rate knob for the largest file that
    fits; without either it uses --knob (default 0).
    """
    import io

    from lcodec import api
    from lcodec.imageio import load_rgb

    _check_output(output_path, force)
    t0 = time.perf_counter()
    raw = _read_input(input_path)
    rgb = load_rgb(io.BytesIO(raw), "stdin" if input_path == "-" else input_path)
    res = api.encode_with_stats(rgb, bpp=bpp, size=size_bytes, knob=knob, model=model,
                                device=device)
    seconds = time.perf_counter() - t0
    _write_output(output_path, res.data, force)
    stats = {"input": input_path, "output": output_path, "bytes": len(res.data),
             "bpp": round(res.bpp, 5), "knob": res.knob, "model": res.model,
             "width": res.width, "height": res.height, "seconds": round(seconds, 3)}
    if verbose or as_json:
        back = api.decode_array(res.data, device)
        stats["psnr"] = round(api.psnr(rgb, back), 3)
    line = (f"{input_path} -> {output_path}: {len(res.data)} bytes, {res.bpp:.4f} bpp, "
            f"PSNR {stats.get('psnr', float('nan')):.2f} dB, knob {res.knob:+.3f}, "
            f"{seconds:.2f} s")
    _report(stats, as_json, verbose, quiet, output_path == "-", line)


@cli.command()
@click.argument("input_path", metavar="IN")
@click.argument("output_path", metavar="OUT")
@_device
@_force
@_quiet
@_verbose
@_json
def decode(input_path: str, output_path: str, device: str, force: bool, quiet: bool,
           verbose: bool, as_json: bool) -> None:
    """Decode the .lic file IN ('-' for stdin) to image OUT; the format follows OUT's
    extension ('-' writes PNG to stdout)."""
    from lcodec import api
    from lcodec.imageio import encode_image, image_format_for

    fmt = image_format_for(output_path)
    _check_output(output_path, force)
    t0 = time.perf_counter()
    data = _read_input(input_path)
    rgb = api.decode_array(data, device)
    seconds = time.perf_counter() - t0
    _write_output(output_path, encode_image(rgb, fmt), force)
    h, w = rgb.shape[:2]
    stats = {"input": input_path, "output": output_path, "width": w, "height": h,
             "bytes": len(data), "bpp": round(len(data) * 8 / (w * h), 5),
             "seconds": round(seconds, 3)}
    line = f"{input_path} -> {output_path}: {w}×{h}, {stats['bpp']:.4f} bpp, {seconds:.2f} s"
    _report(stats, as_json, verbose, quiet, output_path == "-", line)


@cli.command()
@click.argument("input_path", metavar="FILE")
@_json
def info(input_path: str, as_json: bool) -> None:
    """Show the header and section sizes of a .lic FILE (no network is loaded)."""
    from lcodec import container

    data = _read_input(input_path)
    header, sections = container.read_header(data)
    h = header
    out = {
        "file": input_path, "bytes": len(data), "width": h.width, "height": h.height,
        "bpp": round(len(data) * 8 / (h.width * h.height), 5),
        "format": f"{data[4]}.{data[5]}", "colour_mode": h.colour_mode.name,
        "bit_depth": h.bit_depth, "model_id": h.model_id.hex(), "rate_knob": h.rate_knob,
        "entropy_method": h.entropy_method.name, "entropy_id": h.entropy_id.hex(),
        "sections": {t.name.lower(): n for t, n in sections},
    }
    if as_json:
        click.echo(json.dumps(out))
        return
    for key, value in out.items():
        if key == "sections":
            for name, n in value.items():
                click.echo(f"{'section ' + name:16} {n} bytes")
        else:
            click.echo(f"{key:16} {value}")


@cli.command(name="models")
def list_models() -> None:
    """List the installed models."""
    from lcodec import models

    for m in models.available():
        default = " (default)" if m.name == models.DEFAULT_MODEL else ""
        click.echo(f"{m.name:16} {m.model_id.hex()}  {m.path.name}{default}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: library errors become one 'Error:' line and exit code 1."""
    try:
        cli.main(args=argv, prog_name="lcodec", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except LcodecError as exc:
        click.echo(f"Error: {exc}", err=True)
        return 1
    except BrokenPipeError:
        return 1
    except OSError as exc:
        click.echo(f"Error: {exc.strerror or exc}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
