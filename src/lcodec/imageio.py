"""Reading user images into RGB arrays, and writing decoded images, with clear errors."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lcodec.errors import LcodecError

Image.MAX_IMAGE_PIXELS = None  # lcodec applies its own limit below
MAX_INPUT_PIXELS = 200_000_000


def load_rgb(source: str | Path | BinaryIO, name: str = "input") -> np.ndarray:
    """Open an image file and return (H, W, 3) uint8 RGB, EXIF orientation applied.

    Grayscale, palette, CMYK and 16-bit images are converted to 8-bit RGB; images with an
    alpha channel are refused (lcodec does not store alpha yet, and dropping it loses data).
    """
    try:
        with Image.open(source) as im:
            if im.width * im.height > MAX_INPUT_PIXELS:
                raise LcodecError(f"{name} has {im.width}×{im.height} pixels, over the limit "
                                  f"of {MAX_INPUT_PIXELS}")
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
                im.mode == "P" and "transparency" in im.info
            ):
                raise LcodecError(f"{name} has an alpha channel, which lcodec cannot store yet; "
                                  "flatten it onto a background first")
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                im = im.point(lambda v: v / 256).convert("L")
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise LcodecError(f"{name} not found") from None
    except IsADirectoryError:
        raise LcodecError(f"{name} is a directory, not an image") from None
    except UnidentifiedImageError:
        raise LcodecError(f"{name} is not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise LcodecError(f"{name} could not be read as an image ({exc})") from None


def image_format_for(path: str) -> str:
    """Pillow format name for an output path's extension (PNG for '-')."""
    if path == "-":
        return "PNG"
    ext = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise LcodecError(f"cannot tell an image format from {path!r}; use .png, .bmp, .tif, …")
    return fmt


def encode_image(rgb: np.ndarray, fmt: str) -> bytes:
    """Serialise a decoded image in memory (lossless formats keep it bit-exact)."""
    buf = io.BytesIO()
    kwargs = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(rgb, "RGB").save(buf, format=fmt, **kwargs)
    return buf.getvalue()
