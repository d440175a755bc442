"""``python -m lcodec.evaluate.bench …`` (``make bench``): see :mod:`lcodec.evaluate.bench`."""

import sys

from lcodec.evaluate.bench.command import main

if __name__ == "__main__":
    sys.exit(main())
