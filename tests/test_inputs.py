"""Every kind of input image: what lcodec stores and what comes back."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from lcodec import api, container
from lcodec.container import ColourMode, SectionType
from lcodec.errors import LcodecError, LicError
from lcodec.imageio import from_pil, load_image
from lcodec.sidecar import pack_alpha, pack_metadata, unpack_alpha, unpack_metadata


@pytest.fixture(scope="module")
def base(crop_path) -> Image.Image:
    return Image.open(crop_path).convert("RGB")


def roundtrip(im: Image.Image, **kw) -> tuple[bytes, Image.Image]:
    data = api.encode(im, knob=0.2, **kw)
    return data, api.decode(data)


def sections(data: bytes) -> set[SectionType]:
    return set(container.unpack(data).sections)


def test_grayscale_is_coded_as_luma_only(base) -> None:
    data, back = roundtrip(base.convert("L"))
    assert container.unpack(data).header.colour_mode == ColourMode.GRAY
    assert SectionType.CHROMA not in sections(data)
    assert back.mode == "L" and back.size == base.size
    assert len(data) < len(api.encode(base, knob=0.2))


def test_rgba_alpha_is_kept_losslessly(base) -> None:
    im = base.copy()
    alpha = Image.fromarray(np.random.default_rng(0).integers(0, 256, base.size[::-1],
                                                              dtype=np.uint8))
    im.putalpha(alpha)
    data, back = roundtrip(im)
    assert container.unpack(data).header.colour_mode == ColourMode.RGBA
    assert back.mode == "RGBA"
    assert back.getchannel("A").tobytes() == alpha.tobytes()


def test_la_keeps_alpha_and_stays_gray(base) -> None:
    im = base.convert("LA")
    data, back = roundtrip(im)
    assert back.mode == "LA" and back.getchannel("A").tobytes() == im.getchannel("A").tobytes()


def test_alpha_can_be_dropped_on_request(base) -> None:
    im = base.convert("RGBA")
    data = api.encode(im, alpha="drop")
    assert SectionType.ALPHA not in sections(data)
    assert api.decode(data).mode == "RGB"


def test_palette_images_become_rgb_and_transparent_palettes_keep_alpha(base) -> None:
    assert roundtrip(base.convert("P"))[1].mode == "RGB"
    p = base.convert("P")
    p.info["transparency"] = 0
    assert roundtrip(p)[1].mode == "RGBA"


def test_sixteen_bit_input_is_reduced_with_a_notice(base) -> None:
    arr16 = (np.asarray(base.convert("L")).astype(np.uint16) * 257)
    im = Image.fromarray(arr16)
    assert im.mode.startswith("I;16")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    src = load_image(io.BytesIO(buf.getvalue()), "deep.png")
    assert src.gray and any("8 bits" in n for n in src.notices)
    assert np.array_equal(src.rgb[..., 0], np.asarray(base.convert("L")))


def test_cmyk_jpeg_becomes_rgb(base) -> None:
    buf = io.BytesIO()
    base.convert("CMYK").save(buf, format="JPEG", quality=95)
    src = load_image(io.BytesIO(buf.getvalue()), "cmyk.jpg")
    assert src.rgb.shape == (base.height, base.width, 3) and not src.gray


def test_exif_orientation_is_applied(base) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    base.save(buf, format="JPEG", exif=exif.tobytes())
    src = load_image(io.BytesIO(buf.getvalue()), "rotated.jpg")
    assert (src.width, src.height) == (base.height, base.width)


def test_icc_profile_and_exif_are_kept_unless_stripped(base) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "lcodec test camera"
    buf = io.BytesIO()
    base.save(buf, format="PNG", icc_profile=icc, exif=exif.tobytes())
    png = buf.getvalue()
    data, back = roundtrip(Image.open(io.BytesIO(png)))
    assert back.info["icc_profile"] == icc
    assert Image.Exif().load(back.info["exif"]) is None or back.getexif()[0x010F] == (
        "lcodec test camera")
    stripped = api.encode(Image.open(io.BytesIO(png)), strip=True)
    assert SectionType.METADATA not in sections(stripped)


def test_bad_alpha_choice_is_refused(base) -> None:
    with pytest.raises(LcodecError, match="alpha"):
        from_pil(base, alpha="maybe")


def test_corrupted_side_sections_raise_lic_errors() -> None:
    alpha = np.arange(12, dtype=np.uint8).reshape(3, 4)
    packed = pack_alpha(alpha)
    assert np.array_equal(unpack_alpha(packed, 4, 3), alpha)
    for bad in (b"", b"\x07" + packed[1:], packed[:-3], packed + b"x"):
        with pytest.raises(LicError):
            unpack_alpha(bad, 4, 3)
    with pytest.raises(LicError):
        unpack_alpha(packed, 400, 300)  # declared size disagrees with the data
    meta = pack_metadata(b"icc", b"exif")
    assert unpack_metadata(meta) == {"icc": b"icc", "exif": b"exif"}
    for bad in (meta[:3], meta[:-1]):
        with pytest.raises(LicError):
            unpack_metadata(bad)


def test_an_input_declaring_too_many_pixels_is_refused_before_decoding(tmp_path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    ihdr = struct.pack(">IIBBBBB", 200_000, 200_000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(LcodecError, match="over the limit"):
        load_image(bomb, "bomb.png")


def _png16(width: int, height: int, colour_type: int, channels: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    rng = np.random.default_rng(3)
    rows = rng.integers(0, 65536, (height, width * channels)).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize(("colour_type", "channels"), [(2, 3), (6, 4)], ids=["RGB", "RGBA"])
def test_sixteen_bit_rgb_input_is_reduced_with_a_notice(colour_type, channels) -> None:
    png = _png16(9, 7, colour_type, channels)
    src = load_image(io.BytesIO(png), "deep-rgb.png")
    assert not src.gray and src.rgb.shape == (7, 9, 3)
    assert any("16-bit" in n and "8 bits" in n for n in src.notices), src.notices
    from_api = api.as_source(Image.open(io.BytesIO(png)))
    assert any("8 bits" in n for n in from_api.notices)
    eight = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(eight, format="PNG")
    assert not load_image(io.BytesIO(eight.getvalue()), "plain.png").notices
