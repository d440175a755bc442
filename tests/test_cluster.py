"""Collections on Ray (lcodec.cluster, ``--cluster``): a real local Ray runtime of 2 CPUs,
started once for the module. Knob fixed and ``--no-correction``, to keep it quick."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lcodec import api
from lcodec.cli import main
from lcodec.cluster import CRASH_ONCE_ENV, NEEDS_RAY, require_ray
from lcodec.errors import LcodecError
from lcodec.settings import EncodeSettings

DATA = Path(__file__).parent / "data"
OPTIONS = ["--knob", "0.3", "--no-correction"]
SETTINGS = EncodeSettings(knob=0.3, correction=False)

try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed: pip install "
                                                   "'lcodec[cluster]' runs these")


def _images(root: Path) -> list[Path]:
    """Eight small images in nested folders: odd sizes, grey, RGBA, LA, palette, JPEG, BMP."""
    a = Image.open(DATA / "kodim23_crop.png").convert("RGB")
    b = Image.open(DATA / "kodim05_odd.png").convert("RGB")
    alpha = Image.linear_gradient("L").resize((45, 31))
    made = {
        "top.png": a.crop((0, 0, 64, 48)),
        "a/odd.png": b.crop((3, 5, 40, 34)),
        "a/grey.png": a.crop((10, 10, 50, 43)).convert("L"),
        "a/b/rgba.png": b.crop((0, 0, 45, 31)).convert("RGBA"),
        "a/b/la.png": a.crop((20, 0, 53, 21)).convert("LA"),
        "a/b/c/photo.jpg": b.crop((7, 0, 40, 47)),
        "b/palette.png": a.crop((0, 20, 39, 57)).convert("P"),
        "b/wide.bmp": b.crop((0, 9, 71, 26)),
    }
    made["a/b/rgba.png"].putalpha(alpha)
    paths = []
    for rel, im in made.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        im.save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """A local Ray runtime of 2 CPUs whose workers see the crash hook's variable."""
    import os

    marker = tmp_path_factory.mktemp("hook") / "crash-once"
    os.environ[CRASH_ONCE_ENV] = str(marker)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    yield marker
    ray.shutdown()
    del os.environ[CRASH_ONCE_ENV]


@pytest.fixture(scope="module")
def encoded(runtime, tmp_path_factory):
    """One cluster encode of the eight images plus a bad file, with a worker killed after
    its first file."""
    root = tmp_path_factory.mktemp("cluster")
    src = root / "photos"
    images = _images(src)
    bad = root / "bad"
    bad.mkdir()
    (bad / "notes.png").write_text("not an image")
    runtime.write_text("armed")  # the first worker to code a 2nd file exits
    out = root / "out"
    t0 = time.perf_counter()
    rc = main(["encode", str(src), str(bad), "-o", str(out), *OPTIONS, "-j", "2",
               "--cluster"])
    return {"rc": rc, "src": src, "out": out, "images": images, "root": root,
            "seconds": time.perf_counter() - t0, "crashed": not runtime.exists()}


def _manifest(path: Path) -> dict[str, dict]:
    return {Path(r["source"]).name: r for r in map(json.loads, path.read_text().splitlines())}


@needs_ray
def test_a_tree_encodes_to_a_mirrored_tree_of_the_same_bytes_as_a_single_encode(encoded):
    src, out = encoded["src"], encoded["out"]
    for image in encoded["images"]:
        lic = out / image.relative_to(src).with_suffix(".lic")
        assert lic.read_bytes() == api.encode(image, SETTINGS), image
    rows = _manifest(out / "lcodec-manifest.jsonl")
    assert {r["status"] for n, r in rows.items() if n != "notes.png"} == {"ok"}
    first = rows["top.png"]
    assert first["output"] == str(out / "top.lic")
    assert first["bytes"] == (out / "top.lic").stat().st_size and first["knob"] == 0.3
    assert first["bpp"] > 0 and first["seconds"] > 0


@needs_ray
def test_a_single_lcodec_encode_writes_the_same_bytes(encoded, tmp_path):
    image = encoded["src"] / "a/b/rgba.png"
    assert main(["encode", str(image), str(tmp_path / "one.lic"), *OPTIONS]) == 0
    assert (tmp_path / "one.lic").read_bytes() == \
        (encoded["out"] / "a/b/rgba.lic").read_bytes()


