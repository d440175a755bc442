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
print(json.dumps(digests(open({path!r}, "rb").read(), {device!r})))
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
    got = _decode_in_fresh_process(path, "cpu")
    assert got["symbols_sha256"] == entry["symbols_sha256"]
    assert got["pixels_sha256"] == entry["pixels_sha256"]


def _decode_in_fresh_process(path: Path, device: str) -> dict:
    code = CHECK.format(golden=str(GOLDEN), path=str(path), device=device)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="no CUDA device")
@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_golden_file_decodes_to_the_same_symbols_on_cuda(entry) -> None:
    """Symbols are exact on every device; pixels come from float networks and are only
    promised bit-exact on the CPU build the golden hashes were recorded with."""
    got = _decode_in_fresh_process(GOLDEN / entry["file"], "cuda")
    assert got["symbols_sha256"] == entry["symbols_sha256"]


@pytest.mark.skipif(not _cuda(), reason="no CUDA device")
@pytest.mark.parametrize("entropy", ["tcae", "static"])
def test_a_cuda_encoded_file_decodes_on_the_cpu_to_the_coded_symbols(crop_rgb, entropy) -> None:
    """Networks on the GPU give the symbols; their coding must not depend on the device."""
    import numpy as np

    from lcodec import api, codec, container, models

    data = api.encode(crop_rgb, device="cuda", entropy=entropy, model="lite-mse")
    lic = container.unpack(data)
    info = models.find(model_id=lic.header.model_id)
    coded = codec.analyse(models.load(info, "cuda"), api.as_source(crop_rgb), entropy)
    want = coded.symbols(lic.header.rate_knob)
    for device in ("cpu", "cuda"):
        got = codec.decode_codes(models.load(info, device), lic)
        for a, b in zip(want, (got.qi[0, 0], got.luma[0], got.chroma[0]), strict=True):
            assert np.array_equal(a, b.cpu().numpy()), device
