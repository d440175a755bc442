"""``lcodec encode/decode SRC… -o OUT --cluster [ADDRESS]``: a whole collection on Ray.

SRC are folders (searched recursively: images by extension for encode, ``.lic`` for decode),
files or globs; OUT mirrors each folder's tree. Without ADDRESS a local Ray runtime starts on
this machine; with one, the cluster there is used (OUT and the inputs must then be on a file
system every node sees). The work is :class:`lcodec.cluster.Coder` actors running the same
jobs as a single ``lcodec encode`` (:mod:`lcodec.cli.jobs`), each output written atomically.
A JSONL manifest records every file. A rerun skips the outputs that exist and check out (a
`.lic` whose header and CRCs read fine; an image that opens); ``--no-resume`` redoes them.

Nothing here imports Ray or torch until a ``--cluster`` run starts (:mod:`lcodec.cluster`).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import math
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click

from lcodec.errors import LcodecError

MANIFEST_NAME = "lcodec-manifest.jsonl"
ROWS_PER_BLOCK = 64  # a worker killed mid-block redoes at most this many files


def cluster_options(verb: str):
    """Add ``--cluster``, ``--manifest``, ``--resume/--no-resume`` and (encode)
    ``--psnr-report`` to the ``encode`` or ``decode`` command ``fn``; with ``--cluster`` the
    command runs :func:`run_cluster` instead of its own body."""

    def decorate(fn):
        @functools.wraps(fn)
        def command(*args: Any, cluster: str | None, manifest: str | None, resume: bool,
                    psnr_report: bool = False, **kwargs: Any) -> None:
            if cluster is None:
                return fn(*args, **kwargs)
            return run_cluster(verb, cluster, manifest, resume, psnr_report, kwargs)

        options = [
            click.option(
                "--cluster", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
                help="Code SRC folders/globs into -o OUT on Ray: a local Ray runtime, or the "
                     "cluster at ADDRESS (write --cluster=ADDRESS, or put --cluster after the "
                     "inputs). Needs pip install 'lcodec[cluster]'."),
            click.option("--manifest", type=click.Path(dir_okay=False), default=None,
                         help=f"With --cluster: the JSONL manifest (default "
                              f"OUT/{MANIFEST_NAME})."),
            click.option("--resume/--no-resume", default=True, show_default=True,
                         help="With --cluster: skip outputs that exist and check out."),
        ]
        if verb == "encode":
            options.append(click.option(
                "--psnr-report", is_flag=True,
                help="With --cluster: decode each file and record its PSNR in the manifest."))
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@dataclass(frozen=True)
class FileWork:
    """One row's work for :class:`lcodec.cluster.Coder`: run ``job`` (an EncodeJob or
    DecodeJob, with force: a retried row rewrites its output atomically) on the row's
    ``source`` → ``output``, creating the output's folder."""

    job: Any

    def warm(self) -> None:
        from lcodec import models
        from lcodec.devices import resolve_device

        settings = getattr(self.job, "settings", None)
        name = settings.model if settings is not None else None
        device = settings.device if settings is not None else self.job.device
        models.load(models.find(name), resolve_device(device))

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        output = str(row["output"])
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        st = self.job(str(row["source"]), output)
        return {"bytes": st["bytes"], "bpp": st["bpp"], "knob": st.get("knob"),
                "psnr": st.get("psnr")}

    def empty(self) -> dict[str, Any]:
        return {"bytes": None, "bpp": None, "knob": None, "psnr": None}


def find_inputs(sources: tuple[str, ...], out: Path, suffixes: set[str],
                out_suffix: str) -> list[tuple[str, str]]:
    """(source, output) pairs: a folder's files (by suffix, recursively, hidden ones left
    out) mirrored under ``out``; a file or a glob's matches under ``out`` relative to the
    glob's folder. Two sources with the same output are an error."""
    pairs: dict[str, str] = {}

    def add(src: Path, rel: Path) -> None:
        dst = str(out / rel.with_suffix(out_suffix))
        if dst in pairs and pairs[dst] != str(src):
            raise LcodecError(f"{pairs[dst]} and {src} would both be written to {dst}; "
                              "code them in separate runs")
        pairs[dst] = str(src)

    def wanted(p: Path, rel: Path) -> bool:
        return p.is_file() and p.suffix.lower() in suffixes \
            and not any(part.startswith(".") for part in rel.parts)

    for source in sources:
        path = Path(source)
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if wanted(p, p.relative_to(path)):
                    add(p, p.relative_to(path))
        elif path.is_file():
            add(path, Path(path.name))
        elif glob.has_magic(source):
            parts = Path(source).parts
            base = Path(*[p for p in parts[:next(i for i, p in enumerate(parts)
                                                  if glob.has_magic(p))]] or ".")
            for match in sorted(glob.glob(source, recursive=True)):
                p = Path(match)
                if wanted(p, p.relative_to(base)):
                    add(p, p.relative_to(base))
        else:
            raise LcodecError(f"{source} not found")
    if not pairs:
        raise LcodecError(f"no input files ({', '.join(sorted(suffixes))}) in "
                          f"{', '.join(sources)}")
    return sorted(((s, d) for d, s in pairs.items()), key=lambda sd: sd[1])


