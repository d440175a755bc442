"""The command line: exit codes, one-line errors, --force, atomic outputs, stdin/stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lcodec.cli import main

SUBCOMMANDS = ["encode", "decode", "info", "models", "hash", "check"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def lic_file(tmp_path_factory, crop_path) -> Path:
    path = tmp_path_factory.mktemp("cli") / "crop.lic"
    assert main(["encode", str(crop_path), str(path), "--knob", "0.1", "-q"]) == 0
    return path


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_has_help(sub, capsys) -> None:
    code, out, _ = run([sub, "--help"], capsys)
    assert code == 0 and "Usage:" in out


def test_help_info_and_models_do_not_import_torch_or_numpy(lic_file) -> None:
    code = ("import sys; from lcodec.cli import main; "
            f"main(['info', {str(lic_file)!r}]); main(['--help']); main(['models', '--all']); "
            "sys.exit(1 if 'torch' in sys.modules or 'numpy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_decoding_an_exact_int_v2_file_does_not_import_torch(lic_file, tmp_path) -> None:
    """The EXACT_INT_V2 decoder is numpy alone: ``lcodec decode`` (and ``--threads``) never
    loads torch for such a file, and gives the pixels the in-process decoder gives."""
    from lcodec import api, container
    from lcodec.container import Synthesis

    assert container.unpack(lic_file.read_bytes()).header.synthesis == Synthesis.EXACT_INT_V2
    out = tmp_path / "d.png"
    code = ("import sys; from lcodec.cli import main; "
            f"r = main(['decode', {str(lic_file)!r}, {str(out)!r}, '--threads', '1']); "
            "sys.exit(r or (2 if 'torch' in sys.modules else 0))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), api.decode_array(lic_file))


def test_a_missing_or_bad_input_is_reported_before_torch_numpy_or_pil(tmp_path) -> None:
    bad = tmp_path / "bad.lic"
    bad.write_bytes(b"not a lic file")
    code = ("import sys; from lcodec.cli import main; "
            f"a = main(['encode', {str(tmp_path / 'none.png')!r}, {str(tmp_path / 'a.lic')!r}]); "
            f"b = main(['decode', {str(tmp_path / 'none.lic')!r}, {str(tmp_path / 'a.png')!r}]); "
            f"c = main(['decode', {str(bad)!r}, {str(tmp_path / 'b.png')!r}]); "
            f"d = main(['info', {str(bad)!r}]); "
            "heavy = [m for m in ('torch', 'numpy', 'PIL.PngImagePlugin') if m in sys.modules]; "
            "sys.exit(0 if (a, b, c, d) == (1, 1, 1, 1) and not heavy else 1)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 4 and all(line.startswith("Error: ") for line in lines)
    assert "none.png not found" in lines[0] and "bad.lic" in lines[2]


def test_encode_decode_info_round_trip(tmp_path, crop_path, capsys) -> None:
    lic, png = tmp_path / "a.lic", tmp_path / "a.png"
    code, _, err = run(["encode", str(crop_path), str(lic), "--bpp", "0.5", "-v"], capsys)
    assert code == 0 and "bpp" in err and "PSNR" in err
    assert lic.stat().st_size * 8 / (128 * 96) <= 0.5
    code, _, _ = run(["decode", str(lic), str(png)], capsys)
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run(["info", str(lic), "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and (info["width"], info["height"]) == (128, 96)
    # the correction layer where the encoder found it worth its bytes (this crop: yes)
    assert set(info["sections"]) == {"importance", "luma", "chroma", "synthesis",
                                     "synthesis_grids", "correction"}
    assert info["synthesis"] == "EXACT_INT_V2"
    code, _, _ = run(["encode", str(crop_path), str(tmp_path / "b.lic"), "--bpp", "0.5",
                      "--no-correction"], capsys)
    code, out, _ = run(["info", str(tmp_path / "b.lic"), "--json"], capsys)
    assert code == 0 and "correction" not in json.loads(out)["sections"]


def test_json_statistics_are_printed_on_request(tmp_path, crop_path, capsys) -> None:
    code, out, _ = run(["encode", str(crop_path), str(tmp_path / "b.lic"), "--json"], capsys)
    stats = json.loads(out)
    assert code == 0 and stats["bytes"] == (tmp_path / "b.lic").stat().st_size
    assert {"bpp", "psnr", "seconds", "knob", "model"} <= set(stats)


def test_an_existing_output_is_kept_without_force(tmp_path, crop_path, lic_file, capsys) -> None:
    target = tmp_path / "keep.lic"
    target.write_bytes(b"precious")
    code, _, err = run(["encode", str(crop_path), str(target)], capsys)
    assert code == 1 and "--force" in err and target.read_bytes() == b"precious"
    code, _, _ = run(["encode", str(crop_path), str(target), "--force"], capsys)
    assert code == 0 and target.read_bytes()[:4] == b"\x89LIC"
    png = tmp_path / "keep.png"
    png.write_bytes(b"precious")
    code, _, err = run(["decode", str(lic_file), str(png)], capsys)
    assert code == 1 and png.read_bytes() == b"precious"


def _assert_clean_failure(code: int, err: str, folder: Path, before: set[str]) -> None:
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("Error:"), err
    assert "Traceback" not in err
    assert set(os.listdir(folder)) == before, "a partial or temporary file was left behind"


@pytest.mark.parametrize("case", ["missing", "not-an-image", "directory"])
def test_bad_encode_inputs_fail_with_one_line(case, tmp_path, capsys) -> None:
    src = {"missing": tmp_path / "nope.png", "not-an-image": tmp_path / "text.png",
           "directory": tmp_path}[case]
    if case == "not-an-image":
        src.write_text("hello")
    before = set(os.listdir(tmp_path))
    code, _, err = run(["encode", str(src), str(tmp_path / "out.lic")], capsys)
    _assert_clean_failure(code, err, tmp_path, before)
    assert str(src) in err  # the error names its file


@pytest.mark.parametrize("case", ["truncated", "flipped", "empty", "not-lic", "missing"])
def test_bad_lic_files_fail_with_one_line(case, tmp_path, lic_file, capsys) -> None:
    data = lic_file.read_bytes()
    bad = tmp_path / "bad.lic"
    if case == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif case == "flipped":
        bad.write_bytes(data[:60] + bytes([data[60] ^ 0x40]) + data[61:])
    elif case == "empty":
        bad.write_bytes(b"")
    elif case == "not-lic":
        bad.write_bytes(b"GIF89a" + bytes(100))
    before = set(os.listdir(tmp_path))
    code, _, err = run(["decode", str(bad), str(tmp_path / "out.png")], capsys)
    _assert_clean_failure(code, err, tmp_path, before)
    assert err.startswith(f"Error: {bad}")  # the error names its file
    code, _, err = run(["info", str(bad)], capsys)
    assert code == 1 and err.startswith("Error:") and err.count("\n") == 1


def test_unknown_output_extension_is_refused_before_work(tmp_path, lic_file, capsys) -> None:
    code, _, err = run(["decode", str(lic_file), str(tmp_path / "out.xyz")], capsys)
    assert code == 1 and "format" in err


def test_stdin_to_stdout_pipeline(crop_path) -> None:
    exe = [sys.executable, "-m", "lcodec.cli"]
    enc = subprocess.run([*exe, "encode", "-", "-", "--knob", "0.0"],
                         input=crop_path.read_bytes(), capture_output=True, check=True)
    assert enc.stdout[:4] == b"\x89LIC" and enc.stderr == b""
    dec = subprocess.run([*exe, "decode", "-", "-"], input=enc.stdout, capture_output=True,
                         check=True)
    assert dec.stdout[:8] == b"\x89PNG\r\n\x1a\n" and dec.stderr == b""


def test_console_script_reports_errors_with_exit_code_1(tmp_path) -> None:
    exe = Path(sys.executable).parent / "lcodec"
    res = subprocess.run([str(exe), "decode", str(tmp_path / "nope.lic"), "x.png"],
                         capture_output=True, text=True)
    assert res.returncode == 1 and res.stderr.strip() == f"Error: {tmp_path / 'nope.lic'} not found"


def test_info_writes_the_decoded_importance_map(tmp_path, lic_file, crop_path, capsys) -> None:
    import numpy as np
    from PIL import Image

    from lcodec import api, container, encoder, models

    out = tmp_path / "map.png"
    assert run(["info", str(lic_file), "--importance-map", str(out)], capsys)[0] == 0
    picture = np.asarray(Image.open(out))
    hdr = container.unpack(lic_file.read_bytes()).header
    assert picture.shape == (hdr.height, hdr.width)
    loaded = models.load(models.find(model_id=hdr.model_id))
    src = api.as_source(np.asarray(Image.open(crop_path).convert("RGB")))
    qi, _, _ = encoder.analyse(loaded, src).symbols(hdr.rate_knob)
    s = loaded.config.stride
    assert np.array_equal(picture[::s, ::s], (qi * 255 // 15).astype(np.uint8))
    assert len(np.unique(qi)) > 1  # a real map, not a constant
    code, _, err = run(["info", str(lic_file), "--importance-map", str(out)], capsys)
    assert code != 0 and "--force" in err
    code, _, err = run(["info", str(lic_file), "--importance-map", str(tmp_path / "m.xyz")],
                       capsys)
    assert code != 0 and "format" in err


GOLDEN = Path(__file__).parent / "golden"
# (mode of the decoded image, output extension): the pairs whose Pillow writer refused the
# mode with a ValueError, which reached the user as a traceback.
REFUSED_BY_PILLOW = [("RGBA", ".eps"), ("LA", ".eps"), ("RGBA", ".ps"), ("LA", ".ps"),
                     ("RGBA", ".pcx"), ("LA", ".pcx"), ("RGB", ".blp"), ("RGBA", ".blp"),
                     ("L", ".blp"), ("LA", ".blp"), ("L", ".qoi"), ("LA", ".qoi"),
                     ("LA", ".sgi"), ("LA", ".rgb"), ("LA", ".rgba"), ("LA", ".bw")]


@pytest.fixture(scope="module")
def lic_by_mode(tmp_path_factory, odd_path) -> dict[str, Path]:
    """A small .lic file that decodes to each PIL mode."""
    from PIL import Image

    from lcodec import api

    folder = tmp_path_factory.mktemp("modes")
    la = Image.open(odd_path).convert("LA")
    (folder / "la.lic").write_bytes(api.encode(la, knob=0.0))
    return {"RGB": GOLDEN / "v1.0-static-rgb-odd.lic",
            "RGBA": GOLDEN / "v1.0-static-rgba-odd.lic",
            "L": GOLDEN / "v1.0-static-gray-odd.lic", "LA": folder / "la.lic"}


@pytest.mark.parametrize(("mode", "ext"), REFUSED_BY_PILLOW,
                         ids=[f"{m}{e}" for m, e in REFUSED_BY_PILLOW])
def test_decode_to_any_format_converts_losslessly_or_refuses_in_one_line(
        mode, ext, lic_by_mode, tmp_path, capsys) -> None:
    from PIL import Image

    out = tmp_path / f"x{ext}"
    code, _, err = run(["decode", str(lic_by_mode[mode]), str(out)], capsys)
    assert "Traceback" not in err
    if code == 0:  # widened to a mode holding the same samples, with a notice
        assert err.startswith("Notice:") and "same samples" in err, err
        with Image.open(out) as back:
            assert back.size == (77, 45)
    else:
        _assert_clean_failure(code, err, tmp_path, set())
        assert "cannot hold" in err


def test_decode_refuses_a_format_that_cannot_hold_the_image_before_decoding(
        lic_by_mode, tmp_path, capsys, monkeypatch) -> None:
    from lcodec import api

    monkeypatch.setattr(api, "decode_full", lambda *a, **k: pytest.fail("decoded anyway"))
    code, _, err = run(["decode", str(lic_by_mode["RGBA"]), str(tmp_path / "x.eps")], capsys)
    _assert_clean_failure(code, err, tmp_path, set())


def _png_with_exif(path: Path, exif_bytes: bytes) -> None:
    from PIL import Image

    Image.open(Path(__file__).parent / "data" / "kodim05_odd.png").save(path, exif=exif_bytes)


def test_decode_to_jpeg_drops_exif_over_64_kb_with_a_notice(tmp_path, capsys) -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x010E] = "x" * 70_000  # ImageDescription: more EXIF than one JPEG marker holds
    src, lic, jpg = tmp_path / "big-exif.png", tmp_path / "a.lic", tmp_path / "a.jpg"
    _png_with_exif(src, exif.tobytes())
    assert run(["encode", str(src), str(lic), "-q"], capsys)[0] == 0
    code, _, err = run(["decode", str(lic), str(jpg)], capsys)
    assert code == 0 and "EXIF" in err and "Traceback" not in err, err
    with Image.open(jpg) as back:
        assert back.format == "JPEG" and back.size == (77, 45)
    png = tmp_path / "a.png"  # a format that holds it keeps it
    assert run(["decode", str(lic), str(png)], capsys)[0] == 0
    assert Image.open(png).getexif()[0x010E] == "x" * 70_000


def _with_metadata(record_kind: int, blob: bytes) -> bytes:
    import struct

    from lcodec import container

    lic = container.unpack((GOLDEN / "v1.0-static-rgb-odd.lic").read_bytes())
    meta = struct.pack("<BI", record_kind, len(blob)) + blob
    sections = {**lic.sections, container.SectionType.METADATA: meta}
    return container.pack(container.LicFile(lic.header, sections))


@pytest.mark.parametrize("ext", [".tif", ".png", ".jpg", ".webp"])
@pytest.mark.parametrize(("kind", "name"), [(2, "EXIF"), (1, "ICC")])
def test_decode_drops_crafted_metadata_with_a_notice_instead_of_traceback(
        ext, kind, name, tmp_path, capsys) -> None:
    from PIL import Image

    import lcodec

    bad = tmp_path / "crafted.lic"
    bad.write_bytes(_with_metadata(kind, b"garbage " * 8))  # valid section CRC
    out = tmp_path / f"x{ext}"
    code, _, err = run(["decode", str(bad), str(out)], capsys)
    assert code == 0 and err.startswith("Notice:") and name in err and "dropped" in err, err
    with Image.open(out) as back:
        assert back.size == (77, 45) and "exif" not in back.info
    assert not {"exif", "icc_profile"} & set(lcodec.decode(bad.read_bytes()).info)


def test_info_takes_max_pixels_as_its_error_message_suggests(tmp_path, capsys) -> None:
    import dataclasses

    from lcodec import container

    lic = container.unpack((GOLDEN / "v1.0-static-rgb-odd.lic").read_bytes())
    huge = dataclasses.replace(lic.header, width=20_000, height=6_000)  # 120 MP
    path = tmp_path / "huge.lic"
    path.write_bytes(container.pack(container.LicFile(huge, lic.sections)))
    code, _, err = run(["info", str(path)], capsys)
    assert code == 1 and "higher limit" in err
    code, out, _ = run(["info", str(path), "--max-pixels", "200000000", "--json"], capsys)
    assert code == 0 and json.loads(out)["width"] == 20_000
    code, _, err = run(["info", str(GOLDEN / "v1.0-static-rgb-odd.lic"), "--max-pixels",
                        "1000"], capsys)
    assert code == 1 and "over the limit of 1000" in err


def test_decode_refuses_a_lic_output_instead_of_encoding_again(tmp_path, lic_file,
                                                                capsys) -> None:
    out = tmp_path / "again.lic"
    code, _, err = run(["decode", str(lic_file), str(out)], capsys)
    _assert_clean_failure(code, err, tmp_path, set())
    assert ".lic" in err and "image" in err
    code, _, err = run(["decode", str(lic_file), "-o", str(tmp_path / "d"), "--format", "lic"],
                       capsys)
    assert code == 1 and ".lic" in err and not list((tmp_path / "d").glob("*.lic"))


@pytest.fixture
def locked_folder(tmp_path, monkeypatch) -> Path:
    """A folder no file can be created in (mode 555; for root, whom modes do not stop, file
    creation there is made to fail as on a read-only mount)."""
    import errno
    import tempfile

    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):  # noqa: A002 - tempfile's own name
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    yield folder
    folder.chmod(0o755)


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_an_unwritable_output_folder_is_named_before_any_encoding(
        batch, locked_folder, crop_path, capsys, monkeypatch) -> None:
    from lcodec import api

    monkeypatch.setattr(api, "encode_with_stats", lambda *a, **k: pytest.fail("encoded"))
    args = ["-o", str(locked_folder)] if batch else [str(locked_folder / "a.lic")]
    code, _, err = run(["encode", str(crop_path), *args], capsys)
    assert code == 1 and err.count("\n") == 1 and err.startswith("Error:"), err
    assert str(locked_folder) in err and "not permitted" in err
    assert os.listdir(locked_folder) == []


def test_decode_into_an_unwritable_folder_names_it(locked_folder, lic_file, capsys) -> None:
    code, _, err = run(["decode", str(lic_file), str(locked_folder / "a.png")], capsys)
    assert code == 1 and str(locked_folder) in err and err.startswith("Error:")


def _readme_option_table() -> dict[str, dict[str, bool]]:
    """README's table of options: option -> {command: listed}."""
    import re

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    rows = readme.split("| option | encode | decode | info |")[1].splitlines()[2:]
    table = {}
    for line in rows:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        listed = dict(zip(("encode", "decode", "info"), (c == "✓" for c in cells[1:4]),
                          strict=True))
        for option in re.findall(r"`([^`]+)`", cells[0]):
            table[option] = listed
    return table


