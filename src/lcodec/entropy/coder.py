"""Range coding with constriction: integer frequency rows in, bytes out.

The only module that imports constriction. Probabilities arrive as integer frequencies that
sum to ``2**precision`` per row; dividing by a power of two is exact in float64, so encoder
and decoder hand constriction bit-identical inputs on every platform.

Timing: inside :func:`timed_coding` every range-coder call here runs under the given timer's
``"coding"`` stage, so a caller timing an entropy method as a whole (``"probs"``) gets the
range coding apart without the methods knowing (``lcodec.evaluate.bench``; a no-op otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar

import numpy as np

from lcodec.errors import LicError

Timer = Callable[[str], AbstractContextManager]
"""A stage timer: ``with timer("stage"): …`` charges the block's time to that stage."""

_CODING_TIMER: ContextVar[Timer | None] = ContextVar("lcodec_coding_timer", default=None)


@contextmanager
def timed_coding(timer: Timer | None) -> Iterator[None]:
    """Charge the range-coder calls made inside the block to ``timer("coding")``."""
    token = _CODING_TIMER.set(timer)
    try:
        yield
    finally:
        _CODING_TIMER.reset(token)


def _coding() -> AbstractContextManager:
    timer = _CODING_TIMER.get()
    return nullcontext() if timer is None else timer("coding")

PRECISION = 16  # frequencies per row sum to 2**PRECISION, each >= 1


def _model():
    import constriction

    # perfect=False: the documented fast quantisation, and no warning printed on stdout.
    return constriction.stream.model.Categorical(perfect=False)


class SymbolStream:
    """Appends batches of symbols to one range-coder stream (same bytes as one big batch)."""

    def __init__(self) -> None:
        import constriction

        with _coding():
            self._enc = constriction.stream.queue.RangeEncoder()
            self._model = _model()

    def add(self, symbols: np.ndarray, freqs: np.ndarray) -> None:
        if len(symbols):
            with _coding():
                probs = freqs.astype(np.float64) / float(1 << PRECISION)
                self._enc.encode(symbols.astype(np.int32), self._model, probs)

    def add_iid(self, symbols: np.ndarray, freqs: np.ndarray) -> None:
        """Append ``symbols`` (k,) that all share one frequency row ``freqs`` (K,)."""
        if len(symbols):
            import constriction

            with _coding():
                probs = freqs.astype(np.float64) / float(1 << PRECISION)
                model = constriction.stream.model.Categorical(probs, perfect=False)
                self._enc.encode(symbols.astype(np.int32), model)

    def finish(self) -> bytes:
        with _coding():
            return self._enc.get_compressed().astype("<u4").tobytes()


def encode_symbols(symbols: np.ndarray, freqs: np.ndarray) -> bytes:
    """Range-code ``symbols`` (k,) with per-symbol frequency rows ``freqs`` (k, K)."""
    stream = SymbolStream()
    stream.add(symbols, freqs)
    return stream.finish()


class SymbolDecoder:
    """Decodes a section's symbols in consecutive batches, each with its own frequency rows.

    :meth:`finish` checks that the section holds exactly the coded symbols (as
    tensorflow-compression's ``decode_sanity_check``): the decoded symbols are coded again as
    they go, and the section must be exactly those bytes, so data appended to or altered in
    the stream's end is rejected even where the decoder would not read it.
    """

    def __init__(self, payload: bytes) -> None:
        import constriction

        if len(payload) % 4:
            raise LicError("corrupted entropy-coded section (length is not a multiple of 4)")
        with _coding():
            self._payload = bytes(payload)
            words = np.frombuffer(self._payload, dtype="<u4").astype(np.uint32)
            self._dec = constriction.stream.queue.RangeDecoder(words)
            self._echo = constriction.stream.queue.RangeEncoder()
            self._model = _model()

    def decode(self, freqs: np.ndarray) -> np.ndarray:
        """Decode ``len(freqs)`` symbols; returns int64 (k,)."""
        if len(freqs) == 0:
            return np.zeros(0, dtype=np.int64)
        with _coding():
            probs = freqs.astype(np.float64) / float(1 << PRECISION)
            try:
                out = self._dec.decode(self._model, probs)
            except Exception as exc:  # constriction raises on exhausted or invalid data
                raise LicError(f"corrupted entropy-coded data ({exc})") from None
            self._echo.encode(out, self._model, probs)
            return out.astype(np.int64)

    def decode_iid(self, freqs: np.ndarray, count: int) -> np.ndarray:
        """Decode ``count`` symbols that all share one frequency row ``freqs`` (K,); int64."""
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        import constriction

        with _coding():
            probs = freqs.astype(np.float64) / float(1 << PRECISION)
            model = constriction.stream.model.Categorical(probs, perfect=False)
            try:
                out = self._dec.decode(model, count)
            except Exception as exc:  # constriction raises on exhausted or invalid data
                raise LicError(f"corrupted entropy-coded data ({exc})") from None
            self._echo.encode(out, model)
            return out.astype(np.int64)

    def finish(self) -> None:
        """Raise :class:`LicError` unless the section ends where its coded symbols end."""
        with _coding():
            echoed = self._echo.get_compressed().astype("<u4").tobytes()
        if echoed != self._payload:
            raise LicError("corrupted entropy-coded section (it holds data beyond its coded "
                           "symbols)")


def frequencies_from_counts(counts: np.ndarray) -> np.ndarray:
    """Integer frequencies (…, K) summing to 2**PRECISION, each >= 1, from counts (…, K).

    Pure integer arithmetic (+1 smoothing, floor, remainder to the first most likely symbol),
    so the same counts give the same table everywhere.
    """
    counts = counts.astype(np.int64) + 1
    k = counts.shape[-1]
    total = 1 << PRECISION
    spare = total - k
    freqs = 1 + (counts * spare) // counts.sum(-1, keepdims=True)
    rest = total - freqs.sum(-1)
    top = np.argmax(counts, axis=-1)
    np.put_along_axis(freqs, top[..., None],
                      np.take_along_axis(freqs, top[..., None], -1) + rest[..., None], -1)
    return freqs
