"""Architectures by the name stored in weight files (``architecture`` metadata)."""

from __future__ import annotations

from collections.abc import Callable

ARCHITECTURES: dict[str, Callable] = {}


def register_architecture(name: str) -> Callable:
    """Class decorator: make an architecture loadable by the name stored in weight files."""

    def wrap(cls):
        ARCHITECTURES[name] = cls
        return cls

    return wrap
