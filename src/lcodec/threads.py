"""How many threads the networks run on: torch's (encoders, float decoders) and those of the
BLAS library numpy calls (the exact decoder's GEMMs), set together.

torch is set where it is loaded, and through ``OMP_NUM_THREADS`` (which it reads when it
starts) where it is not yet, so a decoder that never loads torch never imports it for this.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

THREADS_ENV = "OMP_NUM_THREADS"


def set_threads(threads: int) -> None:
    """Run the networks on ``threads`` threads from now on (this process)."""
    from threadpoolctl import threadpool_limits

    os.environ[THREADS_ENV] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    threadpool_limits(threads, user_api="blas")


@contextmanager
def compute_threads(threads: int | None) -> Iterator[None]:
    """Run the networks on ``threads`` threads inside the block (None: as they are), restored
    afterwards."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    env = os.environ.get(THREADS_ENV)
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    os.environ[THREADS_ENV] = str(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads, user_api="blas"):
            yield
    finally:
        if env is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = env
        if before is not None:
            torch.set_num_threads(before)