def test_readme_option_table_matches_each_command() -> None:
    from lcodec.cli import cli

    table = _readme_option_table()
    assert len(table) >= 9
    for option, listed in table.items():
        for command, claimed in listed.items():
            names = {n for p in cli.commands[command].params for n in p.opts}
            has = all(n in names for n in option.split("/"))
            assert has == claimed, f"README says {option} {'is' if claimed else 'is not'} " \
                                   f"an option of {command}"


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_conflicting_encode_options_are_one_error_before_any_file(
        batch, tmp_path, crop_path, capsys, monkeypatch) -> None:
    from lcodec import api

    monkeypatch.setattr(api, "encode_with_stats", lambda *a, **k: pytest.fail("encoded"))
    out = ["-o", str(tmp_path / "o")] if batch else [str(tmp_path / "a.lic")]
    code, _, err = run(["encode", str(crop_path), *out, "--bpp", "0.5", "--knob", "0"], capsys)
    assert code == 1 and err.count("\n") == 1 and "at most one" in err, err
    assert list(tmp_path.rglob("*.lic")) == []


def test_models_lists_what_encodes_and_all_adds_the_decode_only_models(capsys) -> None:
    from lcodec import models

    code, out, _ = run(["models"], capsys)
    rows = [line.split() for line in out.splitlines()[1:]]
    assert code == 0 and out.startswith("name")
    assert [r[0] for r in rows] == [m.name for m in models.listing()]
    assert rows[0][0] == models.DEFAULT_MODEL and out.splitlines()[1].endswith("(default)")
    assert not {"lite-mse", "mse"} & {r[0] for r in rows}  # v1: decode-only
    assert all("Kodak 0.25 bpp" in line for line in out.splitlines()[1:])
    code, out, _ = run(["models", "--all"], capsys)
    lines = out.splitlines()[1:]
    old = [line for line in lines if "decode-only" in line]
    assert code == 0 and len(lines) == len(models.available()) and len(old) >= 5
    assert {line.split()[0] for line in old} >= {"lite-mse", "mse", "v2-mse"}
    assert len({line.split()[1] for line in lines}) == len(lines)  # told apart by id
    same_name = [line.split(maxsplit=3)[3] for line in old if line.startswith("v2-mse ")]
    assert len(set(same_name)) == len(same_name) >= 3  # and by their training runs


