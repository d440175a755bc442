"""Freezing a training run: calibrate the float TCAEs, build the exact integer models, write
the weights file (named by its hash when shipped for an autoencoder) and a report comparing
float and integer code lengths."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from lcodec.entropy.tcae import TcaeModels
from lcodec.entropy.tcae_config import TcaeConfig
from lcodec.entropy.tcae_net import TcaeNet, freeze
from lcodec.train.tcae.codes import load_codes, split
from lcodec.train.tcae.evaluate import evaluate_float, evaluate_frozen
from lcodec.train.tcae.inputs import NAMES, batch_inputs


def load_run(run: Path, device: str = "cpu") -> dict[str, TcaeNet]:
    saved = torch.load(Path(run) / "last.ckpt", map_location=device, weights_only=False)
    nets = {}
    for n in NAMES:
        nets[n] = TcaeNet(TcaeConfig.from_dict(saved["configs"][n]))
        nets[n].load_state_dict(saved["nets"][n])
        nets[n].eval()
    return nets


def freeze_models(nets: dict[str, TcaeNet], codes: dict, idx: np.ndarray) -> TcaeModels:
    """Calibrate activation scales on crops ``idx`` and build the integer models."""
    levels = int(codes["levels"])
    cfgs = {n: nets[n].cfg for n in NAMES}
    batches: dict[str, list] = {n: [] for n in NAMES}
    for s in range(0, len(idx), 8):
        sel = idx[s : s + 8]
        qi, luma, chroma = (torch.from_numpy(codes[k][sel]) for k in ("qi", "luma", "chroma"))
        knob = torch.from_numpy(codes["knob"][sel])
        for name, inp in batch_inputs(qi, luma, chroma, levels, cfgs, knob).items():
            batches[name].append(inp)
    frozen = {n: freeze(nets[n].cpu().float(), batches[n]) for n in NAMES}
    return TcaeModels(frozen["importance"], frozen["luma"], frozen["chroma"])


def freeze_run(run: Path, codes: dict, out: Path, calib: int = 32, check: int = 32) -> Path:
    """Freeze a run's float models; compare float and integer code lengths on ``check``
    validation crops (written to ``<out>.json``)."""
    nets = load_run(run)
    tr, va = split(codes)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(tr, size=min(calib, len(tr)), replace=False))
    models = freeze_models(nets, codes, idx)
    eid = models.save(out)
    report = {"entropy_id": eid.hex(), "calibration_crops": len(idx)}
    if len(va) and check:
        cfgs = {n: nets[n].cfg for n in NAMES}
        report["float"] = evaluate_float(nets, codes, va[:check], cfgs, torch.device("cpu"), 8)
        report["integer"] = evaluate_frozen(models, codes, va[:check])
    Path(str(out) + ".json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report), file=sys.stderr)
    return out


def ship_run(run: Path, codes_path: Path, model: str, out_dir: Path, calib: int = 32,
             note: str = "") -> Path:
    """Freeze a run for the shipped autoencoder ``model``: ``<out_dir>/<model>-tcae-<id>
    .safetensors`` (the id is the hash of its bytes, as `.lic` headers carry it) and a card
    beside it (the run's config, steps, the codes it was trained on, float vs integer bits)."""
    from lcodec import models

    info = models.find(model)
    model = info.name  # the prefix LoadedModel.tcae looks for, even when given "<name>-<id>"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"{model}-tcae.tmp.safetensors"
    freeze_run(run, load_codes(codes_path), tmp, calib)
    report = json.loads(Path(str(tmp) + ".json").read_text())
    Path(str(tmp) + ".json").unlink()
    final = out_dir / f"{model}-tcae-{report['entropy_id']}.safetensors"
    tmp.replace(final)
    saved = torch.load(Path(run) / "last.ckpt", map_location="cpu", weights_only=False)
    card = {
        "name": f"{model}-tcae", "entropy_id": report["entropy_id"],
        "method": "INCLINED_TCAE_V1", "for_model": f"{model} ({info.model_id.hex()})",
        "training": {"codes": str(codes_path), "steps": saved["state"]["step"],
                     "config": json.loads((Path(run) / "config.json").read_text()),
                     "note": note},
        "freeze": report,
    }
    final.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return final
