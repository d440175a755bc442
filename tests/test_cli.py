"""The command line: exit codes, one-line errors, --force, atomic outputs, stdin/stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lcodec.cli import main

SUBCOMMANDS = ["encode", "decode", "info", "models"]


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


def test_help_and_info_do_not_import_torch(lic_file) -> None:
    code = ("import sys; from lcodec.cli import main; "
            f"main(['info', {str(lic_file)!r}]); main(['--help']); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


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
    assert set(info["sections"]) == {"importance", "luma", "chroma"}


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

    from lcodec import api, codec, container, models

    out = tmp_path / "map.png"
    assert run(["info", str(lic_file), "--importance-map", str(out)], capsys)[0] == 0
    picture = np.asarray(Image.open(out))
    hdr = container.unpack(lic_file.read_bytes()).header
    assert picture.shape == (hdr.height, hdr.width)
    loaded = models.load(models.find(model_id=hdr.model_id))
    src = api.as_source(np.asarray(Image.open(crop_path).convert("RGB")))
    qi, _, _ = codec.analyse(loaded, src).symbols(hdr.rate_knob)
    s = loaded.config.stride
    assert np.array_equal(picture[::s, ::s], (qi * 255 // 15).astype(np.uint8))
    assert len(np.unique(qi)) > 1  # a real map, not a constant
    code, _, err = run(["info", str(lic_file), "--importance-map", str(out)], capsys)
    assert code != 0 and "--force" in err
    code, _, err = run(["info", str(lic_file), "--importance-map", str(tmp_path / "m.xyz")],
                       capsys)
    assert code != 0 and "format" in err