def test_models_without_any_installed_says_where_it_looked_and_fails(
        tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LCODEC_MODELS", str(tmp_path))
    for argv in (["models"], ["models", "--all"],
                 ["encode", str(Path(__file__).parent / "data" / "kodim23_crop.png"),
                  str(tmp_path / "x.lic")]):
        code, out, err = run(argv, capsys)
        assert code == 1 and out == "" and err.count("\n") == 1, err
        assert err.startswith("Error: no models in") and str(tmp_path) in err
        assert "LCODEC_MODELS" in err
    assert list(tmp_path.iterdir()) == []


def test_a_retired_model_name_is_refused_for_encoding_with_what_encodes(
        tmp_path, crop_path, capsys) -> None:
    code, _, err = run(["encode", str(crop_path), str(tmp_path / "x.lic"), "--model",
                        "lite-mse"], capsys)
    assert code == 1 and err.count("\n") == 1 and "'lite-mse' is retired" in err, err
    assert "v2-mse" in err and not (tmp_path / "x.lic").exists()


def test_info_names_the_model_beside_its_id_or_says_it_is_not_installed(
        tmp_path, monkeypatch, capsys) -> None:
    old = GOLDEN / "v1.0-static-rgb-odd.lic"
    code, out, _ = run(["info", str(old)], capsys)
    assert code == 0 and "model            lite-mse (fcf1326f70791116, decode-only)\n" in out
    assert json.loads(run(["info", str(old), "--json"], capsys)[1])["model"] == "lite-mse"
    monkeypatch.setenv("LCODEC_MODELS", str(tmp_path))
    code, out, _ = run(["info", str(old)], capsys)
    assert code == 0 and f"fcf1326f70791116 (not installed in {tmp_path}" in out
    info = json.loads(run(["info", str(old), "--json"], capsys)[1])
    assert info["model"] is None and info["model_id"] == "fcf1326f70791116"


@pytest.mark.parametrize("ext", [".jpg", ".webp", ".avif"])
def test_out_quality_changes_the_output_size_and_a_notice_says_so(ext, tmp_path,
                                                                   capsys) -> None:
    from PIL import features

    if ext == ".avif" and not features.check("avif"):
        pytest.skip("Pillow without AVIF")
    lic = GOLDEN / "v1.3-v2-mse-fffc224b-static-rgb-crop-high.lic"
    fmt = {".jpg": "JPEG", ".webp": "WEBP", ".avif": "AVIF"}[ext]
    default, low = tmp_path / f"d{ext}", tmp_path / f"low{ext}"
    code, _, err = run(["decode", str(lic), str(default)], capsys)
    assert code == 0 and err == f"Notice: {default}: re-encoded as lossy {fmt} at quality 95 " \
                                "(--out-quality sets it)\n", err
    code, _, err = run(["decode", str(lic), str(low), "--out-quality", "30"], capsys)
    assert code == 0 and f"lossy {fmt} at quality 30" in err
    assert low.stat().st_size < default.stat().st_size
    code, _, err = run(["decode", str(lic), str(tmp_path / f"q{ext}"), "-q"], capsys)
    assert code == 0 and err == ""
    code, _, err = run(["decode", str(lic), str(tmp_path / "x.png"), "--out-quality", "30"],
                       capsys)
    assert code == 0 and err == ""  # lossless: nothing re-encoded, nothing to say


def test_gray_widened_for_webp_gets_a_notice(tmp_path, capsys) -> None:
    from PIL import Image

    out = tmp_path / "g.webp"
    code, _, err = run(["decode", str(GOLDEN / "v1.3-v2-mse-fffc224b-static-gray-odd.lic"),
                        str(out)], capsys)
    assert code == 0 and f"{out}: WEBP cannot hold L images; wrote RGB" in err, err
    assert Image.open(out).mode == "RGB"


def test_alpha_into_a_format_that_would_drop_it_is_refused_before_decoding(
        lic_by_mode, tmp_path, capsys, monkeypatch) -> None:
    from lcodec import api

    monkeypatch.setattr(api, "decode_full", lambda *a, **k: pytest.fail("decoded anyway"))
    for ext in (".bmp", ".ppm"):
        code, _, err = run(["decode", str(lic_by_mode["RGBA"]), str(tmp_path / f"x{ext}")],
                           capsys)
        _assert_clean_failure(code, err, tmp_path, set())
        assert "would drop the alpha channel" in err


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
       b'22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" '
       b'dc:format="image/jpeg"/></rdf:RDF></x:xmpmeta>')


