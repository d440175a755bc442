"""Registry of shipped weights: ``models/<name>-<sha8>.safetensors`` plus a JSON model card.

The file's SHA-256 prefix is the model id written into every `.lic` header, so a decoder
finds the exact weights a file was made with (or says which ones are missing). Config and
architecture travel in the safetensors metadata; nothing is inferred from tensor shapes.

The checkout keeps the weights in its top-level ``models/`` folder; a wheel installs that
folder as the data package :data:`WEIGHTS_PACKAGE` beside ``lcodec`` (``pyproject.toml``),
retired models included, so every file a release wrote decodes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from lcodec.errors import LcodecError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MODEL = "v2-mse"
WEIGHTS_PACKAGE = "lcodec_models"  # the models/ folder, as a wheel installs it
MODEL_ID_BYTES = 8
ENTROPY_KEYS = ("entropy.qi", "entropy.luma", "entropy.chroma")
ARCHITECTURE_NAMES = ("cwic", "cwic2")  # lcodec.nets.registry's names, known without torch
T = TypeVar("T")


def models_dir() -> Path:
    """Where the weights are: ``$LCODEC_MODELS`` if set; else the :data:`WEIGHTS_PACKAGE`
    installed beside this package (a wheel puts both in one folder); else ``models/`` of the
    checkout this package runs from (``src/lcodec`` → ``models``, an editable install)."""
    env = os.environ.get("LCODEC_MODELS")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parent
    installed = package.parent / WEIGHTS_PACKAGE
    if installed.is_dir() or package.parent.name != "src":
        return installed
    return package.parents[1] / "models"


def _no_models() -> LcodecError:
    """The error for a folder without weights, naming it and how to get some."""
    if os.environ.get("LCODEC_MODELS"):
        return LcodecError(f"no models in {models_dir()}, the folder LCODEC_MODELS names; point "
                           "it at a folder of lcodec weights (<name>-<id>.safetensors) or unset it")
    return LcodecError(f"no models are installed in {models_dir()}; reinstall lcodec or set "
                       "LCODEC_MODELS to a folder of lcodec weights (<name>-<id>.safetensors)")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    model_id: bytes

    @cached_property
    def card(self) -> dict:
        """The JSON card beside the weights (read once per ModelInfo)."""
        card_path = self.path.with_suffix(".json")
        return json.loads(card_path.read_text()) if card_path.exists() else {}

    @property
    def distortion(self) -> str:
        """What the model was trained to minimise (``mse`` or ``msssim``), from its card."""
        return str(self.card.get("training", {}).get("distortion", "mse"))

    @property
    def retired(self) -> bool:
        """A superseded model: kept so the files it wrote decode, never chosen to encode."""
        return bool(self.card.get("retired"))

    def describe(self, bpp: float = 0.25) -> str:
        """One line for ``lcodec models``: the card's measured Kodak point at ``bpp`` and, for
        a retired model, ``decode-only`` with its training run (what tells apart the old
        weights of one name)."""
        parts = []
        if self.retired:
            t = self.card.get("training", {})
            run = [f"net {t['net']}"] if "net" in t else []
            if "steps_done" in t:
                run.append(f"{t['steps_done']:,} steps")
            if "cpu_hours" in t:
                run.append(f"{t['cpu_hours']:.1f} CPU-h")
            elif "wall_minutes" in t:
                run.append(f"{t['wall_minutes']} min wall clock")
            parts.append("decode-only" + (f" ({', '.join(run)})" if run else ""))
        psnr, ms_ssim = kodak_at(self, bpp), kodak_at(self, bpp, "ms_ssim_db")
        if psnr is not None:
            point = f"Kodak {bpp:g} bpp: {psnr:.1f} dB PSNR"
            parts.append(point + (f", {ms_ssim:.1f} dB MS-SSIM" if ms_ssim is not None else ""))
        return "; ".join(parts)


def available(folder: Path | None = None) -> list[ModelInfo]:
    """Shipped models, from their file names (``<name>-<16 hex digits>.safetensors``)."""
    folder = folder or models_dir()
    out = []
    for path in sorted(folder.glob("*.safetensors")):
        name, _, hexid = path.stem.rpartition("-")
        if name and len(hexid) == 2 * MODEL_ID_BYTES:
            try:
                out.append(ModelInfo(name, path, bytes.fromhex(hexid)))
            except ValueError:
                continue
    return out


def encoders() -> list[ModelInfo]:
    """The models that encode: the shipped ones that are not retired."""
    return [m for m in available() if not m.retired]


def by_id(model_id: bytes) -> ModelInfo | None:
    """The installed model with this id (retired ones too), or None."""
    return next((m for m in available() if m.model_id == model_id), None)


def find(name: str | None = None, model_id: bytes | None = None) -> ModelInfo:
    """Look a model up by name (default: :data:`DEFAULT_MODEL`) or by the id in a file.

    By id, any installed model (retired ones decode their old files); by name, the model of
    that name that is not retired, or a retired one named by its full file stem."""
    if model_id is not None:
        info = by_id(model_id)
        if info is None:
            raise LcodecError(
                f"the file needs model {model_id.hex()}, which is not installed in "
                f"{models_dir()}; install the lcodec release that wrote it or set LCODEC_MODELS")
        return info
    models = available()
    if not models:
        raise _no_models()
    name = name or DEFAULT_MODEL
    for m in models:
        if m.path.stem == name or (m.name == name and not m.retired):
            return m
    names = ", ".join(sorted({m.name for m in models if not m.retired})) or "none"
    if any(m.name == name for m in models):
        raise LcodecError(f"model {name!r} is retired: it decodes the files it wrote but no "
                          f"longer encodes; models that encode: {names} (see lcodec models)")
    raise LcodecError(f"unknown model {name!r}; installed models: {names}")


def listing(all_models: bool = False) -> list[ModelInfo]:
    """What ``lcodec models`` lists: the models that encode, the default first; with
    ``all_models``, then the retired ones (decode-only). Raises when there is none to list,
    naming the folder searched."""
    models = available()
    if not models:
        raise _no_models()
    current = sorted(encoders(), key=lambda m: m.name != DEFAULT_MODEL)
    if not current and not all_models:
        raise LcodecError(f"no model that encodes is installed in {models_dir()} (only "
                          f"{len(models)} decode-only; lcodec models --all lists them)")
    if not all_models:
        return current
    retired = [m for m in models if m.retired]  # per name in training order: oldest first
    return current + sorted(retired, key=lambda m: (
        m.name, m.card.get("training", {}).get("steps_done", 0)))


def kodak_curve(info: ModelInfo, metric: str = "psnr") -> list[tuple[float, float]]:
    """The model card's measured Kodak (bpp, ``metric``) points, by bpp; empty without a
    curve. ``metric``: ``psnr`` or ``ms_ssim_db`` (what the card's points record)."""
    points = info.card.get("kodak", {}).get("points", [])
    return sorted((p["bpp"], p[metric]) for p in points if metric in p)


def kodak_at(info: ModelInfo, bpp: float, metric: str = "psnr") -> float | None:
    """The model card's measured Kodak ``metric`` at ``bpp`` (linear between measured
    points), or None where the card has no curve or ``bpp`` lies outside its measured range."""
    points = kodak_curve(info, metric)
    for (b0, q0), (b1, q1) in zip(points, points[1:], strict=False):
        if b0 <= bpp <= b1:
            return q0 if b1 == b0 else q0 + (q1 - q0) * (bpp - b0) / (b1 - b0)
    return None


def for_bpp(bpp: float) -> ModelInfo:
    """The shipped model measured best (Kodak PSNR, from the cards) at ``bpp`` among those
    trained for the default model's distortion (an MS-SSIM model is chosen by name only): each
    model is judged at ``bpp`` clamped to its measured range, i.e. at the nearest rate it
    reaches. The default model when no card has a curve or none is better."""
    default = find()
    best, best_psnr = default, None
    same = (m for m in encoders() if m != default and m.distortion == default.distortion)
    for info in [default, *same]:
        points = kodak_curve(info)
        if points:
            psnr = kodak_at(info, min(max(bpp, points[0][0]), points[-1][0]))
            if psnr is not None and (best_psnr is None or psnr > best_psnr):
                best, best_psnr = info, psnr
    return best


def entropy_dir() -> Path:
    """Separately trained entropy models (TCAE weights) live in ``models/entropy/``."""
    return models_dir() / "entropy"


def find_entropy(entropy_id: bytes | None = None, prefix: str | None = None,
                 model_id: bytes | None = None) -> Path | None:
    """An entropy model file by the id written in a file, or one named ``<prefix>-<id>``:
    where several are (a model name shipped in several versions), the one whose card says it
    is for ``model_id`` (``for_model``), else the first."""
    folder = entropy_dir()
    if not folder.is_dir():
        return None
    named = []
    for path in sorted(folder.glob("*.safetensors")):
        name, _, hexid = path.stem.rpartition("-")
        if entropy_id is not None and hexid == entropy_id.hex():
            return path
        if prefix is not None and name == prefix:
            named.append(path)
    if model_id is not None and len(named) > 1:
        for path in named:
            card = path.with_suffix(".json")
            if card.exists() and model_id.hex() in json.loads(card.read_text()).get(
                    "for_model", ""):
                return path
    return named[0] if named else None


class LoadedModel:
    """A model's weights and frozen entropy tables, ready to code images. The weights load as
    numpy arrays; the torch network (:attr:`net`, which encoders and the float decoders run)
    is built on first use, so a decoder whose synthesis is numpy alone never imports torch."""

    def __init__(self, info: ModelInfo, device: str = "cpu") -> None:
        from safetensors import safe_open

        from lcodec.config import NetConfig

        data = info.path.read_bytes()
        if hashlib.sha256(data).digest()[:MODEL_ID_BYTES] != info.model_id:
            raise LcodecError(f"weights file {info.path} does not match its id; reinstall it")
        with safe_open(str(info.path), framework="np") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        if meta.get("architecture") not in ARCHITECTURE_NAMES or "config" not in meta:
            raise LcodecError(f"{info.path} is not an lcodec weights file")
        self.info = info
        self.architecture: str = meta["architecture"]
        self.config = NetConfig.from_json(meta["config"])
        self.tables = {k: arrays.pop(k) for k in ENTROPY_KEYS}
        self._weights = arrays
        self.device = device
        self._tcae = None
        self._derived: dict[str, object] = {}
        self._derived_lock = threading.RLock()

    def float64_weights(self, prefixes: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The network's weights whose names start with one of ``prefixes``, as float64
        (exactly the stored values)."""
        return {k: v.astype("float64") for k, v in self._weights.items()
                if k.startswith(prefixes)}

    @property
    def net(self):
        """The torch network in eval mode on :attr:`device` (built on first use)."""
        return self.cached("net", self._build_net)

    def _build_net(self):
        import torch

        import lcodec.nets  # noqa: F401  (registers the architectures)
        from lcodec.nets.registry import ARCHITECTURES

        net = ARCHITECTURES[self.architecture](self.config)
        missing, unexpected = net.load_state_dict(
            {k: torch.from_numpy(v).float() for k, v in self._weights.items()}, strict=False
        )
        if unexpected or any(not k.endswith(".idle") for k in missing):
            raise LcodecError(f"{self.info.path} does not match its declared architecture")
        return net.eval().to(self.device)

    def cached(self, key: str, build: Callable[[], T]) -> T:
        """The value ``build()`` derives from these weights (an integer decoder, say), built
        on first use under ``key`` and kept with the model; one build however many threads
        ask at once."""
        if key not in self._derived:
            with self._derived_lock:
                if key not in self._derived:
                    self._derived[key] = build()
        return self._derived[key]  # type: ignore[return-value]

    @property
    def tcae(self):
        """This model's inclined-TCAE entropy models (``models/entropy/<name>-tcae-<id>``), or
        None when none is installed."""
        if self._tcae is None:
            path = find_entropy(prefix=f"{self.info.name}-tcae", model_id=self.info.model_id)
            if path is not None:
                self._tcae = load_tcae(path)
        return self._tcae

    def entropy_model(self, entropy_id: bytes):
        """The installed entropy model whose id a file names (``models/entropy/``)."""
        path = find_entropy(entropy_id=entropy_id)
        if path is None:
            raise LcodecError(f"the file needs entropy model {entropy_id.hex()}, which is not "
                              "installed; install the lcodec release that wrote it")
        return load_tcae(path)


_TCAE_CACHE: dict[Path, object] = {}


def load_tcae(path: Path):
    """Load (once per process) the frozen integer TCAE models in ``path``."""
    from lcodec.entropy.tcae import TcaeModels

    with _LOCK:
        if path not in _TCAE_CACHE:
            _TCAE_CACHE[path] = TcaeModels.load(path)
        return _TCAE_CACHE[path]


_CACHE: dict[tuple[Path, str], LoadedModel] = {}
_LOCK = threading.RLock()


def load(info: ModelInfo, device: str = "cpu") -> LoadedModel:
    """Load (once per process and device) and return a model."""
    key = (info.path, device)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = LoadedModel(info, device)
        return _CACHE[key]
