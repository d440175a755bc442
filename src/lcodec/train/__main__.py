"""``python -m lcodec.train RUN_DIR [--config C] --budget-minutes M [--decay-minutes D]``:
train (or resume) the current network, v2 (:mod:`lcodec.train.v2`). Network v1 trains with
``python -m lcodec.train.v1`` (:mod:`lcodec.train.v1`)."""

from lcodec.train.v2.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
