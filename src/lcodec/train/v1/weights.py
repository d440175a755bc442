"""v1 weights outside a checkpoint: fp16 snapshots (``snapshot.safetensors``) and the weights a
run or an export starts from (a snapshot, a checkpoint or a shipped model)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from lcodec.nets import CWIC
from lcodec.train.v1.config import TrainConfig


def save_snapshot(model: CWIC, cfg: TrainConfig, step: int, path: Path) -> None:
    """fp16 weights (without usage counters) plus config and step, written atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().half().cpu().contiguous() for k, v in model.state_dict().items()
               if v.is_floating_point()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"train_config": json.dumps(asdict(cfg)),
                                           "step": str(step)})
    tmp.replace(path)


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict, int]:
    """(float32 state dict, training config dict, step) of a snapshot, a checkpoint or a
    shipped model (whose card, beside it, gives the config and step)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k).float() for k in f.keys()  # noqa: SIM118
                     if not k.startswith("entropy.")}
        if "train_config" in meta:
            return state, json.loads(meta["train_config"]), int(meta["step"])
        card = path.with_suffix(".json")
        training = json.loads(card.read_text()).get("training", {}) if card.exists() else {}
        return state, training, int(training.get("steps_done", 0))
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return ckpt["model"], ckpt["config"], ckpt["step"]
