"""``python -m lcodec.train.v2 RUN_DIR …``: the same command as ``python -m lcodec.train``."""

from lcodec.train.v2.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
