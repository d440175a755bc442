"""Files for the command line: inputs (``-`` is stdin), output checks made before any work,
and atomic writes (a temporary file beside the target, then a rename; ``-`` is stdout)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from lcodec.errors import LcodecError


def read_input(path: str) -> bytes:
    """The bytes of ``path``, or of stdin for ``-``."""
    if path == "-":
        return sys.stdin.buffer.read()
    from lcodec.fileio import read_file

    return read_file(path)


def input_file(path: str) -> str:
    """An input path that exists and is a file (the same errors as :func:`read_input`)."""
    p = Path(path)
    if p.is_dir():
        raise LcodecError(f"{path} is a directory, not a file")
    if not p.exists():
        raise LcodecError(f"{path} not found")
    return path


def check_output(path: str, force: bool) -> None:
    """Fail before any work if the output exists (without --force) or cannot be created."""
    if path == "-":
        return
    p = Path(path)
    if p.is_dir():
        raise LcodecError(f"{path} is a directory; give a file name")
    if p.exists() and not force:
        raise LcodecError(f"{path} already exists; use --force to overwrite it")
    if not p.parent.resolve().is_dir():
        raise LcodecError(f"the folder of {path} does not exist")
    check_writable(p.parent)


def check_writable(folder: Path) -> None:
    """Fail before any work if no file can be created in ``folder`` (tried for real: a
    permission check alone is wrong for root, read-only mounts and ACLs)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".lcodec-check.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise LcodecError(f"cannot write to the folder {folder or '.'}: "
                          f"{exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(tmp)


def output_folder(path: str) -> Path:
    """The batch output folder, created if missing and checked to be writable."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LcodecError(f"cannot create the folder {path}: {exc.strerror or exc}") from None
    check_writable(out)
    return out


def write_output(path: str, data: bytes, force: bool) -> None:
    """Write atomically: a temporary file beside the target, then a rename."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    check_output(path, force)
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise LcodecError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if not force and target.exists():
            raise LcodecError(f"{path} appeared while encoding; use --force to overwrite it")
        os.replace(tmp, target)
    except OSError as exc:  # disk full, quota, …: never leave the temporary file
        Path(tmp).unlink(missing_ok=True)
        raise LcodecError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:  # interrupted (a signal): never leave the temporary file
        Path(tmp).unlink(missing_ok=True)
        raise
