"""``python -m lcodec.train.tcae COMMAND …``: see :mod:`lcodec.train.tcae.cli`."""

from lcodec.train.tcae.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
