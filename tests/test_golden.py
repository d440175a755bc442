"""Golden bitstreams: every file ever written by a released format version still decodes to
the same symbols and pixels, in a fresh process on CPU (and on CUDA when available)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
MANIFEST = json.loads((GOLDEN / "MANIFEST.json").read_text())
CHECK = """
import json, sys
sys.path.insert(0, {golden!r})
from make_golden import digests
print(json.dumps(digests(open({path!r}, "rb").read())))
"""


def test_there_are_golden_files_for_the_current_format() -> None:
    from lcodec import container

    tag = f"v{container.FORMAT_MAJOR}.{container.FORMAT_MINOR}-"
    assert any(e["file"].startswith(tag) for e in MANIFEST)


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_golden_file_decodes_to_its_recorded_symbols_and_pixels(entry) -> None:
    path = GOLDEN / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["file_sha256"], (
        "a golden file was modified; golden files must never be rewritten")
    out = subprocess.run([sys.executable, "-c", CHECK.format(golden=str(GOLDEN),
                                                             path=str(path))],
                         capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["symbols_sha256"] == entry["symbols_sha256"]
    assert got["pixels_sha256"] == entry["pixels_sha256"]
