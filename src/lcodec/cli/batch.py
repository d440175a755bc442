"""Running jobs: one file (IN OUT) or a batch (IN… -o OUTDIR) in worker processes, with a
progress bar on a terminal (elsewhere one line per file), an error line naming each failed
file, outputs skipped with --skip-existing, and stop signals that leave no partial file.

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
from lcodec.threads import compute_threads


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
    from lcodec.threads import set_threads

    set_threads(threads)


Result = tuple[dict | None, str | None]  # a file's statistics, or its error message


def named(message: str, src: str, dst: str) -> str:
    """An error message that names its file: as it is if it names the input or the output,
    else prefixed with the input's name (``stdin`` for ``-``)."""
    if any(p != "-" and p in message for p in (src, dst)):
        return message
    return f"{'stdin' if src == '-' else src}: {message}"


def _run_one(task: tuple[Job, str, str]) -> Result:
    """One file; its error (bad input, an OS error) becomes its message, naming the file, not
    an exception."""
    global _busy
    job, src, dst = task
    _busy = True
    try:
        return job(src, dst), None
    except LcodecError as exc:
        return None, named(str(exc), src, dst)
    except OSError as exc:
        return None, named(exc.strerror or str(exc), src, dst)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP in a worker: stop quietly
        if _in_worker:
            os._exit(128 + getattr(exc, "signum", signal.SIGINT))
        raise
    finally:
        _busy = False


def _in_pool(tasks: list[tuple[Job, str, str]], jobs: int, threads: int | None,
             collect) -> None:
    """Run the tasks in ``jobs`` worker processes of ``threads`` threads each (default:
    the CPU cores shared out among them); on any interruption (Ctrl-C, SIGTERM, SIGHUP) the
    workers are stopped and waited for before this returns."""
    import multiprocessing

    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    pool = multiprocessing.Pool(jobs, initializer=_worker_init, initargs=(threads,))
    try:
        collect(pool.imap(_run_one, tasks))
        pool.close()
    except BaseException:
        pool.terminate()  # SIGTERM to each worker: it unwinds its job and exits
        raise
    finally:
        pool.join()



def _threads_notice(jobs: int, threads: int | None, quiet: bool) -> None:
    """Say so when -j × --threads asks for more threads than there are CPU cores."""
    cores = os.cpu_count() or 1
    if threads is not None and jobs * threads > cores and not quiet:
        asked = f"-j {jobs} × --threads {threads}" if jobs > 1 else f"--threads {threads}"
        click.echo(f"Notice: {asked} runs {jobs * threads} threads on {cores} CPU cores; "
                   "they will slow each other down", err=True)


def _skipped(src: str, dst: str) -> dict:
    return {"input": src, "output": dst, "skipped": True, "notices": []}


def _skip_line(st: dict) -> str:
    return f"{st['input']} -> {st['output']}: skipped, the output exists (--skip-existing)"


def run_single(job: Job, paths: tuple[str, ...], verbose: bool, quiet: bool,
               as_json: bool, threads: int | None = None) -> None:
    """IN OUT: errors propagate (one 'Error:' line from ``main``, naming the file)."""
    if len(paths) != 2:
        raise click.UsageError("give IN and OUT, or several inputs with -o OUTDIR")
    src, dst = paths
    _threads_notice(1, threads, quiet)
    try:
        if job.skips(dst):
            stats = _skipped(src, dst)
        else:
            with compute_threads(threads):
                stats = job(src, dst)
    except LcodecError as exc:
        raise LcodecError(named(str(exc), src, dst)) from None
    except BrokenPipeError:  # stdout closed by its reader: ``main`` exits quietly
        raise
    except OSError as exc:
        raise LcodecError(named(exc.strerror or str(exc), src, dst)) from None
    if stats.get("skipped"):
        if as_json:
            click.echo(json.dumps(stats, sort_keys=True), err=dst == "-")
        elif not quiet:
            click.echo(_skip_line(stats), err=True)
        return
    for notice in stats["notices"] if not quiet else ():
        click.echo(f"Notice: {notice}", err=True)
    if as_json:
        click.echo(json.dumps(stats, sort_keys=True), err=paths[1] == "-")
    elif verbose and not quiet:
        click.echo(job.line(stats), err=True)


def run_batch(job: Job, paths: tuple[str, ...], output_dir: str, suffix: str, jobs: int,
              verbose: bool, quiet: bool, as_json: bool, threads: int | None = None) -> None:
    """IN… -o OUTDIR: each output named by its input's stem and ``suffix``; a failed file
    gets an 'Error:' line naming it and the others go on; outputs that --skip-existing skips
    are counted; exit 1 if any file failed.

    On a terminal a progress bar is drawn; elsewhere (a log, a pipe) each file gets one line:
    its statistics, 'skipped' or its error (notices add theirs)."""
    if not paths:
        raise click.UsageError("no input files")
    if "-" in paths:
        raise click.UsageError("'-' (stdin) cannot be used in batch mode")
    out = output_folder(output_dir)
    targets = [str(out / (Path(p).stem + suffix)) for p in paths]
    if len(set(targets)) != len(targets):
        raise LcodecError("two inputs would write the same output name; rename one")
    t0 = time.perf_counter()
    results: list[Result] = []
    tasks = []
    for p, t in zip(paths, targets, strict=True):
        try:
            if job.skips(t):
                results.append((_skipped(p, t), None))
                continue
        except LcodecError as exc:
            results.append((None, named(str(exc), p, t)))
            continue
        tasks.append((job, p, t))
    _threads_notice(jobs, threads, quiet)
    show_bar = not quiet and not as_json and len(tasks) > 1 and sys.stderr.isatty()
    # one line per file where no bar is drawn, and with -v
    per_file = not quiet and not as_json and (verbose or not show_bar)

    def report(stats: dict | None, err: str | None, lead: str = "") -> None:
        """A file's lines; ``lead`` moves them past the progress bar's line."""
        if err:
            click.echo(f"{lead}Error: {err}", err=True)
            return
        for notice in stats["notices"] if not quiet else ():
            click.echo(f"{lead}Notice: {notice}", err=True)
        if as_json:
            click.echo(json.dumps(stats, sort_keys=True))
        elif per_file:
            click.echo(_skip_line(stats) if stats.get("skipped") else job.line(stats),
                       err=True)

    for stats, err in results:  # the skipped and the refused, before any work
        report(stats, err)

    def collect(iterator) -> None:
        bar = click.progressbar(iterator, length=len(tasks), label=job.verb,
                                file=sys.stderr, show_pos=True) if show_bar \
            else nullcontext(iterator)
        with bar as done:
            for stats, err in done:
                results.append((stats, err))
                report(stats, err, "\n" if show_bar else "")

    if jobs == 1:
        with compute_threads(threads) if tasks else nullcontext():
            collect(map(_run_one, tasks))
    elif tasks:
        _in_pool(tasks, jobs, threads, collect)
    ok = [s for s, e in results if e is None and s and not s.get("skipped")]
    skipped = sum(1 for s, e in results if e is None and s and s.get("skipped"))
    failed = len(results) - len(ok) - skipped
    if not quiet:
        total = sum(s["bytes"] for s in ok)
        counts = f"{skipped} skipped, {failed} failed" if skipped else f"{failed} failed"
        click.echo(f"{job.verb}d {len(ok)} of {len(results)} files ({counts}), "
                   f"{total} bytes, {time.perf_counter() - t0:.1f} s", err=True)
    if failed:
        raise SystemExit(1)
