"""The ``lcodec`` command line: encode, decode, info, models (and eval).

Thin over :mod:`lcodec.api`: parse, open files (``-`` is stdin/stdout), call, print. Data goes
to stdout only when an output is ``-``; messages go to stderr. Outputs are written atomically
(temporary file + rename) and never overwrite an existing file without ``--force``.

:mod:`~lcodec.cli.commands` holds the click commands, :mod:`~lcodec.cli.jobs` one file's work,
:mod:`~lcodec.cli.files` reading and writing, :mod:`~lcodec.cli.batch` running jobs one at a
time or in worker processes. :func:`main` is the console entry point.
"""

from __future__ import annotations

import signal

import click

from lcodec.cli.batch import Terminated, catch_stop_signals, restore_signals
from lcodec.cli.commands import cli
from lcodec.errors import LcodecError

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point: library errors become one 'Error:' line and exit code 1; SIGTERM and
    SIGHUP stop like Ctrl-C (workers stopped, no partial file), exit code 128 + signal."""
    previous = catch_stop_signals()
    try:
        return _main(argv)
    finally:
        restore_signals(previous)


def _stopped(stop: Terminated) -> int:
    click.echo(f"Stopped by {signal.Signals(stop.signum).name}.", err=True)
    return 128 + stop.signum


def _main(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="lcodec", standalone_mode=False)
    except click.exceptions.Abort as exc:
        stop = exc.__cause__ or exc.__context__
        if isinstance(stop, Terminated):
            return _stopped(stop)
        click.echo("Aborted.", err=True)
        return 130
    except Terminated as exc:
        return _stopped(exc)
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
