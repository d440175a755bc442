"""A v2 run folder: its data, network and optimizer, and its checkpoints (``last.ckpt``,
``stable.ckpt``), resumed or initialised from other weights."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from lcodec.config import CONFIGS
from lcodec.imageio import list_images
from lcodec.nets.cwic2 import CWIC2
from lcodec.train.data import CropSampler, centre_crops, is_validation, load_rgb
from lcodec.train.qat import is_decoder_param
from lcodec.train.rng import rng_state, set_rng_state
from lcodec.train.v2.config import RDConfig
from lcodec.train.v2.context_rate import ContextRate


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 / AMX). Without it, autocast
    emulates bf16 and a training step is slower, not faster (measured on an AVX2 AMD EPYC:
    16 s per step against 1.8 s in fp32)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


class Run:
    """One v2 run folder: its data, network, optimizer and checkpoints (trained by
    :func:`lcodec.train.v2.loop.train`)."""

    def __init__(self, out: Path, cfg: RDConfig) -> None:
        self.out = out
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        net_cfg = CONFIGS[cfg.net]
        if cfg.lam_range is not None:  # recorded in the checkpoint's net_config and the card
            net_cfg = replace(net_cfg, lam_range=cfg.lam_range)
        self.net = CWIC2(net_cfg)
        # The TCAE context models: trained jointly with rate "context"; with another rate,
        # held fixed and only measuring (validation's bpp under them, for a control run).
        self.context = None
        if cfg.context_init:
            self.context = ContextRate.from_tcae_run(Path(cfg.context_init).expanduser())
        joint = cfg.rate == "context"
        trained = []
        for name, p in self.net.named_parameters():
            train = cfg.train_part == "all" or is_decoder_param(name)
            if joint and name.startswith("prior_"):
                train = False  # the context models price the symbols instead
            p.requires_grad_(train)
            if p.requires_grad:
                trained.append(p)
        groups = [{"params": trained, "lr_mult": 1.0}]
        if self.context is not None:
            self.context.requires_grad_(joint)
            if joint:
                groups.append({"params": list(self.context.parameters()),
                               "lr_mult": cfg.context_lr_mult})
        self.opt = torch.optim.Adam(groups, lr=cfg.lr)
        paths = list_images(Path(cfg.data))
        train = [p for p in paths if not is_validation(p, cfg.val_fraction)]
        val = [p for p in paths if is_validation(p, cfg.val_fraction)]
        t0 = time.time()
        self.sampler = CropSampler(
            [a for a in (load_rgb(p, cfg.crop) for p in train) if a is not None], cfg.crop,
            cfg.seed)
        self.hires = None
        if cfg.hires and cfg.hires_share > 0:  # validation stays on the main folder's split
            big = [p for p in list_images(Path(cfg.hires))
                   if not is_validation(p, cfg.hires_val_fraction)]
            self.hires = CropSampler(
                [a for a in (load_rgb(p, cfg.crop) for p in big) if a is not None], cfg.crop,
                cfg.seed + 1)
        val_imgs = [a for a in (load_rgb(p, cfg.val_crop) for p in val) if a is not None]
        self.val = centre_crops(val_imgs, cfg.val_crop)
        print(f"{len(self.sampler.images)} training and {len(val_imgs)} validation images "
              f"loaded in {time.time() - t0:.0f} s", flush=True)
        self.step = 0
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.lr_scale = 1.0
        self.fresh_from = 0  # the step at which the optimizer started afresh (for the warmup)
        self.amp = cfg.amp and native_bf16()
        if cfg.amp and not self.amp:
            print("this CPU has no native bf16: training in fp32", flush=True)

    # -- checkpoints -------------------------------------------------------------------
    def state(self, phase: str) -> dict:
        return {"model": self.net.state_dict(), "opt": self.opt.state_dict(),
                "step": self.step, "wall_s": self.wall_s, "cpu_s": self.cpu_s,
                "sampler": self.sampler.state(),
                "hires_sampler": self.hires.state() if self.hires else None,
                "rng": rng_state(), "phase": phase,
                "lr_scale": self.lr_scale, "fresh_from": self.fresh_from,
                "config": asdict(self.cfg),
                "net_config": json.loads(self.net.cfg.to_json()),
                "context": None if self.context is None else self.context.state_dict()}

    def save(self, name: str, phase: str) -> None:
        path = self.out / name
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(phase), tmp)
        tmp.replace(path)
        if self.context is not None and name == "last.ckpt":  # what `tcae freeze` reads
            folder = self.out / "context"
            folder.mkdir(exist_ok=True)
            tmp = folder / "last.tmp"
            torch.save(self.context.tcae_checkpoint(self.step), tmp)
            tmp.replace(folder / "last.ckpt")

    def load(self, path: Path) -> None:
        st = torch.load(path, map_location="cpu", weights_only=False)
        self.net.load_state_dict(st["model"])
        if self.context is not None:
            self.context.load_state_dict(st["context"])
        self.opt.load_state_dict(st["opt"])
        self.step, self.wall_s, self.cpu_s = st["step"], st["wall_s"], st["cpu_s"]
        self.sampler.set_state(st["sampler"])
        if self.hires is not None and st.get("hires_sampler") is not None:
            self.hires.set_state(st["hires_sampler"])
        set_rng_state(st["rng"])
        self.lr_scale = st.get("lr_scale", 1.0)
        self.fresh_from = st.get("fresh_from", 0)

    def resume(self) -> None:
        last, stable = self.out / "last.ckpt", self.out / "stable.ckpt"
        if last.exists():
            phase = torch.load(last, map_location="cpu", weights_only=False)["phase"]
            src = stable if phase == "decay" and stable.exists() else last
            self.load(src)
            print(f"resumed {src.name} at step {self.step} "
                  f"({self.cpu_s / 3600:.2f} CPU-h so far)", flush=True)
        elif self.cfg.init:
            self.init_from(Path(self.cfg.init).expanduser())

    def init_from(self, path: Path) -> None:
        """Start from a checkpoint's weights, or from shipped fp16 weights (a new machine
        continues a run from the committed model: steps and CPU time continue from its card;
        the optimizer starts afresh)."""
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = {k: v.float() for k, v in load_file(str(path)).items()
                     if not k.startswith("entropy.")}
            self.net.load_state_dict(state)
            card = path.with_suffix(".json")
            training = json.loads(card.read_text()).get("training", {}) if card.exists() else {}
            self.step = int(training.get("steps_done", 0))
            self.cpu_s = 3600 * float(training.get("cpu_hours", 0.0))
            self.wall_s = 3600 * float(training.get("wall_hours", 0.0))
            self.fresh_from = self.step
        else:  # a checkpoint of another run: weights, optimizer, steps and time continue
            st = torch.load(path, map_location="cpu", weights_only=False)
            added = self._load_grown(st.get("model", st))
            if "opt" in st:
                self._load_opt(st["opt"], added, st.get("config", {}).get("train_part", "all"))
                self.step, self.wall_s, self.cpu_s = st["step"], st["wall_s"], st["cpu_s"]
        print(f"initialised from {path} (step {self.step})", flush=True)

    def _load_grown(self, state: dict) -> set[str]:
        """Load weights into this net, which may have more refinement blocks than the net
        they came from (those start as the identity); returns the parameters added."""
        res = self.net.load_state_dict(state, strict=False)
        if res.unexpected_keys or any(".refine." not in k for k in res.missing_keys):
            raise ValueError(f"init weights do not fit this net: missing {res.missing_keys}, "
                             f"unexpected {res.unexpected_keys}")
        if res.missing_keys:
            print(f"new parameters start fresh: {', '.join(res.missing_keys)}", flush=True)
        return set(res.missing_keys)

    def _load_opt(self, opt_state: dict, added: set[str], init_part: str) -> None:
        """The optimizer state of the init run, matched by parameter name when the net grew
        or trains other parameters than that run did (Adam's moments of the shared weights
        continue; new weights start at zero)."""
        if not added and init_part == self.cfg.train_part:
            self.opt.load_state_dict(opt_state)
            return
        old = [n for n, _ in self.net.named_parameters()
               if n not in added and (init_part == "all" or is_decoder_param(n))]
        params = dict(self.net.named_parameters())
        for i, st in opt_state["state"].items():  # keyed by the old net's parameter order
            if params[old[i]].requires_grad:
                self.opt.state[params[old[i]]] = {k: v.clone() for k, v in st.items()}

    def batch(self) -> torch.Tensor:
        """A batch of crops; ``hires_share`` of them (rounded stochastically by the sampler's
        RNG) from the camera-resolution folder."""
        n_big = 0
        if self.hires is not None:
            want = self.cfg.batch * self.cfg.hires_share
            n_big = int(want) + int(self.hires.rng.random() < want - int(want))
        parts = [self.sampler.batch(self.cfg.batch - n_big)]
        if n_big:
            parts.append(self.hires.batch(n_big))
        return torch.cat(parts)
