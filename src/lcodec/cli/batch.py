"""Running jobs: one file (IN OUT) or a batch (IN… -o OUTDIR) in worker processes, with a
progress bar, an error line per failed file, and stop signals that leave no partial file.

SIGTERM and SIGHUP stop like Ctrl-C: :class:`Terminated` unwinds the job (its temporary file
is removed on the way), the workers are stopped and waited for, and the exit code is
128 + the signal."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import click

from lcodec.cli.files import output_folder
from lcodec.cli.jobs import Job
from lcodec.errors import LcodecError


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop like Ctrl-C does (outputs are cleaned up on the way out)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_main_pid = os.getpid()  # the process whose main() installed the handlers
_in_worker = False  # this process is a batch worker (set by its pool's initializer)
_busy = False  # a worker is inside a job (so a stop signal must unwind it, not just exit)


def _on_stop_signal(signum: int, _frame) -> None:
    """Unwind like Ctrl-C (temporary files are removed on the way). A batch worker (forked:
    another pid) that is not inside a job, e.g. still starting, exits at once instead."""
    if os.getpid() != _main_pid and not _busy:
        os._exit(128 + signum)
    raise Terminated(signum)


def catch_stop_signals() -> dict:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` (only possible in the main thread);
    returns the handlers replaced, for :func:`restore_signals`."""
    import threading

    global _main_pid
    if threading.current_thread() is not threading.main_thread():
        return {}
    _main_pid = os.getpid()
    return {sig: signal.signal(sig, _on_stop_signal) for sig in _STOP_SIGNALS}


def restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _worker_init(threads: int) -> None:
    global _in_worker
    signal.signal(signal.SIGINT, _on_stop_signal)  # first: a signal may come during imports
    _in_worker = True
    import torch

    torch.set_num_threads(threads)


Result = tuple[dict | None, str | None]  # a file's statistics, or its error message


def _run_one(task: tuple[Job, str, str]) -> Result:
    """One file; its error (bad input, an OS error) becomes its message, not an exception."""
    global _busy
    job, src, dst = task
    _busy = True
    try:
        return job(src, dst), None
    except LcodecError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"{src}: {exc.strerror or exc}"
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP in a worker: stop quietly
        if _in_worker:
            os._exit(128 + getattr(exc, "signum", signal.SIGINT))
        raise
    finally:
        _busy = False


def _in_pool(tasks: list[tuple[Job, str, str]], jobs: int, collect) -> None:
    """Run the tasks in ``jobs`` worker processes; on any interruption (Ctrl-C, SIGTERM,
    SIGHUP) the workers are stopped and waited for before this returns."""
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = multiprocessing.Pool(jobs, initializer=_worker_init, initargs=(threads,))
    try:
        collect(pool.imap(_run_one, tasks))
        pool.close()
    except BaseException:
        pool.terminate()  # SIGTERM to each worker: it unwinds its job and exits
        raise
    finally:
        pool.join()


def run_single(job: Job, paths: tuple[str, ...], verbose: bool, quiet: bool,
               as_json: bool) -> None:
    """IN OUT: errors propagate (one 'Error:' line from ``main``)."""
    if len(paths) != 2:
        raise click.UsageError("give IN and OUT, or several inputs with -o OUTDIR")
    stats = job(paths[0], paths[1])
    for notice in stats["notices"] if not quiet else ():
        click.echo(f"Notice: {notice}", err=True)
    if as_json:
        click.echo(json.dumps(stats, sort_keys=True), err=paths[1] == "-")
    elif verbose and not quiet:
        click.echo(job.line(stats), err=True)


def run_batch(job: Job, paths: tuple[str, ...], output_dir: str, suffix: str, jobs: int,
              verbose: bool, quiet: bool, as_json: bool) -> None:
    """IN… -o OUTDIR: each output named by its input's stem and ``suffix``; a failed file
    gets an 'Error:' line and the others go on; exit 1 if any file failed."""
    if not paths:
        raise click.UsageError("no input files")
    if "-" in paths:
        raise click.UsageError("'-' (stdin) cannot be used in batch mode")
    out = output_folder(output_dir)
    targets = [str(out / (Path(p).stem + suffix)) for p in paths]
    if len(set(targets)) != len(targets):
        raise LcodecError("two inputs would write the same output name; rename one")
    tasks = [(job, p, t) for p, t in zip(paths, targets, strict=True)]
    t0 = time.perf_counter()
    results: list[Result] = []
    show_bar = not quiet and not as_json and len(paths) > 1
    lead = "\n" if show_bar else ""  # past the progress bar's line

    def collect(iterator) -> None:
        bar = click.progressbar(iterator, length=len(tasks), label=f"{job.verb} ",
                                file=sys.stderr, show_pos=True) if show_bar \
            else nullcontext(iterator)
        with bar as done:
            for stats, err in done:
                results.append((stats, err))
                if err:
                    click.echo(f"{lead}Error: {err}", err=True)
                    continue
                for notice in stats["notices"] if not quiet else ():
                    click.echo(f"{lead}Notice: {notice}", err=True)
                if as_json:
                    click.echo(json.dumps(stats, sort_keys=True))
                elif verbose and not quiet:
                    click.echo(job.line(stats), err=True)

    if jobs == 1:
        collect(map(_run_one, tasks))
    else:
        _in_pool(tasks, jobs, collect)
    ok = [s for s, e in results if e is None and s]
    failed = len(results) - len(ok)
    if not quiet:
        total = sum(s["bytes"] for s in ok)
        click.echo(f"{job.verb}d {len(ok)} of {len(results)} files ({failed} failed), "
                   f"{total} bytes, {time.perf_counter() - t0:.1f} s", err=True)
    if failed:
        raise SystemExit(1)
