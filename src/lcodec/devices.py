"""Where the networks run: ``auto``, ``cpu`` or ``cuda``."""

from __future__ import annotations

from lcodec.errors import LcodecError


def resolve_device(device: str) -> str:
    """``auto`` is CUDA where a CUDA device is available, else the CPU; ``cuda`` without one
    is an error."""
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise LcodecError("--device cuda was asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise LcodecError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device
