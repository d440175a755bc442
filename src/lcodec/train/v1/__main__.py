"""``python -m lcodec.train.v1 CONFIG.json OUT_DIR [--max-minutes M]``: train or resume a run of
network v1 (:mod:`lcodec.train.v1`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lcodec.train.v1.config import TrainConfig
from lcodec.train.v1.run import run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lcodec.train.v1", description=__doc__)
    ap.add_argument("config", type=Path, help="training config JSON (see configs/)")
    ap.add_argument("out", type=Path, help="run folder: checkpoint, log.csv, config copy")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop (and checkpoint) after this many minutes; rerun to resume")
    args = ap.parse_args(argv)
    run(TrainConfig.load(args.config), args.out, args.max_minutes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
