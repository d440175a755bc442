"""Installed like any codec: a wheel of the checkout carries the shipped models, and from a
folder outside the checkout the installed ``lcodec`` lists them, encodes and decodes, and
finds every model and entropy model a golden file names (old files decode forever).

Offline: the wheel is built with this environment's setuptools (``--no-build-isolation``,
``--no-index``) from a copy of the files a build reads, installed with ``pip --target`` and
run with this interpreter, ``PYTHONPATH`` putting the installed copy before the editable one
(checked: ``lcodec.__file__`` lies in the install folder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).parents[1]
GOLDEN = Path(__file__).parent / "golden"
BUILD_INPUTS = ("pyproject.toml", "README.md", "src", "models")  # what setuptools reads
JUNK = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "--no-index",
                           "--disable-pip-version-check", "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel ``pip wheel`` builds from the checkout (from a copy, so that no ``build/``
    or ``*.egg-info`` is left in the checkout or taken from it)."""
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "lcodec"
    for name in BUILD_INPUTS:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tree / name, ignore=JUNK)
        else:
            tree.mkdir(exist_ok=True)
            shutil.copy(src, tree / name)
    _pip("wheel", "--no-build-isolation", "-w", str(tmp / "dist"), str(tree))
    (path,) = (tmp / "dist").glob("lcodec-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed into a folder of its own (``pip install --target``)."""
    target = tmp_path_factory.mktemp("site")
    _pip("install", "--target", str(target), str(wheel))
    return target


def _run(installed: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    """``argv`` with the installed copy first on the path, from ``cwd``, LCODEC_MODELS unset."""
    env = {k: v for k, v in os.environ.items() if k not in ("LCODEC_MODELS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(installed)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_wheel_carries_every_package_and_model_but_no_candidate(wheel) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    src = ROOT / "src"
    packages = {p.parent.relative_to(src).as_posix() for p in src.rglob("__init__.py")}
    missing = sorted(p.replace("/", ".") for p in packages if f"{p}/__init__.py" not in names)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    shipped = [p for pattern in ("*.safetensors", "*.json", "entropy/*.safetensors",
                                 "entropy/*.json") for p in (ROOT / "models").glob(pattern)]
    assert len(shipped) >= 8
    for path in shipped:
        assert f"lcodec_models/{path.relative_to(ROOT / 'models').as_posix()}" in names, path
    assert not [n for n in names if "candidates" in n]


def test_the_installed_codec_lists_encodes_and_decodes_outside_the_checkout(
        installed, tmp_path) -> None:
    where = _run(installed, tmp_path, sys.executable, "-c",
                 "import lcodec, lcodec.models as m; print(lcodec.__file__); print(m.models_dir())")
    assert where.returncode == 0, where.stderr
    for line in where.stdout.splitlines():
        assert Path(line).resolve().is_relative_to(installed.resolve()), where.stdout

    lcodec = str(installed / "bin" / "lcodec")
    listed = _run(installed, tmp_path, lcodec, "models")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "(default)" in rows["v2-mse"] and "v2-msssim" in rows and "lite-mse" not in rows

    crop = Path(__file__).parent / "data" / "kodim23_crop.png"
    # a fixed knob and no correction layer: the cheapest encode (rate control is test_codec's)
    enc = _run(installed, tmp_path, lcodec, "encode", str(crop), "x.lic", "--knob", "0",
               "--no-correction")
    assert enc.returncode == 0, enc.stderr
    dec = _run(installed, tmp_path, lcodec, "decode", "x.lic", "x.png")
    assert dec.returncode == 0, dec.stderr
    assert Image.open(tmp_path / "x.png").size == Image.open(crop).size == (128, 96)


def test_the_installed_copy_has_every_model_a_golden_file_names(installed, tmp_path) -> None:
    """Old files decode forever: retired models and their entropy models are installed."""
    files = [str(GOLDEN / e["file"]) for e in json.loads((GOLDEN / "MANIFEST.json").read_text())]
    code = (
        "import sys\n"
        "from lcodec import container, models\n"
        "for f in sys.argv[1:]:\n"
        "    h, _ = container.read_header(open(f, 'rb').read(), container.DEFAULT_MAX_PIXELS)\n"
        "    models.find(model_id=h.model_id)\n"
        "    if any(h.entropy_id):\n"
        "        assert models.find_entropy(h.entropy_id) is not None, f\n"
        "print(len(sys.argv) - 1)\n"
    )
    found = _run(installed, tmp_path, sys.executable, "-c", code, *files)
    assert found.returncode == 0 and found.stdout.split() == [str(len(files))], found.stderr
