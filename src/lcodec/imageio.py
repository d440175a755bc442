"""Reading user images into what the codec stores, and building decoded images.

Every input kind maps to one documented choice (see README "Inputs"):
grayscale -> coded as luma only (colour mode GRAY); RGB, palette, CMYK, YCbCr -> RGB;
an alpha channel -> kept losslessly in its own section (or dropped on request);
16-bit -> reduced to 8 bits with a notice; EXIF orientation applied; ICC profile, EXIF and
XMP kept in a metadata section unless stripped.

Decoded images are written in the format an output's extension names: losslessly where the
format allows (a mode it cannot hold is widened, with a notice), at a quality in the lossy
formats (with a notice), and refused where samples would be lost otherwise.
"""

from __future__ import annotations

import io
import itertools
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lcodec.errors import LcodecError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

Image.MAX_IMAGE_PIXELS = None  # lcodec applies its own limit below
MAX_INPUT_PIXELS = 100_000_000  # as the decoder's default limit
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_SIXTEEN_BIT = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# What Pillow's writers and metadata parsers raise on data or modes they cannot take.
_PIL_ERRORS = (ValueError, OSError, SyntaxError, TypeError, KeyError, IndexError, struct.error)
# A mode a format cannot hold is widened to one holding the same samples.
_WIDER = {"L": "RGB", "LA": "RGBA"}
_FORMAT_HINT = "decode to .png, .tif or .webp"
# Modes holding every sample of a mode (its gray or colour planes, and its alpha).
_HOLDS = {"L": {"L", "LA", "RGB", "RGBA"}, "LA": {"LA", "RGBA"}, "RGB": {"RGB", "RGBA"},
          "RGBA": {"RGBA"}}
DEFAULT_OUT_QUALITY = 95  # the quality a decoded image is written at in a lossy format
# Lossy formats whose Pillow writer takes ``quality`` (0-100), with the modes it codes lossily
# (None: every mode). PDF stores L and RGB images as JPEG, LA and RGBA as lossless JPEG 2000.
_LOSSY: dict[str, frozenset[str] | None] = {
    "JPEG": None, "MPO": None, "WEBP": None, "AVIF": None, "PDF": frozenset({"L", "RGB"})}
# The formats whose Pillow writer stores ICC profiles, EXIF and XMP (others drop them, with
# a notice).
_METADATA_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP", "AVIF", "TIFF"})
_METADATA_NAMES = {"icc_profile": "ICC profile", "exif": "EXIF data", "xmp": "XMP packet"}
_XMP_TAG = 700  # TIFF tag of the XMP packet
_ORIENTATION = 0x0112  # EXIF tag
STRIP_ROWS = 256  # rows converted at a time (memory: a strip, not a copy of the image)


@dataclass
class SourceImage:
    """What lcodec codes: 8-bit RGB pixels (gray replicated), plus what travels beside them."""

    rgb: np.ndarray  # (H, W, 3) uint8
    gray: bool = False
    alpha: np.ndarray | None = None  # (H, W) uint8
    icc: bytes | None = None
    exif: bytes | None = None
    notices: list[str] = field(default_factory=list)
    xmp: bytes | None = None  # the XMP packet (UTF-8 XML), orientation already applied

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


def _deep_samples(im: Image.Image) -> bool:
    """Whether a not yet loaded image stores 16-bit samples that Pillow will give as 8-bit
    RGB/RGBA (its PNG and TIFF readers do so, e.g. raw mode ``RGB;16B``)."""
    for tile in getattr(im, "tile", None) or ():
        args = tile[3] if isinstance(tile[3], tuple) else (tile[3],)
        if args and isinstance(args[0], str) and ";16" in args[0]:
            return True
    return False


