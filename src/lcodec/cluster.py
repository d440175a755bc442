"""Coding collections on Ray: ``encode_dataset`` / ``decode_dataset`` for Ray Data users, and
the actor class ``lcodec encode/decode --cluster`` runs.

Ray's batch-inference pattern (``doc/source/data/batch_inference.rst``): a callable class
passed to ``Dataset.map_batches`` runs as a pool of actors, each loading the model once (in
``__init__``) and coding one batch of rows per call. The same code runs on an embedded local
runtime (``ray.init()``) and on an existing cluster (``ray.init(address=…)``).

Ray is an optional dependency (``pip install 'lcodec[cluster]'``), imported only inside the
functions here, so nothing else in lcodec imports it::

    import ray
    from lcodec.cluster import encode_dataset
    from lcodec.settings import EncodeSettings

    ds = ray.data.read_binary_files("photos/", include_paths=True)   # columns bytes, path
    ds = encode_dataset(ds, EncodeSettings(bpp=0.25), concurrency=4)
    for row in ds.iter_rows():   # + lic (the .lic bytes, None on error) and error (or None)
        ...

Faults: a worker killed mid-batch is restarted and its batch is retried (actors with
``max_restarts=-1`` and ``max_task_retries=-1``); a bad input is an error *in its row*, never
an exception that stops the dataset.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lcodec.errors import LcodecError
from lcodec.settings import EncodeSettings

if TYPE_CHECKING:
    import ray.data

__all__ = ["Coder", "DecodeBytes", "EncodeBytes", "coder_options", "decode_dataset",
           "encode_dataset", "map_coder", "require_ray"]

NEEDS_RAY = "--cluster needs Ray: pip install 'lcodec[cluster]'"
# Test hook: a path; the first worker to remove the file there after coding a row exits at
# once (os._exit), as a killed worker would (tests/test_cluster.py).
CRASH_ONCE_ENV = "LCODEC_TEST_CRASH_ONCE"


def require_ray():
    """The ``ray`` module, or one :class:`LcodecError` line saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra installs both)
    except ImportError:
        raise LcodecError(NEEDS_RAY) from None
    return ray


@dataclass(frozen=True)
class EncodeBytes:
    """One row's encode: image file bytes in ``column`` → `.lic` bytes in ``out_column``."""

    settings: EncodeSettings
    column: str = "bytes"
    out_column: str = "lic"

    def warm(self) -> None:
        """Load the model the settings name (or the default model) once per worker."""
        from lcodec import models
        from lcodec.devices import resolve_device

        models.load(models.find(self.settings.model), resolve_device(self.settings.device))

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        import io

        from lcodec import api
        from lcodec.imageio import load_image

        name = str(row.get("path") or "input")
        src = load_image(io.BytesIO(bytes(row[self.column])), name, self.settings.alpha,
                         self.settings.strip)
        res = api.encode_with_stats(src, self.settings)
        out = {self.out_column: res.data, "bpp": round(res.bpp, 5), "knob": res.knob}
        if res.psnr is not None:
            out["psnr"] = round(res.psnr, 3) if res.psnr != float("inf") else None
        return out

    def empty(self) -> dict[str, Any]:
        """The columns of a row that failed."""
        out = {self.out_column: None, "bpp": None, "knob": None}
        return out | ({"psnr": None} if self.settings.measure_psnr else {})


@dataclass(frozen=True)
class DecodeBytes:
    """One row's decode: `.lic` bytes in ``column`` → image file bytes (``fmt``) in
    ``out_column``."""

    column: str = "bytes"
    out_column: str = "image"
    fmt: str = "PNG"
    device: str = "cpu"

    def warm(self) -> None:
        from lcodec import models
        from lcodec.devices import resolve_device

        models.load(models.find(), resolve_device(self.device))

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from lcodec import api
        from lcodec.imageio import encode_image

        img = api.decode(bytes(row[self.column]), self.device)
        payload, _ = encode_image(img, self.fmt, img.info.get("icc_profile"),
                                  img.info.get("exif"), img.info.get("xmp"))
        return {self.out_column: payload}

    def empty(self) -> dict[str, Any]:
        return {self.out_column: None}


