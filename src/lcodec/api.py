"""The Python API: ``encode(image, bpp=…) -> bytes`` and ``decode(bytes) -> PIL.Image``.

Models are loaded once per process and reused. Encoding is :mod:`lcodec.encoder`'s, with one
:class:`~lcodec.settings.EncodeSettings`; this module accepts the inputs (paths, PIL images,
arrays, bytes, file objects) and gives the outputs. Decoding a file of an exact synthesis
with the numpy decoder (EXACT_INT_V2) imports neither torch nor the encoder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lcodec import codec, container, models
from lcodec.devices import resolve_device
from lcodec.errors import LcodecError
from lcodec.fileio import read_file
from lcodec.imageio import (
    SourceImage,
    checked_metadata,
    from_pil,
    load_image,
    to_pil,
)
from lcodec.settings import EncodeSettings

__all__ = ["EncodeResult", "EncodeSettings", "as_source", "decode", "decode_array",
           "decode_full", "decode_with_notices", "encode", "encode_with_stats",
           "importance_map", "lic_bytes", "resolve_device"]


@dataclass
class EncodeResult:
    data: bytes
    source: SourceImage
    knob: float
    model: str
    notices: list[str] = field(default_factory=list)
    psnr: float | None = None  # RGB PSNR (dB) of the file decoded, when asked for

    @property
    def width(self) -> int:
        return self.source.width

    @property
    def height(self) -> int:
        return self.source.height

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.width * self.height)


def as_source(image: Any, alpha: str = "keep", strip: bool = False) -> SourceImage:
    """Accept a path, a PIL image, an (H, W, 3) uint8 array or a prepared SourceImage."""
    if isinstance(image, SourceImage):
        return image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise LcodecError("arrays must be (H, W, 3) uint8 RGB")
        if image.shape[0] < 1 or image.shape[1] < 1:
            raise LcodecError("the image is empty")
        return SourceImage(image)
    if isinstance(image, Image.Image):
        return from_pil(image, "image", alpha, strip)
    if isinstance(image, str | Path):
        return load_image(image, str(image), alpha, strip)
    raise LcodecError(f"cannot encode an object of type {type(image).__name__}")


def encode_with_stats(image: Any, settings: EncodeSettings | None = None,
                      **options: Any) -> EncodeResult:
    """Encode and report what was achieved. ``settings`` (an :class:`EncodeSettings`) and
    ``options`` (its field names: ``bpp=0.2``, ``model=…``; they replace its fields) say what
    to do; at most one rate setting (``bpp``, ``size``, ``psnr``, ``quality``, ``knob``),
    default knob 0. See :class:`EncodeSettings` for each option."""
    from lcodec import encoder  # torch: imported by encoders only

    s = EncodeSettings.of(settings, **options)
    src = as_source(image, s.alpha, s.strip)
    enc = encoder.encode(src, s)
    return EncodeResult(enc.data, src, enc.knob, enc.analysis.model.info.name, enc.notices,
                        enc.psnr)


def encode(image: Any, settings: EncodeSettings | None = None, **options: Any) -> bytes:
    """Encode an image (path, PIL image or (H, W, 3) uint8 array) to `.lic` bytes; options
    as :func:`encode_with_stats`."""
    return encode_with_stats(image, settings, **options).data


def lic_bytes(data: Any) -> bytes:
    """The bytes of a `.lic` given as bytes-like, a path (str or PathLike) or a binary file
    object; anything else is an :class:`LcodecError`."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str | os.PathLike):
        return read_file(data, ".lic file")
    read = getattr(data, "read", None)
    if callable(read):
        blob = read()
        if isinstance(blob, bytes | bytearray | memoryview):
            return bytes(blob)
        raise LcodecError("the file object gives text; open the .lic file in binary mode "
                          "('rb')")
    raise LcodecError(f"cannot decode an object of type {type(data).__name__}; pass bytes, "
                      "a path or a binary file object")


def decode_full(data: Any, device: str = "cpu",
                max_pixels: int = container.DEFAULT_MAX_PIXELS,
                keep_symbols: bool = False) -> codec.Decoded:
    """Decode a `.lic` (bytes, path or binary file object) to pixels plus alpha and metadata
    (and, with ``keep_symbols``, the entropy-decoded symbols).

    ``max_pixels`` is the decompression-bomb limit: files declaring more are refused before
    anything is allocated.
    """
    lic = container.unpack(lic_bytes(data), max_pixels)
    info = models.find(model_id=lic.header.model_id)
    loaded = models.load(info, resolve_device(device))
    return codec.decode(loaded, lic, keep_symbols=keep_symbols)


def decode_array(data: Any, device: str = "cpu") -> np.ndarray:
    """Decode a `.lic` to an (H, W, 3) uint8 RGB array (gray replicated, alpha dropped)."""
    return decode_full(data, device).pixels


def decode_with_notices(data: Any, device: str = "cpu",
                        max_pixels: int = container.DEFAULT_MAX_PIXELS
                        ) -> tuple[Image.Image, list[str]]:
    """:func:`decode`, and the notices about metadata it dropped because it does not parse
    (metadata is untrusted input, like the rest of the file)."""
    d = decode_full(data, device, max_pixels)
    im = to_pil(d.pixels, d.gray, d.alpha)
    kept, notices = checked_metadata(d.icc, d.exif, d.xmp)
    del d  # the pixels now live in ``im``: do not hold them twice while it is saved
    im.info.update(kept)
    return im, notices


def decode(data: Any, device: str = "cpu",
           max_pixels: int = container.DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode a `.lic` (bytes, a path or a binary file object) to a PIL image (RGB, RGBA, L
    or LA; ICC/EXIF/XMP in ``info`` as ``icc_profile``, ``exif``, ``xmp``, dropped if they do
    not parse)."""
    return decode_with_notices(data, device, max_pixels)[0]


def importance_map(data: Any, max_pixels: int = container.DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The decoded importance map of `.lic` bytes as an (H, W) uint8 picture (seed 004 Fig. 3):
    level QI of each code position over its stride × stride pixels, 0 → black, L − 1 → white.

    Only the entropy decoding runs (no decoder network)."""
    lic = container.unpack(lic_bytes(data), max_pixels)
    hdr = lic.header
    loaded = models.load(models.find(model_id=hdr.model_id), "cpu")
    qi = codec.decode_symbols(loaded, lic)[0].astype(np.int64)
    s = loaded.config.stride
    levels = loaded.config.imp_levels
    full = np.repeat(np.repeat(qi, s, axis=0), s, axis=1)[: hdr.height, : hdr.width]
    return (full * 255 // (levels - 1)).astype(np.uint8)

