"""Batch mode: many inputs, an output folder, per-file errors, one summary line."""

from __future__ import annotations

import shutil

from lcodec.cli import main


def test_batch_encode_and_decode_report_failures_and_continue(tmp_path, crop_path, odd_path,
                                                              capsys) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(crop_path, inputs / "a.png")
    shutil.copy(odd_path, inputs / "b.png")
    (inputs / "broken.png").write_text("not an image")
    out = tmp_path / "lic"
    code = main(["encode", *(str(p) for p in sorted(inputs.iterdir())), "-o", str(out),
                 "--knob", "0.1", "-j", "2"])
    _, err = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.lic", "b.lic"]
    assert "broken.png" in err and "encoded 2 of 3 files (1 failed)" in err
    pngs = tmp_path / "png"
    code = main(["decode", str(out / "a.lic"), str(out / "b.lic"), "-o", str(pngs), "-q"])
    assert code == 0 and sorted(p.name for p in pngs.iterdir()) == ["a.png", "b.png"]
    assert capsys.readouterr().err == ""


def test_batch_refuses_to_overwrite_without_force(tmp_path, crop_path, capsys) -> None:
    out = tmp_path / "o"
    assert main(["encode", str(crop_path), "-o", str(out), "-q"]) == 0
    assert main(["encode", str(crop_path), "-o", str(out), "-q"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["encode", str(crop_path), "-o", str(out), "-q", "--force"]) == 0


def test_single_mode_needs_two_paths(capsys) -> None:
    assert main(["encode", "only-one.png"]) == 2
    assert "IN and OUT" in capsys.readouterr().err