def from_pil(im: Image.Image, name: str = "input", alpha: str = "keep",
             strip: bool = False, deep: bool | None = None) -> SourceImage:
    """Convert an opened PIL image (EXIF orientation applied here). ``deep``: whether the
    file had 16-bit samples (found from ``im`` if it is not loaded yet)."""
    if alpha not in ("keep", "drop"):
        raise LcodecError(f"alpha must be 'keep' or 'drop', not {alpha!r}")
    _check_pixels(im, name)
    deep = _deep_samples(im) if deep is None else deep
    icc = None if strip else im.info.get("icc_profile") or None
    if im.getexif().get(_ORIENTATION, 1) != 1:  # (transposing copies the whole image)
        im = ImageOps.exif_transpose(im)
    exif = xmp = None
    if not strip:
        exif_obj = im.getexif()
        exif = exif_obj.tobytes() if len(exif_obj) else None
        xmp = _xmp_of(im)
    notices = []
    gray = im.mode in _GRAY_MODES
    if deep and im.mode not in _SIXTEEN_BIT:
        notices.append(f"{name} has 16-bit samples; lcodec reduces them to 8 bits")
    if im.mode in _SIXTEEN_BIT:
        notices.append(f"{name} has {im.mode} samples; lcodec reduces them to 8 bits")
        arr = np.asarray(im).astype(np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(np.floor(arr / top * 255 + 0.5), 0, 255).astype(np.uint8))
    a = None
    if _has_alpha(im):
        if alpha == "keep":
            with_alpha = "RGBA" if not gray else "LA"
            a = _by_strips(im, lambda s: s.convert(with_alpha).getchannel("A"), ())
        else:
            notices.append(f"{name}: alpha channel dropped (--alpha drop)")
    rgb = _by_strips(im, (lambda s: s.convert("L").convert("RGB")) if gray
                     else (lambda s: s.convert("RGB")), (3,))
    return SourceImage(rgb, gray, a, icc, exif, notices, xmp)


def _xmp_of(im: Image.Image) -> bytes | None:
    """The XMP packet Pillow read with ``im`` (JPEG, PNG, WebP, TIFF, AVIF), as bytes. After
    :func:`ImageOps.exif_transpose` it no longer names an orientation."""
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if isinstance(xmp, tuple) and len(xmp) == 1:  # a TIFF tag
        xmp = xmp[0]
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return bytes(xmp) if isinstance(xmp, bytes | bytearray) and xmp else None


def _by_strips(im: Image.Image, convert, channels: tuple[int, ...]) -> np.ndarray:
    """``np.asarray(convert(im))`` for a per-pixel ``convert``, made a strip of rows at a time,
    so that no converted copy of the whole image exists beside the result."""
    out = np.empty((im.height, im.width, *channels), dtype=np.uint8)
    for y in range(0, im.height, STRIP_ROWS):
        strip = im.crop((0, y, im.width, min(im.height, y + STRIP_ROWS)))
        out[y : y + strip.height] = np.asarray(convert(strip))
    return out


