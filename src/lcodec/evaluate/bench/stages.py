"""One lcodec encode and decode timed stage by stage through the codec's own path (its stage
timer and the range coder's "coding" charges), with the peak memory of each."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lcodec.evaluate.bench.memory import RssPeak

ENCODE_STAGES = ("network", "probs", "coding", "container")
DECODE_STAGES = ("container", "probs", "coding", "network")


class StageTimer:
    """Accumulates seconds per stage; ``sync`` runs before each reading (CUDA synchronize).

    Stages nest: while an inner stage runs, the outer one's clock is paused, so each second
    is counted in exactly one stage.
    """

    def __init__(self, sync: Callable[[], None] = lambda: None) -> None:
        self.seconds: dict[str, float] = {}
        self.sync = sync
        self._stack: list[str] = []
        self._since = 0.0

    def _lap(self) -> float:
        """Charge the time since the last reading to the running stage; returns now."""
        self.sync()
        now = time.perf_counter()
        if self._stack:
            stage = self._stack[-1]
            self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._since
        self._since = now
        return now

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        self._lap()
        self._stack.append(stage)
        try:
            yield
        finally:
            self._lap()
            self._stack.pop()

@dataclass
class LcodecTiming:
    image: str
    bytes: int
    bpp: float
    encode: dict[str, float]
    decode: dict[str, float]
    rss_encode: int
    rss_decode: int
    entropy: str = ""  # EntropyMethod name of the file
    gpu_encode: int | None = None
    gpu_decode: int | None = None
    pixels: np.ndarray | None = field(default=None, repr=False)


def _sync_for(device: str) -> Callable[[], None]:
    if device == "cuda":
        import torch

        return torch.cuda.synchronize
    return lambda: None


def encode_stages(loaded, src, knob: float, t: StageTimer, entropy: str = "auto") -> bytes:
    """``encoder.analyse(entropy=entropy)`` (network) + ``ImageAnalysis.encode(knob)``, the codec's
    own path, timed by the stages it reports to ``t``."""
    from lcodec import encoder

    with t("network"):
        analysis = encoder.analyse(loaded, src, entropy)
    return analysis.encode(knob, timer=t)


def decode_stages(data: bytes, device: str, t: StageTimer) -> np.ndarray:
    """``api.decode_full``'s path (parse, model look-up, ``codec.decode``) timed by stage."""
    from lcodec import codec, container, models

    with t("container"):
        lic = container.unpack(data)
        loaded = models.load(models.find(model_id=lic.header.model_id), device)
    return codec.decode(loaded, lic, timer=t).pixels


def time_lcodec(path: Path, loaded, knob: float, device: str, repeat: int,
                entropy: str = "auto") -> LcodecTiming:
    """Best-of-``repeat`` stage times of one encode and one decode of ``path`` with the
    entropy method ``encoder.analyse(…, entropy)`` picks."""
    import torch

    from lcodec import container
    from lcodec.imageio import load_image

    src = load_image(path, str(path))  # as `lcodec encode` reads it
    sync = _sync_for(device)
    best_enc: dict[str, float] | None = None
    best_dec: dict[str, float] | None = None
    rss_e = rss_d = 0
    gpu_e = gpu_d = None
    data = b""
    pixels = None
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        te = StageTimer(sync)
        with RssPeak() as rp:
            data = encode_stages(loaded, src, knob, te, entropy)
        rss_e = max(rss_e, rp.peak)
        if device == "cuda":
            gpu_e = max(gpu_e or 0, torch.cuda.max_memory_allocated())
            torch.cuda.reset_peak_memory_stats()
        td = StageTimer(sync)
        with RssPeak() as rp:
            pixels = decode_stages(data, device, td)
        rss_d = max(rss_d, rp.peak)
        if device == "cuda":
            gpu_d = max(gpu_d or 0, torch.cuda.max_memory_allocated())
        if best_enc is None or sum(te.seconds.values()) < sum(best_enc.values()):
            best_enc = te.seconds
        if best_dec is None or sum(td.seconds.values()) < sum(best_dec.values()):
            best_dec = td.seconds
    h, w = src.rgb.shape[:2]
    method = container.unpack(data).header.entropy_method.name
    return LcodecTiming(path.name, len(data), len(data) * 8 / (w * h), best_enc or {},
                        best_dec or {}, rss_e, rss_d, method, gpu_e, gpu_d, pixels)
