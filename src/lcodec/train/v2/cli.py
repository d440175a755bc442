"""The command ``python -m lcodec.train`` (also ``python -m lcodec.train.v2``): train or
resume a v2 run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from lcodec.train import v2
from lcodec.train.v2.config import RDConfig
from lcodec.train.v2.distributed import setup, teardown
from lcodec.train.v2.loop import train
from lcodec.train.v2.run import Run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lcodec.train", description=v2.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="run folder (created; resumed if it has last.ckpt)")
    ap.add_argument("--config", type=Path, default=None,
                    help="config JSON (default: the run's own, else configs/v2-mse.json)")
    ap.add_argument("--budget-minutes", type=float, required=True)
    ap.add_argument("--decay-minutes", type=float, default=0.0)
    ap.add_argument("--max-steps", type=int, default=None, help="stop at this many steps")
    args = ap.parse_args(argv)
    args.run.mkdir(parents=True, exist_ok=True)
    own = args.run / "config.json"
    src = args.config or (own if own.exists() else Path("configs/v2-mse.json"))
    cfg = RDConfig.load(src)
    shard = setup(cfg.batch)  # under torchrun: one rank of several (lcodec.train.v2.distributed)
    if not shard.main:  # only rank 0 prints; errors still reach stderr
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    elif not own.exists():
        own.write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    train(Run(args.run, cfg), args.budget_minutes, args.decay_minutes, args.max_steps, shard)
    teardown(shard)
    return 0
