"""Memory of the process while lcodec encodes or decodes: the peak resident set size, sampled
from ``/proc/self/statm`` (elsewhere only the process-lifetime peak of ``getrusage``)."""

from __future__ import annotations

import os
import resource
import sys
import threading


def rss_bytes() -> int | None:
    """The resident set size of this process now (None without ``/proc``)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class RssPeak:
    """Peak RSS of this process while the block runs (a thread samples every ``interval``)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes() or 0)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssPeak:
        self.peak = rss_bytes() or 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes() or 0)


def max_rss_lifetime() -> int:
    """Process-lifetime peak RSS in bytes (getrusage: kB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024
