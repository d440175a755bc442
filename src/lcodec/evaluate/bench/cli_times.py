"""The command line as a user meets it: wall seconds of ``lcodec encode``/``decode`` run as
subprocesses, and of a process that only starts up; and ``lcodec encode`` at each effort
level."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class CliTiming:
    image: str
    startup_s: float
    encode_s: float
    decode_s: float


@dataclass
class EffortTiming:
    effort: int
    encode_s: list[float]  # per image, the best of the repeats
    bpp: list[float]  # per image


def _wall(cmd: list[str], repeat: int, env: dict[str, str]) -> float:
    import subprocess

    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
    return float(best)


def time_cli(path: Path, model_stem: str, knob: float, repeat: int, threads: int,
             entropy: str = "auto") -> CliTiming:
    """Wall seconds of ``lcodec encode``/``decode`` run as a user runs them, and of a
    process that only starts up (imports torch and loads the model)."""
    import tempfile

    env = _env(threads)
    py = _command()
    with tempfile.TemporaryDirectory() as tmp:
        lic, png = str(Path(tmp) / "a.lic"), str(Path(tmp) / "a.png")
        startup = _wall([sys.executable, "-c",
                         "import lcodec.api, lcodec.models as m; "
                         f"m.load(m.find({model_stem!r}), 'cpu')"], repeat, env)
        enc = _wall([*py, "encode", str(path), lic, "--knob", str(knob), "--model",
                     model_stem, "--entropy", entropy, "--force", "-q"], repeat, env)
        dec = _wall([*py, "decode", lic, png, "--force", "-q"], repeat, env)
    return CliTiming(path.name, startup, enc, dec)


def _env(threads: int) -> dict[str, str]:
    """The subprocesses' environment: ours, with ``threads`` OpenMP threads where given."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _command() -> list[str]:
    script = Path(sys.executable).with_name("lcodec")  # the command users run
    return [str(script)] if script.exists() else [sys.executable, "-m", "lcodec.cli"]


def time_efforts(paths: list[Path], efforts: list[int], rate: list[str], repeat: int,
                 threads: int) -> list[EffortTiming]:
    """Wall seconds of ``lcodec encode IMG OUT.lic RATE -e N`` (``rate``: ``--bpp B`` or
    ``--knob K``) on each image at each effort, and the bpp of its file."""
    import tempfile

    from PIL import Image

    env = _env(threads)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        lic = Path(tmp) / "a.lic"
        for effort in efforts:
            row = EffortTiming(effort, [], [])
            for path in paths:
                row.encode_s.append(_wall([*_command(), "encode", str(path), str(lic), *rate,
                                           "-e", str(effort), "--force", "-q"], repeat, env))
                with Image.open(path) as im:
                    row.bpp.append(lic.stat().st_size * 8 / (im.width * im.height))
            out.append(row)
    return out