def load_image(source: str | Path | BinaryIO, name: str = "input", alpha: str = "keep",
               strip: bool = False) -> SourceImage:
    """Open an image file with clear errors; see :func:`from_pil`."""
    try:
        with Image.open(source) as im:
            _check_pixels(im, name)  # before decoding any pixel data
            deep = _deep_samples(im)
            im.load()
            return from_pil(im, name, alpha, strip, deep)
    except FileNotFoundError:
        raise LcodecError(f"{name} not found") from None
    except IsADirectoryError:
        raise LcodecError(f"{name} is a directory, not an image") from None
    except UnidentifiedImageError:
        raise LcodecError(f"{name} is not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise LcodecError(f"{name} could not be read as an image ({exc})") from None


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (by suffix, :data:`IMAGE_SUFFIXES`), sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


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
    """Pillow format name for an output path's extension (PNG for '-'); never LIC, since a
    decoded image written as `.lic` would be encoded again."""
    if path == "-":
        return "PNG"
    ext = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt == "LIC":
        raise LcodecError(f"{path} names a .lic file, but decoding writes an image; give "
                          "e.g. .png, .bmp or .tif (lcodec encode writes .lic files)")
    if fmt is None or fmt not in Image.SAVE:
        raise LcodecError(f"cannot tell an image format from {path!r}; use .png, .bmp, .tif, …")
    return fmt


def checked_metadata(icc: bytes | None, exif: bytes | None, xmp: bytes | None = None
                     ) -> tuple[dict[str, bytes], list[str]]:
    """ICC profile, EXIF and XMP from a decoded file, each dropped with a notice if it does
    not parse (a crafted file can carry anything with a valid CRC). Returns what is kept,
    under Pillow's ``info`` keys (``icc_profile``, ``exif``, ``xmp``), and the notices."""
    notices = []
    if exif and not _parses(_load_exif, exif):
        notices.append("the file's EXIF data is malformed; it was dropped")
        exif = None
    if icc and not _parses(_load_icc, icc):
        notices.append("the file's ICC profile is malformed; it was dropped")
        icc = None
    if xmp and not _parses(_load_xmp, xmp):
        notices.append("the file's XMP packet is not UTF-8 text; it was dropped")
        xmp = None
    kept = {"icc_profile": icc, "exif": exif, "xmp": xmp}
    return {k: v for k, v in kept.items() if v}, notices


def _load_xmp(blob: bytes) -> None:
    blob.decode("utf-8")  # what every writer (PNG's iTXt chunk above all) can hold


def _load_exif(blob: bytes) -> None:
    exif = Image.Exif()
    exif.load(blob)
    for tag in (0x8769, 0x8825):  # the Exif and GPS sub-IFDs that writers follow
        exif.get_ifd(tag)


def _load_icc(blob: bytes) -> None:
    try:
        from PIL import ImageCms
    except ImportError:  # Pillow without littlecms: nothing to check with
        return
    try:
        ImageCms.ImageCmsProfile(io.BytesIO(blob))
    except ImageCms.PyCMSError as exc:
        raise ValueError(str(exc)) from None


def _parses(load, blob: bytes) -> bool:
    """Whether ``load(blob)`` succeeds without raising or warning about corrupt data."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            load(blob)
    except (*_PIL_ERRORS, Warning):
        return False
    return True


def _save(im: Image.Image, fmt: str, base: dict, meta: dict[str, bytes]) -> bytes | str:
    """The encoded bytes, or Pillow's reason for refusing as a string."""
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.save(buf, format=fmt, **base, **_writer_options(fmt, meta))
    except _PIL_ERRORS as exc:
        return str(exc) or type(exc).__name__
    return buf.getvalue()


def _writer_options(fmt: str, meta: dict[str, bytes]) -> dict:
    """Pillow's save options for the metadata in ``meta`` (keys as in :data:`_METADATA_NAMES`):
    PNG takes XMP as an iTXt chunk, TIFF as its tag 700 beside the EXIF tags, the others as
    ``xmp``."""
    opts: dict = dict(meta)
    xmp = opts.pop("xmp", None)
    if xmp is None:
        return opts
    if fmt == "PNG":
        from PIL import PngImagePlugin

        chunks = PngImagePlugin.PngInfo()
        chunks.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        opts["pnginfo"] = chunks
    elif fmt == "TIFF":
        tags = Image.Exif()
        if "exif" in opts:
            tags.load(opts.pop("exif"))
        tags[_XMP_TAG] = xmp
        opts["tiffinfo"] = tags
    else:
        opts["xmp"] = xmp
    return opts


def is_lossy(fmt: str, mode: str) -> bool:
    """Whether writing a ``mode`` image in the Pillow format ``fmt`` loses detail to a quality
    setting (JPEG, WebP, AVIF, …); :func:`encode_image` gives those writers its ``quality``."""
    modes = _LOSSY.get(fmt, frozenset())
    return modes is None or mode in modes


def encode_image(im: Image.Image, fmt: str, icc: bytes | None = None,
                 exif: bytes | None = None, xmp: bytes | None = None,
                 quality: int = DEFAULT_OUT_QUALITY) -> tuple[bytes, list[str]]:
    """Serialise a decoded image in memory, with notices.

    Lossless formats keep it bit-exact; a lossy one (:func:`is_lossy`) codes it at
    ``quality`` (0-100; its caller says so). A mode the format cannot hold is widened
    without loss (L → RGB, LA → RGBA), by lcodec or by the format's writer (as the written
    file's header shows); ICC profile, EXIF or XMP that the format cannot hold, or that its
    writer refuses, is dropped; GIF's palette reduces a colour image to 256 colours; each
    says so in a notice. An image the format cannot hold without losing samples (alpha,
    colours, its size) is refused with one :class:`LcodecError`.
    """
    if fmt == "LIC":
        raise LcodecError("decoding writes an image, not a .lic file; give e.g. .png")
    if fmt == "JPEG" and im.mode in ("RGBA", "LA"):
        raise LcodecError("the image has an alpha channel, which JPEG cannot hold; "
                          "decode to .png or .webp")
    if not 0 <= quality <= 100:
        raise LcodecError(f"the output quality must be between 0 and 100, not {quality}")
    base: dict = {"quality": int(quality)} if fmt in _LOSSY else {}
    given = {k: v for k, v in (("icc_profile", icc), ("exif", exif), ("xmp", xmp)) if v}
    meta = {k: v for k, v in given.items() if fmt in _METADATA_FORMATS}
    cannot = [f"{fmt} cannot hold the {_METADATA_NAMES[k]}; written without it"
              for k in given if k not in meta]
    reason = ""
    for mode in (im.mode, *([_WIDER[im.mode]] if im.mode in _WIDER else [])):
        img = im if mode == im.mode else im.convert(mode)
        out, notices = _save_with_metadata(img, fmt, base, meta)
        if isinstance(out, bytes):
            stored, lost = _as_stored(out, im, fmt)
            if lost is None:
                return out, [*([stored] if stored else []), *notices, *cannot]
            out = lost
        reason = out
    raise LcodecError(f"{fmt} cannot hold this {im.mode} image ({reason}); {_FORMAT_HINT}")


def _as_stored(data: bytes, im: Image.Image, fmt: str) -> tuple[str | None, str | None]:
    """How the written ``data`` holds ``im``, from the mode and size its header declares:
    (a notice of a widening or a palette, or None; why samples are lost, or None). A format
    Pillow cannot read back (PDF) is taken as written."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as back:
                mode, size = back.mode, back.size
    except _PIL_ERRORS:
        return None, None
    if size != im.size:
        return None, f"it would store {size[0]}×{size[1]} pixels, not {im.width}×{im.height}"
    held = im.mode  # what must survive: an opaque alpha channel loses nothing when dropped
    if held in ("LA", "RGBA") and im.getchannel("A").getextrema()[0] == 255:
        held = held[:-1]
    if mode == "P":
        return (None if held == "L" else f"{fmt} holds at most 256 colours: the image was "
                "reduced to a palette (lossy)"), None
    if mode in (im.mode, held):
        return None, None
    if mode in _HOLDS.get(held, ()):
        return f"{fmt} cannot hold {im.mode} images; wrote {mode} with the same samples", None
    if "A" in held and "A" not in mode:
        return None, "it would drop the alpha channel"
    return None, f"it would store it as {mode}"


def _save_with_metadata(im: Image.Image, fmt: str, base: dict,
                        meta: dict[str, bytes]) -> tuple[bytes | str, list[str]]:
    """Save with all the metadata the writer takes: all, then without one kind (EXIF, XMP,
    ICC profile, in this order), then without two, without all."""
    first = ""
    order = [k for k in ("exif", "xmp", "icc_profile") if k in meta]
    for n in range(len(order) + 1):
        for drop in itertools.combinations(order, n):
            out = _save(im, fmt, base, {k: v for k, v in meta.items() if k not in drop})
            if isinstance(out, bytes):
                return out, [f"{fmt} refused the {_METADATA_NAMES[k]} ({first}); written "
                             "without it" for k in drop]
            first = first or out
    return first, []


def check_format_holds(fmt: str, mode: str) -> None:
    """Refuse, before any decoding, an output format that cannot hold ``mode`` images."""
    encode_image(Image.new(mode, (1, 1)), fmt)
