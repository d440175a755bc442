"""Train the inclined TCAE entropy models (seed 004 §4.5) on a frozen autoencoder's codes.

Usage::

    python -m lcodec.train.tcae make-codes --model v2-mse --images ../shared/data/train \\
        --out codes.npz --knobs -0.3,0,0.3 [--limit N]
    python -m lcodec.train.tcae [train] --codes codes.npz --out runs/tcae [--steps N] \\
        [--max-minutes M]
    python -m lcodec.train.tcae freeze --run runs/tcae --codes codes.npz --out tcae.safetensors
    python -m lcodec.train.tcae eval --weights tcae.safetensors --codes codes.npz
    python -m lcodec.train.tcae static --model v2-mse --codes codes.npz   # the baseline
    python -m lcodec.train.tcae bench [--weights tcae.safetensors] [--codes codes.npz]
    python -m lcodec.train.tcae synth --out synth.npz      # spatially correlated fake codes

``train`` is the default command: options given without a command name train.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from lcodec.entropy.tcae import TcaeModels
from lcodec.train.tcae import fit as training
from lcodec.train.tcae.bench import bench
from lcodec.train.tcae.codes import load_codes, split, synthetic_codes
from lcodec.train.tcae.evaluate import evaluate_frozen, evaluate_static
from lcodec.train.tcae.freeze import freeze_run, ship_run
from lcodec.train.tcae.make_codes import make_codes

PROG = "python -m lcodec.train.tcae"


def _validation(path: str, limit: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A codes file and its first ``limit`` validation crops."""
    codes = load_codes(Path(path))
    return codes, split(codes)[1][:limit]


def _freeze(a: argparse.Namespace) -> None:
    if a.model:
        from lcodec.models import entropy_dir

        print(ship_run(Path(a.run), Path(a.codes), a.model, entropy_dir(), a.calib, a.note))
    else:
        freeze_run(Path(a.run), load_codes(Path(a.codes)), Path(a.out), a.calib)


def _eval(a: argparse.Namespace) -> None:
    codes, va = _validation(a.codes, a.limit)
    print(json.dumps(evaluate_frozen(TcaeModels.load(a.weights), codes, va), indent=2))


def _static(a: argparse.Namespace) -> None:
    from lcodec import models

    codes, va = _validation(a.codes, a.limit)
    tables = models.load(models.find(a.model)).tables
    print(json.dumps(evaluate_static(tables, codes, va), indent=2))


def _bench(a: argparse.Namespace) -> None:
    print(json.dumps(bench(a.weights, a.codes, a.h, a.w, a.repeat, a.knob), indent=2))


def _synth(a: argparse.Namespace) -> None:
    np.savez_compressed(a.out, **synthetic_codes(a.count, a.size, a.seed))


def _add_train(sub) -> None:
    ap = sub.add_parser("train", help="train (or resume) the float models (the default)",
                        description=training.__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.set_defaults(handler=training.fit)
    ap.add_argument("--codes", required=True, help="codes npz from make-codes")
    ap.add_argument("--out", required=True, help="run folder (checkpoint, log.csv, weights)")
    ap.add_argument("--steps", type=int, default=20000, help="total optimizer steps")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop (and checkpoint) after this many minutes; rerun to resume")
    ap.add_argument("--batch", type=int, default=8, help="code crops per step")
    ap.add_argument("--crop", type=int, default=0,
                    help="train on random sub-crops of this size (0: the stored crops)")
    ap.add_argument("--lr", type=float, default=1e-3,
                    help="first learning rate (then /3, /9, /27; the paper used 3e-4)")
    ap.add_argument("--val-every", type=int, default=250, help="steps between validations")
    ap.add_argument("--val-crops", type=int, default=256, help="validation crops used")
    ap.add_argument("--patience", type=int, default=5,
                    help="validations without improvement before the next learning rate")
    ap.add_argument("--log-every", type=int, default=20, help="steps between training rows")
    ap.add_argument("--ckpt-every", type=int, default=250, help="steps between checkpoints")
    ap.add_argument("--calib", type=int, default=32, help="crops used to calibrate freeze")
    ap.add_argument("--configs", default=None,
                    help='JSON overrides per model, e.g. \'{"luma": {"groups": 8}}\'')
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--cpu", action="store_true", help="train on the CPU even with CUDA")
    ap.add_argument("--init", default=None,
                    help="start a new run from another run's models (new knob biases at 0, "
                         "new luma classes with the side weights of their side class)")
    ap.add_argument("--amp", action="store_true",
                    help="bf16 autocast for the convolutions (the softmax stays fp32)")
    ap.add_argument("--seed", type=int, default=0)


def _add_make_codes(sub) -> None:
    ap = sub.add_parser("make-codes", help="code crops of training images (the training data)")
    ap.set_defaults(handler=make_codes)
    ap.add_argument("--model", required=True, help="shipped autoencoder name (models/)")
    ap.add_argument("--images", required=True, help="folder of training images")
    ap.add_argument("--out", required=True, help="output npz")
    ap.add_argument("--knobs", default="-0.3,0,0.3", help="comma-separated rate knobs")
    ap.add_argument("--limit", type=int, default=0, help="use at most N images")
    ap.add_argument("--crop", type=int, default=32, help="crop size in code positions")
    ap.add_argument("--crops-per-image", type=int, default=2, help="crops per image·knob")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)


def _add_freeze(sub) -> None:
    ap = sub.add_parser("freeze", help="freeze a run to the exact integer models")
    ap.set_defaults(handler=_freeze)
    ap.add_argument("--run", required=True, help="run folder with last.ckpt")
    ap.add_argument("--codes", required=True, help="codes npz (calibration crops)")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="output safetensors (plus a .json report)")
    where.add_argument("--model", help="ship it for this autoencoder: models/entropy/"
                                       "<model>-tcae-<id>.safetensors and its card")
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--note", default="", help="free text for the card")


def _add_measures(sub) -> None:
    ap = sub.add_parser("eval", help="bits of frozen models on validation crops")
    ap.set_defaults(handler=_eval)
    ap.add_argument("--weights", required=True, help="frozen safetensors")
    ap.add_argument("--codes", required=True, help="codes npz")
    ap.add_argument("--limit", type=int, default=64, help="validation crops used")
    ap = sub.add_parser("static", help="bits of an autoencoder's static tables (the baseline)")
    ap.set_defaults(handler=_static)
    ap.add_argument("--model", required=True, help="autoencoder whose tables to measure")
    ap.add_argument("--codes", required=True, help="codes npz made with that model")
    ap.add_argument("--limit", type=int, default=256, help="validation crops used")
    ap = sub.add_parser("bench", help="encode and decode seconds of the integer models")
    ap.set_defaults(handler=_bench)
    ap.add_argument("--weights", default=None, help="frozen safetensors (default: random)")
    ap.add_argument("--codes", default=None, help="codes npz to tile (default: synthetic)")
    ap.add_argument("--h", type=int, default=64)
    ap.add_argument("--w", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--knob", type=float, default=0.0, help="use crops of this rate knob")
    ap = sub.add_parser("synth", help="spatially correlated fake codes (development)")
    ap.set_defaults(handler=_synth)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=256)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_make_codes, _add_train, _add_freeze, _add_measures):
        add(sub)
    return ap.parse_args(argv)


def _join_negative_values(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``--knobs -0.3,0,0.3`` -> ``--knobs=-0.3,0,0.3`` (argparse reads ``-0.3,…`` as a flag)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["train", *argv]  # options without a command name train
    args = parse_args(_join_negative_values(argv, ("--knobs",)))
    args.handler(args)
    return 0