def existing_output(verb: str, output: str) -> dict[str, Any] | None:
    """The manifest fields of an output that exists and checks out, else None."""
    p = Path(output)
    if not p.is_file():
        return None
    try:
        if verb == "encode":
            from lcodec import container

            data = p.read_bytes()
            h, _ = container.read_header(data)
            return {"bytes": len(data), "bpp": round(len(data) * 8 / (h.width * h.height), 5),
                    "knob": h.rate_knob, "psnr": None}
        from PIL import Image

        with Image.open(p) as im:
            im.verify()
        return {"bytes": None, "bpp": None, "knob": None, "psnr": None}
    except Exception:  # noqa: BLE001  (anything unreadable is redone)
        return None


def _start_ray(address: str, cpus: int):
    """Ray, connected: to ``address``, or to a new local runtime of ``cpus`` CPUs (quiet,
    no dashboard); already connected (a test, a user's script) stays as it is. Returns
    (ray, whether this call started it)."""
    import logging

    from lcodec.cluster import require_ray

    ray = require_ray()
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    if ray.is_initialized():
        return ray, False
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # C++ warnings on stderr
    options = {"include_dashboard": False, "log_to_driver": False,
               "logging_level": logging.ERROR, "configure_logging": True}
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(num_cpus=cpus, **options)
    return ray, True


def run_cluster(verb: str, address: str, manifest: str | None, resume: bool,
                psnr_report: bool, kw: dict[str, Any]) -> None:
    """The ``--cluster`` run of ``lcodec encode`` or ``decode`` with the command's options
    ``kw``; exits with 1 when a file failed."""
    from lcodec.cli.jobs import DecodeJob, EncodeJob
    from lcodec.cluster import map_coder, require_ray
    from lcodec.imageio import IMAGE_SUFFIXES
    from lcodec.settings import EncodeSettings

    paths, out_dir = kw["paths"], kw.get("output_dir")
    quiet, verbose, as_json = kw.get("quiet", False), kw.get("verbose", False), \
        kw.get("as_json", False)
    if out_dir is None:
        raise click.UsageError("--cluster needs an output folder: -o OUT")
    if address and Path(address).exists():
        raise click.UsageError(f"--cluster took {address} as the cluster's address; write "
                               "--cluster=ADDRESS, or put --cluster after the inputs")
    if not paths:
        raise click.UsageError("give the folders, files or globs to code (SRC…)")
    require_ray()  # before any work: one line when Ray is missing
    t0 = time.perf_counter()
    out = Path(out_dir)
    if verb == "encode":
        names = {f.name for f in fields(EncodeSettings)}
        settings = EncodeSettings.of(
            measure_psnr=psnr_report or verbose or as_json,
            **{k: v for k, v in kw.items() if k in names and k != "measure_psnr"})
        from lcodec import models

        if settings.model is not None:  # before any file, as lcodec encode does
            models.find(settings.model)
        else:
            models.listing()
        job: Any = EncodeJob(settings, force=True)
        pairs = find_inputs(paths, out, IMAGE_SUFFIXES, ".lic")
    else:
        from lcodec.container import DEFAULT_MAX_PIXELS
        from lcodec.imageio import image_format_for

        suffix = "." + kw.get("fmt", "png").lstrip(".")
        image_format_for("x" + suffix)
        job = DecodeJob(max_pixels=kw.get("max_pixels") or DEFAULT_MAX_PIXELS,
                        device=kw.get("device", "cpu"), force=True,
                        out_quality=kw.get("out_quality"))
        pairs = find_inputs(paths, out, {".lic"}, suffix)
    manifest_path = Path(manifest) if manifest else out / MANIFEST_NAME
    out.mkdir(parents=True, exist_ok=True)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)

    counts = {"ok": 0, "skipped": 0, "error": 0}
    tmp = manifest_path.with_name(f".{manifest_path.name}.{os.getpid()}.tmp")
    # Written as results arrive and renamed into place at the end, even when stopped: an
    # interrupted run leaves the manifest of what it finished.
    with _renamed(tmp, manifest_path), open(tmp, "w", encoding="utf-8") as log:
        def record(row: dict[str, Any]) -> None:
            counts[row["status"]] += 1
            log.write(json.dumps(row) + "\n")
            log.flush()
            if row["status"] == "error" and not quiet:
                named = row["error"] if row["source"] in row["error"] else \
                    f"{row['source']}: {row['error']}"
                click.echo(f"Error: {named}", err=True)
            elif verbose and not as_json:
                click.echo(_line(row), err=True)

        todo = []
        for source, output in pairs:
            done = existing_output(verb, output) if resume else None
            if done is None:
                todo.append({"source": source, "output": output})
            else:
                record({"source": source, "output": output, **done, "seconds": 0.0,
                        "status": "skipped", "error": None})
        if todo:
            _code(todo, job, kw, address, record, map_coder)

    seconds = time.perf_counter() - t0
    summary = {"files": len(pairs), **counts, "seconds": round(seconds, 2),
               "images_per_s": round(counts["ok"] / seconds, 3) if seconds else None,
               "manifest": str(manifest_path)}
    if as_json:
        click.echo(json.dumps(summary))
    elif not quiet or counts["error"]:
        click.echo(f"{verb}d {counts['ok']}, skipped {counts['skipped']}, failed "
                   f"{counts['error']} of {len(pairs)} files in {seconds:.1f} s "
                   f"({summary['images_per_s']} images/s); manifest {manifest_path}",
                   err=True)
    if counts["error"]:
        raise SystemExit(1)


