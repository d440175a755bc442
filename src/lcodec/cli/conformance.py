"""``lcodec hash`` and ``lcodec check``: hashes of decoded files, for a CI that checks old
`.lic` files still decode bit-exactly. Thin over :mod:`lcodec.conformance` (which defines the
hashes and the manifest format); torch is imported only when a file is decoded."""

from __future__ import annotations

import click

from lcodec.cli.batch import named
from lcodec.cli.files import check_output, read_input, write_output
from lcodec.errors import LcodecError

_device = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu",
                       show_default=True, help="Where the networks run.")
_max_pixels = click.option(
    "--max-pixels", type=click.IntRange(1), default=None,
    help="Refuse files declaring more pixels (default 100 million).")


@click.command(name="hash")
@click.argument("files", nargs=-1, required=True, metavar="FILE.lic…")
@click.option("-o", "--output", "manifest", type=click.Path(dir_okay=False), default=None,
              help="Write the manifest to this file (atomically; paths relative to its "
                   "folder) instead of stdout; nothing is written if a file fails.")
@_device
@_max_pixels
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing manifest.")
def hash_command(files: tuple[str, ...], manifest: str | None, device: str,
                 max_pixels: int | None, force: bool) -> None:
    """Print the SHA-256 of each file's decoded pixels and of its decoded symbols, as a
    manifest that `lcodec check` verifies: a header line, then per file
    'PIXELS<TAB>SYMBOLS<TAB>FILE'.

    The pixel hash covers the decoded RGB samples (row-major, gray repeated in three
    channels) and then the alpha plane, if any; the symbol hash the entropy-decoded symbols
    as little-endian int64 (see lcodec.conformance). A file that fails to decode gets an
    'Error:' line and the exit code is 1.
    """
    from lcodec import conformance, container

    if manifest is not None:
        if "-" in files:
            raise click.UsageError("a manifest written with -o lists files, not stdin ('-')")
        check_output(manifest, force)
    limit = max_pixels or container.DEFAULT_MAX_PIXELS
    lines = [conformance.MANIFEST_HEADER]
    failed = 0
    for file in files:
        name = conformance.manifest_path(file, manifest) if manifest else file
        try:
            got = conformance.digests(read_input(file), device, limit)
            lines.append(conformance.manifest_line(got, name))
        except LcodecError as exc:
            failed += 1
            click.echo(f"Error: {named(str(exc), file, '-')}", err=True)
            continue
        if manifest is None:
            if len(lines) == 2:
                click.echo(lines[0])
            click.echo(lines[-1])
    if failed:
        if manifest is not None:
            click.echo(f"Error: {failed} of {len(files)} files failed; {manifest} was not "
                       "written", err=True)
        raise SystemExit(1)
    if manifest is not None:
        write_output(manifest, ("\n".join(lines) + "\n").encode("utf-8"), force)


@click.command(name="check")
@click.argument("manifest", metavar="MANIFEST")
@_device
@_max_pixels
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but the failed files.")
def check_command(manifest: str, device: str, max_pixels: int | None, quiet: bool) -> None:
    """Decode every file MANIFEST lists (as `lcodec hash` writes it; paths relative to its
    folder) and compare its pixel and symbol hashes with the recorded ones.

    Prints one line per file that is missing, does not decode or differs, naming it; exit
    code 1 if any does, 0 when every file matches.
    """
    from pathlib import Path

    from lcodec import conformance, container

    limit = max_pixels or container.DEFAULT_MAX_PIXELS
    folder = Path(manifest).parent
    total = failed = 0
    for entry, problem in conformance.check(manifest, device, limit):
        total += 1
        if problem is not None:
            failed += 1
            click.echo(f"{folder / entry.file}: FAILED: {problem}")
    if not quiet:
        verdict = f"{failed} failed" if failed else "all match"
        click.echo(f"checked {total} files of {manifest}: {verdict}", err=True)
    if failed:
        raise SystemExit(1)

