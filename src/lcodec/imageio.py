"""Reading user images into what the codec stores, and building decoded images.

Every input kind maps to one documented choice (see README "Inputs"):
grayscale -> coded as luma only (colour mode GRAY); RGB, palette, CMYK, YCbCr -> RGB;
an alpha channel -> kept losslessly in its own section (or dropped on request);
16-bit -> reduced to 8 bits with a notice; EXIF orientation applied; ICC profile and EXIF
kept in a metadata section unless stripped.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lcodec.errors import LcodecError

Image.MAX_IMAGE_PIXELS = None  # lcodec applies its own limit below
MAX_INPUT_PIXELS = 100_000_000  # as the decoder's default limit
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_SIXTEEN_BIT = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


@dataclass
class SourceImage:
    """What lcodec codes: 8-bit RGB pixels (gray replicated), plus what travels beside them."""

    rgb: np.ndarray  # (H, W, 3) uint8
    gray: bool = False
    alpha: np.ndarray | None = None  # (H, W) uint8
    icc: bytes | None = None
    exif: bytes | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    @property
    def height(self) -> int:
        return self.rgb.shape[0]


def _has_alpha(im: Image.Image) -> bool:
    return "A" in im.getbands() or "a" in im.getbands() or (
        im.mode == "P" and "transparency" in im.info
    )


def _check_pixels(im: Image.Image, name: str) -> None:
    if im.width * im.height > MAX_INPUT_PIXELS:
        raise LcodecError(f"{name} has {im.width}×{im.height} pixels, over the limit of "
                          f"{MAX_INPUT_PIXELS}")


def from_pil(im: Image.Image, name: str = "input", alpha: str = "keep",
             strip: bool = False) -> SourceImage:
    """Convert an opened PIL image (EXIF orientation applied here)."""
    if alpha not in ("keep", "drop"):
        raise LcodecError(f"alpha must be 'keep' or 'drop', not {alpha!r}")
    _check_pixels(im, name)
    icc = None if strip else im.info.get("icc_profile") or None
    im = ImageOps.exif_transpose(im)
    exif = None
    if not strip:
        exif_obj = im.getexif()
        exif = exif_obj.tobytes() if len(exif_obj) else None
    notices = []
    gray = im.mode in _GRAY_MODES
    if im.mode in _SIXTEEN_BIT:
        notices.append(f"{name} has {im.mode} samples; lcodec reduces them to 8 bits")
        arr = np.asarray(im).astype(np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(np.floor(arr / top * 255 + 0.5), 0, 255).astype(np.uint8))
    a = None
    if _has_alpha(im):
        if alpha == "keep":
            a = np.array(im.convert("RGBA" if not gray else "LA").getchannel("A"))
        else:
            notices.append(f"{name}: alpha channel dropped (--alpha drop)")
    rgb = np.array(im.convert("L").convert("RGB") if gray else im.convert("RGB"))
    return SourceImage(rgb, gray, a, icc, exif, notices)


def load_image(source: str | Path | BinaryIO, name: str = "input", alpha: str = "keep",
               strip: bool = False) -> SourceImage:
    """Open an image file with clear errors; see :func:`from_pil`."""
    try:
        with Image.open(source) as im:
            _check_pixels(im, name)  # before decoding any pixel data
            im.load()
            return from_pil(im, name, alpha, strip)
    except FileNotFoundError:
        raise LcodecError(f"{name} not found") from None
    except IsADirectoryError:
        raise LcodecError(f"{name} is a directory, not an image") from None
    except UnidentifiedImageError:
        raise LcodecError(f"{name} is not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise LcodecError(f"{name} could not be read as an image ({exc})") from None


def load_rgb(source: str | Path | BinaryIO, name: str = "input") -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file (alpha dropped), for tools and evaluation."""
    return load_image(source, name, alpha="drop").rgb


def to_pil(pixels: np.ndarray, gray: bool, alpha: np.ndarray | None) -> Image.Image:
    """Build the decoded PIL image: L/LA for gray, RGB/RGBA otherwise."""
    if gray:
        im = Image.fromarray(np.ascontiguousarray(pixels[..., 0]), "L")
        return Image.merge("LA", (im, Image.fromarray(alpha, "L"))) if alpha is not None else im
    im = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    if alpha is not None:
        im.putalpha(Image.fromarray(alpha, "L"))
    return im


def image_format_for(path: str) -> str:
    """Pillow format name for an output path's extension (PNG for '-')."""
    if path == "-":
        return "PNG"
    ext = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise LcodecError(f"cannot tell an image format from {path!r}; use .png, .bmp, .tif, …")
    return fmt


def encode_image(im: Image.Image, fmt: str, icc: bytes | None = None,
                 exif: bytes | None = None) -> bytes:
    """Serialise a decoded image in memory (lossless formats keep it bit-exact)."""
    buf = io.BytesIO()
    kwargs: dict = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "JPEG" and im.mode in ("RGBA", "LA"):
        raise LcodecError("the image has an alpha channel, which JPEG cannot hold; "
                          "decode to .png or .webp")
    if icc and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        kwargs["icc_profile"] = icc
    if exif and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        kwargs["exif"] = exif
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()