@needs_ray
def test_a_worker_killed_mid_job_loses_no_file(encoded):
    from lcodec import container

    assert encoded["crashed"], "the crash hook did not fire"
    for image in encoded["images"]:  # (and each has api.encode's bytes: the test above)
        lic = encoded["out"] / image.relative_to(encoded["src"]).with_suffix(".lic")
        container.unpack(lic.read_bytes())  # whole and valid (CRCs checked)
    assert not [p for p in encoded["out"].rglob("*") if p.name.startswith(".")]


@needs_ray
def test_a_bad_input_is_reported_and_the_job_goes_on(encoded):
    assert encoded["rc"] == 1
    rows = _manifest(encoded["out"] / "lcodec-manifest.jsonl")
    assert len(rows) == 9
    assert rows["notes.png"]["status"] == "error"
    assert "not an image" in rows["notes.png"]["error"]
    assert rows["notes.png"]["output"] == str(encoded["out"] / "notes.lic")


@needs_ray
def test_a_rerun_skips_every_valid_output_quickly(encoded, capsys):
    t0 = time.perf_counter()
    rc = main(["encode", str(encoded["src"]), "-o", str(encoded["out"]), *OPTIONS,
               "--manifest", str(encoded["root"] / "rerun.jsonl"), "--cluster"])
    seconds = time.perf_counter() - t0
    assert rc == 0
    rows = _manifest(encoded["root"] / "rerun.jsonl")
    assert len(rows) == 8 and {r["status"] for r in rows.values()} == {"skipped"}
    assert rows["odd.png"]["bytes"] == (encoded["out"] / "a/odd.lic").stat().st_size
    assert seconds < 5
    assert "skipped 8" in capsys.readouterr().err


@needs_ray
def test_a_tree_of_lic_files_decodes_to_the_pixels_of_api_decode(encoded):
    out, back = encoded["out"], encoded["root"] / "back"
    truncated = encoded["root"] / "broken" / "cut.lic"
    truncated.parent.mkdir()
    truncated.write_bytes((out / "top.lic").read_bytes()[:-7])
    rc = main(["decode", str(out), str(truncated.parent), "-o", str(back), "--cluster"])
    assert rc == 1
    rows = _manifest(back / "lcodec-manifest.jsonl")
    assert rows["cut.lic"]["status"] == "error" and rows["cut.lic"]["error"]
    lics = sorted(out.rglob("*.lic"))
    assert len(lics) == 8
    for lic in lics:
        png = back / lic.relative_to(out).with_suffix(".png")
        want = api.decode(lic.read_bytes())
        with Image.open(png) as got:
            assert got.mode == want.mode and got.size == want.size
            assert np.array_equal(np.asarray(got), np.asarray(want)), lic
        assert rows[lic.name]["status"] == "ok"


@needs_ray
def test_encode_dataset_adds_the_lic_bytes_of_api_encode(runtime):
    from lcodec.cluster import decode_dataset, encode_dataset

    a = Image.open(DATA / "kodim05_odd.png").convert("RGB").crop((0, 0, 33, 27))
    buf = io.BytesIO()
    a.save(buf, format="PNG")
    ds = ray.data.from_items([{"bytes": buf.getvalue(), "path": "a.png"},
                              {"bytes": b"junk", "path": "junk.png"}])
    rows = {r["path"]: r for r in encode_dataset(ds, SETTINGS).take_all()}
    assert rows["a.png"]["lic"] == api.encode(a, SETTINGS) and rows["a.png"]["error"] is None
    assert rows["junk.png"]["lic"] is None and "not an image" in rows["junk.png"]["error"]
    back = decode_dataset(ray.data.from_items([{"bytes": rows["a.png"]["lic"]}])).take_all()
    with Image.open(io.BytesIO(back[0]["image"])) as im:
        assert np.array_equal(np.asarray(im), np.asarray(api.decode(rows["a.png"]["lic"])))


def test_without_ray_cluster_runs_say_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(LcodecError, match="pip install 'lcodec\\[cluster\\]'"):
        require_ray()
    (tmp_path / "in").mkdir()
    assert main(["encode", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                 "--cluster"]) == 1
    assert capsys.readouterr().err.strip() == f"Error: {NEEDS_RAY}"


def test_help_and_plain_commands_never_import_ray():
    code = ("import sys; from lcodec.cli import main; main(['--help']); "
            "main(['encode', '--help']); assert 'ray' not in sys.modules, 'ray imported'")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
