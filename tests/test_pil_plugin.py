"""The Pillow plugin registered by ``import lcodec``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import lcodec  # noqa: F401  (registers the plugin)
from lcodec.pil import _accept


def test_accept_checks_only_the_magic() -> None:
    assert _accept(b"\x89LIC\x01\x00")
    assert not _accept(b"\x89PNG\r\n\x1a\n")


def _default_method() -> str:
    """The entropy method new files of the default model name (its card's ``auto``)."""
    from lcodec import models
    from lcodec.encoder.analysis import coder_for_encoding

    return coder_for_encoding(models.load(models.find()), "auto").method.name


def test_extension_and_mime_are_registered() -> None:
    assert Image.registered_extensions()[".lic"] == "LIC"
    assert Image.MIME["LIC"] == "image/x-lic"


def test_save_then_open_round_trips(tmp_path, odd_path) -> None:
    path = tmp_path / "x.lic"
    Image.open(odd_path).save(path, knob=0.2)
    with Image.open(path) as im:
        assert (im.format, im.size, im.mode) == ("LIC", (77, 45), "RGB")
        assert im.info["entropy_method"] == _default_method()
        im.load()
        assert im.getpixel((0, 0)) is not None


def test_opening_parses_only_the_header_without_torch(tmp_path, odd_path) -> None:
    path = tmp_path / "y.lic"
    Image.open(odd_path).save(path)
    code = (f"import sys, lcodec; from PIL import Image; im = Image.open({str(path)!r}); "
            "sys.exit(0 if im.size == (77, 45) and 'torch' not in sys.modules else 1)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_bad_save_options_are_refused(tmp_path, odd_path) -> None:
    with pytest.raises(ValueError, match="unknown"):
        Image.open(odd_path).save(tmp_path / "a.lic", lossless=True)
    with pytest.raises(ValueError, match="unknown"):  # the PSNR would have nowhere to go
        Image.open(odd_path).save(tmp_path / "a.lic", measure_psnr=True)
    with pytest.raises(ValueError, match="knob"):
        Image.open(odd_path).save(tmp_path / "a.lic", knob=5)
    with pytest.raises(ValueError, match="at most one"):
        Image.open(odd_path).save(tmp_path / "a.lic", bpp=0.5, quality=50)


def test_save_takes_the_encode_settings(tmp_path, odd_path) -> None:
    Image.open(odd_path).save(tmp_path / "q.lic", quality=40, entropy="static")
    with Image.open(tmp_path / "q.lic") as im:
        assert im.info["entropy_method"] == "STATIC_CONTEXT_V1"


def test_rgba_keeps_its_alpha_exactly(tmp_path, odd_path) -> None:
    im = Image.open(odd_path).convert("RGBA")
    im.putalpha(Image.linear_gradient("L").resize(im.size))
    im.save(tmp_path / "b.lic")
    with Image.open(tmp_path / "b.lic") as back:
        assert back.mode == "RGBA"
        assert back.getchannel("A").tobytes() == im.getchannel("A").tobytes()


def test_a_corrupted_file_is_not_identified(tmp_path) -> None:
    path = tmp_path / "bad.lic"
    path.write_bytes(b"\x89LIC" + bytes(60))
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(path)


def test_a_corrupted_file_says_why_it_was_not_identified(tmp_path) -> None:
    from lcodec.errors import LcodecError

    data = bytearray((Path(__file__).parent / "golden" / "v1.0-static-rgb-odd.lic")
                     .read_bytes())
    chroma_end = len(data) - 1  # the last section (chroma) ends the file
    data[chroma_end] ^= 0xFF
    path = tmp_path / "bad-chroma.lic"
    path.write_bytes(bytes(data))
    with pytest.raises(Image.UnidentifiedImageError,
                       match=r"corrupted chroma section \(CRC mismatch\)") as caught:
        Image.open(path)
    assert isinstance(caught.value, LcodecError)
    assert str(path) in str(caught.value)
