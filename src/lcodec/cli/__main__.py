"""``python -m lcodec.cli``: the ``lcodec`` command."""

import sys

from lcodec.cli import main

sys.exit(main())
