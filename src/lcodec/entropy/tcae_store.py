"""The frozen TCAE file: three integer models, their configs and tables in one safetensors
file, whose SHA-256 prefix is the entropy model id a `.lic` header carries.

Specification: docs/format.md, "Section payloads (entropy method INCLINED_TCAE_V1)".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from lcodec.entropy.tcae_config import TcaeConfig
from lcodec.entropy.tcae_int import IntLayer, IntTcae
from lcodec.errors import LcodecError

FORMAT = "inclined-tcae-v1"
SECTIONS = ("importance", "luma", "chroma")


def model_tensors(model: IntTcae, prefix: str) -> dict[str, np.ndarray]:
    """The tensors of one model, named ``<prefix>.<layer>.<field>``."""
    out = {f"{prefix}.first.table": model.first.astype(np.int8),
           f"{prefix}.exp": model.exp.astype(np.int64)}
    if model.side is not None:
        out[f"{prefix}.first.side"] = model.side.astype(np.int8)
    if model.knob_bias is not None:
        out[f"{prefix}.first.knob"] = model.knob_bias.astype(np.int64)
    named = [("first", model.first_layer)] + [(f"l{i}", x) for i, x in enumerate(model.layers)]
    for name, layer in named:
        if name != "first":
            out[f"{prefix}.{name}.w"] = layer.w.astype(np.int8)
        out[f"{prefix}.{name}.bias"] = layer.bias.astype(np.int64)
        out[f"{prefix}.{name}.mult"] = layer.mult.astype(np.int64)
        out[f"{prefix}.{name}.shift"] = layer.shift.astype(np.int64)
    return out


def model_from_tensors(cfg: TcaeConfig, t: dict[str, np.ndarray], prefix: str) -> IntTcae:
    """The model stored under ``prefix`` (inverse of :func:`model_tensors`)."""
    def layer(name: str, has_w: bool = True) -> IntLayer:
        w = t[f"{prefix}.{name}.w"].astype(np.float32) if has_w else np.zeros((0, 0))
        return IntLayer(w, t[f"{prefix}.{name}.bias"].astype(np.int64),
                        t[f"{prefix}.{name}.mult"].astype(np.int64),
                        t[f"{prefix}.{name}.shift"].astype(np.int64))

    try:
        side = t.get(f"{prefix}.first.side")
        knob = t[f"{prefix}.first.knob"].astype(np.int64) if cfg.knob_buckets else None
        return IntTcae(cfg, t[f"{prefix}.first.table"].astype(np.int64),
                       None if side is None else side.astype(np.int64), layer("first", False),
                       [layer(f"l{i}") for i in range(2 + 2 * cfg.blocks)],
                       t[f"{prefix}.exp"], knob)
    except KeyError as exc:
        raise LcodecError(f"TCAE weights file lacks tensor {exc}") from None


def save(models: dict[str, IntTcae], path: str | Path) -> bytes:
    """Write the safetensors file (atomically); returns its 8-byte entropy id."""
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT}
    for name, m in models.items():
        tensors.update(model_tensors(m, name))
        meta[f"{name}.config"] = json.dumps(m.cfg.to_dict(), sort_keys=True)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    # safetensors.numpy writes an array's memory as is: a transposed (Fortran-ordered)
    # array would come back scrambled, so every array is made C-contiguous first
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return file_id(path)


def load(path: str | Path) -> tuple[list[IntTcae], bytes]:
    """The models of :data:`SECTIONS`, in that order, and the file's entropy id."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as load_bytes

    path = Path(path)
    try:
        data = path.read_bytes()
        tensors = load_bytes(data)
        meta = _metadata(data)
    except (OSError, SafetensorError, ValueError) as exc:
        raise LcodecError(f"cannot read TCAE weights {path}: {exc}") from None
    if meta.get("format") != FORMAT:
        raise LcodecError(f"{path} is not an {FORMAT} weights file")
    try:
        cfgs = {n: TcaeConfig.from_dict(json.loads(meta[f"{n}.config"])) for n in SECTIONS}
    except (KeyError, TypeError, ValueError) as exc:
        raise LcodecError(f"{path} has a malformed TCAE config ({exc})") from None
    try:
        models = [model_from_tensors(cfgs[n], tensors, n) for n in SECTIONS]
    except (ValueError, TypeError, IndexError) as exc:
        raise LcodecError(f"{path} holds malformed TCAE tensors ({exc})") from None
    return models, hashlib.sha256(data).digest()[:8]


def file_id(path: str | Path) -> bytes:
    """Entropy model id: the first 8 bytes of the file's SHA-256."""
    return hashlib.sha256(Path(path).read_bytes()).digest()[:8]


def _metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors byte string."""
    if len(data) < 8:
        raise ValueError("file too short")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError("bad header length")
    header = json.loads(data[8 : 8 + n])
    return header.get("__metadata__") or {}
