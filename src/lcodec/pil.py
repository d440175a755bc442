"""Pillow plugin: ``Image.open("x.lic")`` and ``img.save("x.lic", bpp=0.2)``.

A thin adapter over :mod:`lcodec.api`: ``_open`` parses only the header (no network), pixels
are decoded in ``load()``. ``import lcodec`` calls :func:`register`. A file with the `.lic`
magic that does not parse raises :class:`LicOpenError` with the codec's message (Pillow would
turn a ``SyntaxError`` into a bare "cannot identify image file").
"""

from __future__ import annotations

from typing import IO

from PIL import Image, ImageFile, UnidentifiedImageError

from lcodec import container
from lcodec.errors import LcodecError, LicError

FORMAT = "LIC"
MIME = "image/x-lic"
EXTENSION = ".lic"


def _accept(prefix: bytes) -> bool:
    return container.looks_like_lic(prefix)


class LicOpenError(UnidentifiedImageError, LicError):
    """A file with the `.lic` magic is malformed: both Pillow's and lcodec's error type."""


class LicImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "lcodec learned image"

    def _open(self) -> None:
        data = self.fp.read()
        try:
            header, sections = container.read_header(data)
        except LicError as exc:  # the magic matched: no other plugin will take it
            name = getattr(self, "filename", "") or "the image"
            raise LicOpenError(f"cannot identify {name} as a .lic image: {exc}") from None
        self._lic_data: bytes | None = data
        has_alpha = any(t == container.SectionType.ALPHA for t, _ in sections)
        gray = header.colour_mode == container.ColourMode.GRAY
        self._mode = ("LA" if has_alpha else "L") if gray else ("RGBA" if has_alpha else "RGB")
        self._size = (header.width, header.height)
        self.info.update({
            "model_id": header.model_id.hex(), "rate_knob": header.rate_knob,
            "entropy_method": header.entropy_method.name,
            "sections": {t.name.lower(): n for t, n in sections},
        })
        self.tile = []

    def load(self):
        if self._lic_data is not None:
            from lcodec import api

            try:
                decoded = api.decode(self._lic_data)
            except LcodecError as exc:
                raise OSError(str(exc)) from None
            self.im = decoded.im
            for key in ("icc_profile", "exif"):
                if key in decoded.info:
                    self.info[key] = decoded.info[key]
            self._lic_data = None
        return Image.Image.load(self)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from lcodec import api

    opts = im.encoderinfo
    unknown = set(opts) - {"bpp", "size", "knob", "model", "device", "alpha", "strip"}
    if unknown:
        raise ValueError(f"unknown .lic save options: {', '.join(sorted(unknown))}")
    try:
        data = api.encode(im, bpp=opts.get("bpp"), size=opts.get("size"),
                          knob=opts.get("knob"), model=opts.get("model"),
                          device=opts.get("device", "cpu"), alpha=opts.get("alpha", "keep"),
                          strip=opts.get("strip", False))
    except LcodecError as exc:
        raise OSError(str(exc)) from None
    fp.write(data)


def register() -> None:
    """Register the `.lic` opener, saver, extension and MIME type with Pillow."""
    Image.register_open(FORMAT, LicImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
