"""Traditional codecs for ``lcodec eval``: real encoded bytes at a sweep of settings.

Each :class:`Baseline` turns an (H, W, 3) uint8 RGB array into the bytes of a real file at one
setting and decodes those bytes back to RGB. The settings match ``shared/anchors/kodak.md``:

- ``jpeg``: Pillow / libjpeg-turbo, 4:2:0, ``optimize=True``, quality sweep.
- ``webp``: Pillow / libwebp, ``method=6``, quality sweep.
- ``jpeg2000``: Pillow / OpenJPEG, ``quality_mode="rates"`` (one layer at compression ratio
  24/bpp), 9/7 irreversible wavelet and the RGB component transform (``irreversible=True,
  mct=1``; Pillow's own defaults, reversible 5/3 without MCT, lose 0.5-3 dB and do not match
  the anchors).
- ``avif``: Pillow's AVIF plugin (libavif + aom) when ``features.check("avif")``, else
  imagecodecs' libavif; default speed (6), 4:2:0, quality sweep.
- ``heic``: pillow-heif (libheif + x265), 4:2:0, quality sweep.
- ``jxl``: imagecodecs' libjxl, effort 7, Butteraugli-distance sweep.

The sweeps span about 0.05-1.5 bpp on Kodak-like photographs. lcodec itself is swept in
:mod:`lcodec.evaluate.runner` (one analysis per image, then a rate-knob sweep).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lcodec.errors import LcodecError

LCODEC = "lcodec"
EVAL_EXTRA = "pip install 'lcodec[eval]'"


@dataclass(frozen=True)
class Baseline:
    """One traditional codec: ``encode(rgb, setting) -> bytes``, ``decode(bytes) -> rgb``."""

    name: str
    label: str
    setting_name: str
    settings: tuple[float, ...]
    encode: Callable[[np.ndarray, float], bytes]
    decode: Callable[[bytes], np.ndarray]
    library: Callable[[], str]

    def available(self) -> str | None:
        """None when the codec can run here, else a one-sentence reason."""
        try:
            self.library()
        except (ImportError, LcodecError) as exc:
            return f"codec {self.name} is not available ({exc}); {EVAL_EXTRA}"
        return None


def _pil(rgb: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")


def _pil_save(rgb: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    _pil(rgb).save(buf, fmt, **options)
    return buf.getvalue()


def _pil_decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


# --- JPEG ----------------------------------------------------------------------------------

def _jpeg_encode(rgb: np.ndarray, quality: float) -> bytes:
    return _pil_save(rgb, "JPEG", quality=int(quality), subsampling="4:2:0", optimize=True)


def _jpeg_library() -> str:
    from PIL import features

    turbo = features.version("libjpeg_turbo")
    return f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}"


# --- WebP ----------------------------------------------------------------------------------

def _webp_encode(rgb: np.ndarray, quality: float) -> bytes:
    return _pil_save(rgb, "WEBP", quality=int(quality), method=6)


def _webp_library() -> str:
    from PIL import features

    if not features.check("webp"):
        raise LcodecError("Pillow was built without WebP")
    return f"libwebp {features.version('webp')}"


# --- JPEG 2000 -----------------------------------------------------------------------------

RAW_BITS_PER_PIXEL = 24  # OpenJPEG's "rates" are compression ratios against 8-bit RGB


def _j2k_encode(rgb: np.ndarray, bpp: float) -> bytes:
    return _pil_save(rgb, "JPEG2000", quality_mode="rates",
                     quality_layers=[RAW_BITS_PER_PIXEL / bpp], irreversible=True, mct=1)


def _j2k_library() -> str:
    from PIL import features

    if not features.check("jpg_2000"):
        raise LcodecError("Pillow was built without OpenJPEG")
    return f"OpenJPEG {features.version('jpg_2000')}"


# --- AVIF ----------------------------------------------------------------------------------

def _pillow_has_avif() -> bool:
    from PIL import features

    try:
        return bool(features.check("avif"))
    except ValueError:  # Pillow < 11.2 does not know the feature
        return False


def _avif_encode(rgb: np.ndarray, quality: float) -> bytes:
    if _pillow_has_avif():
        return _pil_save(rgb, "AVIF", quality=int(quality), subsampling="4:2:0")
    import imagecodecs

    return imagecodecs.avif_encode(rgb, level=int(quality), pixelformat="yuv420")


def _avif_decode(data: bytes) -> np.ndarray:
    if _pillow_has_avif():
        return _pil_decode(data)
    import imagecodecs

    return np.asarray(imagecodecs.avif_decode(data))[..., :3]


def _avif_library() -> str:
    if _pillow_has_avif():
        from PIL import _avif, features

        return f"libavif {features.version('avif')} ({_avif.codec_versions()}) via Pillow"
    import imagecodecs

    if not imagecodecs.AVIF.available:
        raise LcodecError("neither Pillow nor imagecodecs has an AVIF encoder")
    return f"{imagecodecs.avif_version()} via imagecodecs"


# --- HEIC ----------------------------------------------------------------------------------

def _heic_encode(rgb: np.ndarray, quality: float) -> bytes:
    import pillow_heif

    buf = io.BytesIO()
    pillow_heif.from_pillow(_pil(rgb)).save(buf, quality=int(quality), format="HEIF")
    return buf.getvalue()


def _heic_decode(data: bytes) -> np.ndarray:
    import pillow_heif

    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
    return np.asarray(heif.to_pillow().convert("RGB"))


def _heic_library() -> str:
    import pillow_heif

    info = pillow_heif.libheif_info()
    if not info.get("HEIF"):
        raise LcodecError("pillow-heif has no HEVC encoder")
    return f"pillow-heif {pillow_heif.__version__} (libheif {info['libheif']}, {info['HEIF']})"


# --- JPEG XL -------------------------------------------------------------------------------

JXL_EFFORT = 7


def _jxl_encode(rgb: np.ndarray, distance: float) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpegxl_encode(np.ascontiguousarray(rgb), effort=JXL_EFFORT,
                                           distance=float(distance)))


def _jxl_decode(data: bytes) -> np.ndarray:
    import imagecodecs

    return np.asarray(imagecodecs.jpegxl_decode(data))[..., :3]


def _jxl_library() -> str:
    import imagecodecs

    if not imagecodecs.JPEGXL.available:
        raise LcodecError("imagecodecs was built without libjxl")
    return f"{imagecodecs.jpegxl_version()} via imagecodecs {imagecodecs.__version__}"


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("jpeg", "JPEG", "quality",
                 (1, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 85, 90, 95),
                 _jpeg_encode, _pil_decode, _jpeg_library),
        Baseline("webp", "WebP", "quality",
                 (0, 2, 5, 10, 15, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95),
                 _webp_encode, _pil_decode, _webp_library),
        Baseline("jpeg2000", "JPEG 2000", "bpp",
                 (0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75,
                  1.0, 1.25, 1.5),
                 _j2k_encode, _pil_decode, _j2k_library),
        Baseline("avif", "AVIF", "quality",
                 (0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90),
                 _avif_encode, _avif_decode, _avif_library),
        Baseline("heic", "HEIC (x265)", "quality",
                 (1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65),
                 _heic_encode, _heic_decode, _heic_library),
        Baseline("jxl", "JPEG XL", "distance",
                 (25, 20, 15, 12, 10, 8, 6, 5, 4, 3, 2.5, 2, 1.5, 1.2, 1.0, 0.8, 0.6),
                 _jxl_encode, _jxl_decode, _jxl_library),
    )
}

# lcodec's files coded with the static tables instead, when its own method is another: the
# same symbols, so the same pixels; only the bytes differ (see runner.sweep_lcodec)
LCODEC_STATIC = "lcodec-static"
LABELS = {LCODEC: "lcodec", LCODEC_STATIC: "lcodec, static tables",
          **{name: b.label for name, b in BASELINES.items()}}
ALL_CODECS = (LCODEC, *BASELINES)


def get(name: str) -> Baseline:
    """The baseline called ``name``, or LcodecError naming the known ones."""
    try:
        return BASELINES[name]
    except KeyError:
        known = ", ".join(ALL_CODECS)
        raise LcodecError(f"unknown codec {name!r}; choose from {known}") from None


def library_versions(names: list[str]) -> dict[str, str]:
    """The library behind each available baseline in ``names`` (for the report header)."""
    out = {}
    for name in names:
        if name in BASELINES:
            try:
                out[name] = BASELINES[name].library()
            except (ImportError, LcodecError) as exc:
                out[name] = f"unavailable ({exc})"
    return out
