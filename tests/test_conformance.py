"""``lcodec hash`` and ``lcodec check``: the hashes the golden files record, a manifest a CI
can diff, and a check that names every file that no longer decodes to its hashes.

That ``lcodec hash`` gives every golden file its recorded hashes is test_golden.py's
per-file test (it runs ``lcodec hash FILE`` in a fresh process); here a few small ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lcodec.cli import main
from lcodec.conformance import MANIFEST_HEADER, Digests, manifest_line

GOLDEN = Path(__file__).parent / "golden"
RECORDED = json.loads((GOLDEN / "MANIFEST.json").read_text())
# Small exact-synthesis golden files, one per colour mode: pixels identical on every machine.
FEW = ["v1.3-v2-mse-fffc224b-static-rgb-odd.lic", "v1.3-v2-mse-fffc224b-static-gray-odd.lic",
       "v1.3-v2-mse-fffc224b-tcae-rgba-odd.lic"]


def _recorded(file: str) -> Digests:
    entry = next(e for e in RECORDED if e["file"] == file)
    return Digests(entry["pixels_sha256"], entry["symbols_sha256"])


def _manifest_of_recorded(folder: Path, files: list[str]) -> Path:
    """MANIFEST.json's recorded hashes of ``files``, as a manifest in ``folder`` beside copies
    of them (the values unchanged: only the layout differs)."""
    for file in files:
        shutil.copy(GOLDEN / file, folder / file)
    lines = [MANIFEST_HEADER, *(manifest_line(_recorded(f), f) for f in files)]
    path = folder / "hashes.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_hash_prints_the_recorded_hashes_of_golden_files_as_a_manifest(capsys) -> None:
    """A header, then one line per file: the hashes tests/golden/MANIFEST.json records."""
    files = [str(GOLDEN / f) for f in FEW]
    assert main(["hash", *files]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == MANIFEST_HEADER and err == ""
    assert lines[1:] == [manifest_line(_recorded(Path(f).name), f) for f in files]


def test_hash_names_a_file_that_does_not_decode_and_writes_no_manifest(tmp_path,
                                                                       capsys) -> None:
    bad = tmp_path / "cut.lic"
    bad.write_bytes((GOLDEN / FEW[0]).read_bytes()[:100])
    out = tmp_path / "m.tsv"
    assert main(["hash", str(GOLDEN / FEW[0]), str(bad), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"Error: {bad}:" in err and "Traceback" not in err
    assert not out.exists()


def test_check_passes_on_a_manifest_of_the_recorded_golden_hashes(tmp_path, capsys) -> None:
    manifest = _manifest_of_recorded(tmp_path, FEW)
    assert main(["check", str(manifest)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and f"checked 3 files of {manifest}: all match" in err


def test_check_fails_naming_the_file_when_one_byte_of_a_recorded_hash_changes(
        tmp_path, capsys) -> None:
    manifest = _manifest_of_recorded(tmp_path, FEW)
    lines = manifest.read_text().splitlines()
    pixels, symbols, file = lines[2].split("\t")
    flipped = ("0" if pixels[10] != "0" else "1").join((pixels[:10], pixels[11:]))
    lines[2] = "\t".join((flipped, symbols, file))
    manifest.write_text("\n".join(lines) + "\n")
    assert main(["check", str(manifest)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{tmp_path / file}: FAILED: its pixels hash is {pixels}, "
                                f"not {flipped}"]
    assert "1 failed" in err


def test_check_names_missing_and_corrupt_files_and_checks_the_others(tmp_path, capsys) -> None:
    manifest = _manifest_of_recorded(tmp_path, FEW)
    (tmp_path / FEW[0]).unlink()
    data = (tmp_path / FEW[1]).read_bytes()
    (tmp_path / FEW[1]).write_bytes(data[: len(data) // 2])
    assert main(["check", str(manifest)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].startswith(f"{tmp_path / FEW[0]}: FAILED: not found")
    assert out[1].startswith(f"{tmp_path / FEW[1]}: FAILED: does not decode (truncated")


def test_a_manifest_written_with_o_names_files_relative_to_its_folder(tmp_path,
                                                                      capsys) -> None:
    sub = tmp_path / "lics"
    sub.mkdir()
    shutil.copy(GOLDEN / FEW[0], sub / "a.lic")
    manifest = sub / "hashes.tsv"
    assert main(["hash", str(sub / "a.lic"), "-o", str(manifest)]) == 0
    line = manifest_line(_recorded(FEW[0]), "a.lic")
    assert manifest.read_text() == f"{MANIFEST_HEADER}\n{line}\n"
    assert main(["hash", str(sub / "a.lic"), "-o", str(manifest)]) == 1  # never overwritten
    assert "--force" in capsys.readouterr().err
    assert main(["check", str(manifest), "-q"]) == 0


@pytest.mark.parametrize("text", ["", "hash  file\n", f"{MANIFEST_HEADER}\nabc\tdef\tx.lic\n"],
                         ids=["empty", "no-header", "bad-hash"])
def test_a_malformed_manifest_is_one_error_line_naming_it(text, tmp_path, capsys) -> None:
    manifest = tmp_path / "m.tsv"
    manifest.write_text(text)
    assert main(["check", str(manifest)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"Error: {manifest}")