class Coder:
    """The actor: applies ``work`` (one row → its new columns) to every row of a batch.

    ``__init__`` sets the worker's threads (fixed, so a run does not depend on how
    many cores a node has; the encoder's bytes do not depend on them anyway) and loads the
    model once. A row whose work raises gets its ``error`` text and empty columns; the other
    rows of the batch go on. Adds ``error`` (None when fine) and ``seconds``.
    """

    def __init__(self, work: Callable[[dict[str, Any]], dict[str, Any]],
                 threads: int = 1) -> None:
        from lcodec.threads import set_threads

        set_threads(threads)
        self.work = work
        self.coded = 0
        with contextlib.suppress(LcodecError):  # reported per row, by rows that need it
            getattr(work, "warm", lambda: None)()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        names = list(batch)
        n = len(batch[names[0]]) if names else 0
        rows = [{k: batch[k][i] for k in names} for i in range(n)]
        results = []
        for row in rows:
            self._crash_for_tests()
            t0 = time.perf_counter()
            try:
                out, error = self.work(row), None
            except Exception as exc:  # noqa: BLE001  (one bad file never stops the job)
                msg = str(exc) if isinstance(exc, LcodecError) else \
                    f"{type(exc).__name__}: {exc}"
                out, error = getattr(self.work, "empty", dict)(), msg
            self.coded += 1
            results.append(row | out | {"error": error,
                                        "seconds": round(time.perf_counter() - t0, 3)})
        keys = list(dict.fromkeys(k for r in results for k in r))
        return {k: [r.get(k) for r in results] for k in keys}

    def _crash_for_tests(self) -> None:
        marker = os.environ.get(CRASH_ONCE_ENV)
        if marker and self.coded >= 1:
            try:
                os.unlink(marker)
            except FileNotFoundError:
                return
            os._exit(17)


def coder_options(concurrency: int | tuple[int, int], threads: int,
                  batch_size: int) -> dict[str, Any]:
    """``map_batches`` options for a :class:`Coder` pool: ``concurrency`` actors (or a
    (min, max) range, the pool growing with the work) of ``threads`` CPUs each.

    A worker that dies is restarted and its batch retried: Ray Data creates pool actors with
    ``max_restarts=-1`` and ``max_task_retries=-1`` unless told otherwise
    (``ray/data/_internal/execution/operators/actor_pool_map_operator.py``; passing them
    through ``**ray_remote_args`` is deprecated since Ray 2.60), so they are left to it."""
    from ray.data import ActorPoolStrategy

    if isinstance(concurrency, tuple):
        pool = ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    else:
        pool = ActorPoolStrategy(size=concurrency)
    return {"compute": pool, "batch_size": batch_size, "num_cpus": threads}


def encode_dataset(ds: ray.data.Dataset, settings: EncodeSettings | None = None,
                   column: str = "bytes", out_column: str = "lic",
                   concurrency: int | tuple[int, int] = 1, threads: int = 1,
                   batch_size: int = 1, **options: Any) -> ray.data.Dataset:
    """Encode a dataset of image file bytes (e.g. ``ray.data.read_binary_files``).

    Each row's ``column`` (bytes of a PNG, JPEG, …) is encoded with ``settings`` (an
    :class:`EncodeSettings`; ``options`` replace its fields, as in :func:`lcodec.api.encode`);
    the result adds ``out_column`` (the `.lic` bytes, None for a row that failed), ``bpp``,
    ``knob``, ``psnr`` (with ``measure_psnr=True``), ``error`` (the reason, or None) and
    ``seconds``. ``concurrency`` actors of ``threads`` torch threads (and Ray CPUs) each
    code ``batch_size`` rows per call. The bytes equal :func:`lcodec.api.encode`'s of the
    same image and settings. Lazy, like every Ray Data transform."""
    work = EncodeBytes(EncodeSettings.of(settings, **options), column, out_column)
    return map_coder(ds, work, concurrency, threads, batch_size)


def decode_dataset(ds: ray.data.Dataset, column: str = "bytes", out_column: str = "image",
                   fmt: str = "PNG", concurrency: int | tuple[int, int] = 1,
                   threads: int = 1, batch_size: int = 1,
                   device: str = "cpu") -> ray.data.Dataset:
    """Decode a dataset of `.lic` bytes in ``column`` to image files in ``fmt`` (PNG, …),
    added as ``out_column`` (None for a row that failed), with ``error`` and ``seconds``;
    options as :func:`encode_dataset`. The pixels equal :func:`lcodec.api.decode`'s."""
    return map_coder(ds, DecodeBytes(column, out_column, fmt.upper(), device), concurrency,
                threads, batch_size)


def map_coder(ds: ray.data.Dataset, work: Callable[[dict[str, Any]], dict[str, Any]],
              concurrency: int | tuple[int, int] = 1, threads: int = 1,
              batch_size: int = 1) -> ray.data.Dataset:
    """``ds`` with ``work`` (one row → its new columns; picklable, with optional ``warm()``
    and ``empty()``) applied to every row by a pool of :class:`Coder` actors."""
    require_ray()
    return ds.map_batches(Coder, fn_constructor_kwargs={"work": work, "threads": threads},
                          **coder_options(concurrency, threads, batch_size))