def test_xmp_is_kept_where_the_output_format_holds_it_and_dropped_with_a_notice(
        tmp_path, odd_path, capsys) -> None:
    from PIL import Image

    src, lic = tmp_path / "x.jpg", tmp_path / "x.lic"
    Image.open(odd_path).save(src, xmp=XMP, quality=95)
    assert run(["encode", str(src), str(lic), "--knob", "0", "--no-correction", "-q"],
               capsys)[0] == 0
    for ext in (".png", ".jpg", ".webp", ".tif"):
        out = tmp_path / f"back{ext}"
        assert run(["decode", str(lic), str(out), "-q"], capsys)[0] == 0
        xmp = Image.open(out).info.get("xmp")
        assert (xmp.encode() if isinstance(xmp, str) else xmp) == XMP, ext
    code, _, err = run(["decode", str(lic), str(tmp_path / "back.bmp")], capsys)
    assert code == 0 and "BMP cannot hold the XMP packet; written without it" in err
    stripped = tmp_path / "s.lic"
    assert run(["encode", str(src), str(stripped), "--knob", "0", "--no-correction", "--strip",
                "-q"], capsys)[0] == 0
    assert run(["decode", str(stripped), str(tmp_path / "s.png")], capsys)[0] == 0
    assert "xmp" not in Image.open(tmp_path / "s.png").info


def test_verbose_says_lossless_for_an_exact_result_instead_of_psnr_inf(tmp_path,
                                                                        capsys) -> None:
    from PIL import Image

    flat = tmp_path / "flat.png"
    Image.new("RGB", (16, 16), (77, 77, 77)).save(flat)
    code, _, err = run(["encode", str(flat), str(tmp_path / "a.lic"), "--bpp", "24", "-v"],
                       capsys)
    assert code == 0 and "lossless" in err and "inf" not in err, err
    code, out, _ = run(["encode", str(flat), str(tmp_path / "b.lic"), "--bpp", "24", "--json"],
                       capsys)
    stats = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert code == 0 and stats["lossless"] is True and stats["psnr"] is None


def test_an_unreachable_psnr_is_refused_in_db_naming_the_file(tmp_path, odd_path,
                                                              capsys) -> None:
    code, _, err = run(["encode", str(odd_path), str(tmp_path / "a.lic"), "--psnr", "90"],
                       capsys)
    assert code == 1 and err.count("\n") == 1 and err.startswith(f"Error: {odd_path}: ")
    assert "dB at its highest rate" in err and "target of 90.00 dB" in err
