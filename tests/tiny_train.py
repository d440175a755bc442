"""``python tests/tiny_train.py RUN --config C …`` (or under ``torchrun``): the v2 trainer's
command with the tiny test network registered as ``v2-tiny``, for trainer tests that need a
process of their own (several ranks)."""

from __future__ import annotations

import dataclasses
import sys

from lcodec.config import CONFIGS

TINY = dataclasses.replace(CONFIGS["v2"], widths=(8, 12, 12), chroma_widths=(4, 8, 8),
                           n_luma=16, n_chroma=4)

if __name__ == "__main__":
    from lcodec.train.v2.cli import main

    CONFIGS["v2-tiny"] = TINY
    raise SystemExit(main(sys.argv[1:]))
