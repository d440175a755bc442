"""Reading a whole file with one clear error (no numpy, PIL or torch: the command line's
``info`` and its error paths stay quick)."""

from __future__ import annotations

from pathlib import Path

from lcodec.errors import LcodecError


def read_file(path: str | Path, kind: str = "file") -> bytes:
    """The bytes of a file, or an :class:`LcodecError` that names the path and the reason."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise LcodecError(f"{path} not found") from None
    except IsADirectoryError:
        raise LcodecError(f"{path} is a directory, not a {kind}") from None
    except OSError as exc:
        raise LcodecError(f"cannot read {path}: {exc.strerror or exc}") from None
