"""Pillow plugin: ``Image.open("x.lic")`` and ``img.save("x.lic", bpp=0.2)``.

A thin adapter over :mod:`lcodec.api`: ``_open`` parses only the header (no network), pixels
are decoded in ``load()``. ``import lcodec`` calls :func:`register`. A file with the `.lic`
magic that does not parse raises :class:`LicOpenError` with the codec's message (Pillow would
turn a ``SyntaxError`` into a bare "cannot identify image file").
"""

from __future__ import annotations

from dataclasses import fields
from typing import IO

from PIL import Image, ImageFile, UnidentifiedImageError

from lcodec import container
from lcodec.errors import LcodecError, LicError
from lcodec.settings import EncodeSettings

FORMAT = "LIC"
MIME = "image/x-lic"
EXTENSION = ".lic"
# ``img.save(fp, format="LIC", **options)`` takes the encode settings; a PSNR measured for
# the caller would be lost, so ``measure_psnr`` is refused.
SAVE_OPTIONS = {f.name for f in fields(EncodeSettings)} - {"measure_psnr"}


def _accept(prefix: bytes) -> bool:
    return container.looks_like_lic(prefix)


def decoded_mode(header: container.Header, sections: list[tuple[container.SectionType, int]]
                 ) -> str:
    """The Pillow mode a `.lic` file decodes to (L or RGB, LA or RGBA with an alpha section),
    from its header and section list (:func:`lcodec.container.read_header`)."""
    alpha = any(t == container.SectionType.ALPHA for t, _ in sections)
    if header.colour_mode == container.ColourMode.GRAY:
        return "LA" if alpha else "L"
    return "RGBA" if alpha else "RGB"


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
        self._mode = decoded_mode(header, sections)
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
            for key in ("icc_profile", "exif", "xmp"):
                if key in decoded.info:
                    self.info[key] = decoded.info[key]
            self._lic_data = None
        return Image.Image.load(self)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from lcodec import api

    opts = im.encoderinfo
    unknown = set(opts) - SAVE_OPTIONS
    if unknown:
        raise ValueError(f"unknown .lic save options: {', '.join(sorted(unknown))}")
    try:
        settings = EncodeSettings.of(**opts)
    except LcodecError as exc:
        raise ValueError(str(exc)) from None
    try:
        data = api.encode(im, settings)
    except LcodecError as exc:
        raise OSError(str(exc)) from None
    fp.write(data)


def register() -> None:
    """Register the `.lic` opener, saver, extension and MIME type with Pillow."""
    Image.register_open(FORMAT, LicImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