@contextlib.contextmanager
def _renamed(tmp: Path, target: Path):
    try:
        yield
    finally:
        if tmp.exists():
            os.replace(tmp, target)


def _code(todo: list[dict[str, str]], job: Any, kw: dict[str, Any], address: str,
          record, map_coder) -> None:
    """Run ``job`` over the ``todo`` rows on Ray, recording each result as it arrives."""
    ctx = click.get_current_context(silent=True)
    explicit_jobs = ctx is not None and ctx.get_parameter_source("jobs") not in (
        None, click.core.ParameterSource.DEFAULT)
    threads = kw.get("threads") or 1
    workers = kw.get("jobs", 1) if explicit_jobs else None
    cpus = (workers or max(1, (os.cpu_count() or 1) // threads)) * threads
    ray, started = _start_ray(address, cpus)
    try:
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
        pool: int | tuple[int, int]
        if workers is None:  # all the CPUs there are; on a cluster, a pool that grows to it
            total = int(ray.cluster_resources().get("CPU", 1))
            workers = min(len(todo), max(1, total // threads))
            pool = (1, workers) if address else workers
        else:
            pool = workers = min(len(todo), workers)
        blocks = min(len(todo), max(4 * workers, math.ceil(len(todo) / ROWS_PER_BLOCK)))
        ds = ray.data.from_items(todo, override_num_blocks=blocks)
        ds = map_coder(ds, FileWork(job), concurrency=pool, threads=threads, batch_size=1)
        for row in ds.iter_rows():
            record({"source": row["source"], "output": row["output"], "bytes": row["bytes"],
                    "bpp": row["bpp"], "knob": row["knob"], "psnr": row.get("psnr"),
                    "seconds": row["seconds"], "status": "error" if row["error"] else "ok",
                    "error": row["error"]})
    finally:
        if started:
            ray.shutdown()


def _line(row: dict[str, Any]) -> str:
    if row["status"] == "skipped":
        return f"{row['source']} -> {row['output']}: skipped (exists)"
    psnr = f", PSNR {row['psnr']:.2f} dB" if row.get("psnr") is not None else ""
    bpp = f", {row['bpp']:.4f} bpp" if row.get("bpp") is not None else ""
    return f"{row['source']} -> {row['output']}: {row['bytes']} bytes{bpp}{psnr}, " \
           f"{row['seconds']:.2f} s"
