"""lcodec: a learned lossy image codec (content-weighted CWIC network, `.lic` files).

``lcodec.encode(image, bpp=0.2) -> bytes`` and ``lcodec.decode(data) -> PIL.Image`` (``data``:
bytes, a path or a binary file object).
"""

from __future__ import annotations

from typing import Any

from lcodec.errors import LcodecError, LicError

__version__ = "0.1.0"
__all__ = ["LcodecError", "LicError", "__version__", "decode", "encode"]


def encode(image: Any, **kwargs: Any) -> bytes:
    """Encode an image to `.lic` bytes; see :func:`lcodec.api.encode`."""
    from lcodec import api

    return api.encode(image, **kwargs)


def decode(data: Any, **kwargs: Any):
    """Decode a `.lic` (bytes, a path or a binary file object) to a PIL image; see
    :func:`lcodec.api.decode`."""
    from lcodec import api

    return api.decode(data, **kwargs)


def _register_pillow_plugin() -> None:
    from lcodec import pil

    pil.register()


_register_pillow_plugin()
