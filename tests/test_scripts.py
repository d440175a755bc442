"""Every script the docs cite runs: each in its own process on the smallest input that takes
it through its work (a tiny image, a two-step training run), or with ``--help`` where its
smallest real run takes minutes; ``gpu_session.sh`` needs a GPU machine and gets a syntax
check. A script whose import moved or whose call into lcodec broke fails here, not when
someone reruns a table of docs/results.md."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
DATA = Path(__file__).parent / "data"


def run_script(name: str, *args: object) -> str:
    """Run ``scripts/NAME ARGS…`` in a fresh interpreter; its stdout, or a failure with its
    stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc.stdout


def held_out_names(fraction: float, suffix: str, n: int = 1) -> list[str]:
    """File names that the trainers' name hash puts in the held-out split."""
    from lcodec.train.data import is_validation

    names = (f"val{i}{suffix}" for i in range(10_000))
    return [m for m in names if is_validation(Path(m), fraction)][:n]


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    """One 77×45 photo crop: the folder the Kodak scripts get."""
    folder = tmp_path_factory.mktemp("small")
    shutil.copy(DATA / "kodim05_odd.png", folder)
    return folder


@pytest.fixture(scope="module")
def detail_folder(tmp_path_factory) -> Path:
    """A 192×192 detail of the demo photo: wide enough for MS-SSIM (over 160 pixels), busy
    enough for JPEG to fit in a file of 0.25 bpp."""
    folder = tmp_path_factory.mktemp("detail")
    with Image.open(DATA / "colosseum.jpg") as im:
        im.crop((1280, 896, 1280 + 192, 896 + 192)).save(folder / "detail.png")
    return folder


@pytest.fixture(scope="module")
def v1_run(tmp_path_factory, image_folder) -> Path:
    """A two-step v1 training run (config.json, last.ckpt, snapshot.safetensors)."""
    from lcodec.train.v1.config import TrainConfig
    from lcodec.train.v1.run import run

    out = tmp_path_factory.mktemp("runs") / "abl-lcmq"
    run(TrainConfig(data=str(image_folder), steps=2, batch=2, crop=32, val_fraction=0.3,
                    val_every=100, ckpt_every=2, threads=1), out)
    return out


@pytest.fixture(scope="module")
def v2_run(tmp_path_factory, image_folder) -> Path:
    """A two-step run of a tiny network v2 (last.ckpt with its net config)."""
    from test_cwic2 import TINY

    from lcodec.config import CONFIGS
    from lcodec.train.v2.config import RDConfig
    from lcodec.train.v2.loop import train
    from lcodec.train.v2.run import Run

    out = tmp_path_factory.mktemp("runs") / "abl-base"
    out.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(CONFIGS, "v2-tiny", TINY)
        cfg = RDConfig(data=str(image_folder), net="v2-tiny", batch=2, crop=32,
                       val_fraction=0.3, val_crop=32, ckpt_every=2, threads=1)
        train(Run(out, cfg), budget_min=60, decay_min=0, max_steps=2)
    return out


def test_every_script_is_run_by_a_test_here() -> None:
    source = Path(__file__).read_text()
    untested = [p.name for p in sorted(SCRIPTS.iterdir())
                if p.suffix in (".py", ".sh") and f'"{p.name}"' not in source]
    assert not untested, f"scripts without a test in {Path(__file__).name}: {untested}"


def test_gpu_session_sh_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPTS / "gpu_session.sh")], check=True)


def test_exact8_precision_sweep_loads_and_prints_help() -> None:
    # its smallest run decodes every image at three knobs for each of 40 layer settings
    assert "usage:" in run_script("exact8_precision_sweep.py", "--help")


def test_bpp_targets_prints_its_table(small_folder) -> None:
    out = run_script("bpp_targets.py", small_folder, "--targets", "1.0", "--model", "v2-mse")
    assert "| 1.0 | v2-mse | 1 |" in out


def test_effort_table_measures_each_effort_and_resumes(small_folder, tmp_path) -> None:
    rows = tmp_path / "rows.jsonl"
    args = (small_folder, "--efforts", "1,2", "--targets", "1.0,2.0", "--rows", rows)
    out = run_script("effort_table.py", *args)
    assert "| 1 |" in out and "| 2 |" in out and "+0.00 %" in out
    kept = rows.read_text().splitlines()
    assert len(kept) == 2 * 2 * len(list(small_folder.iterdir()))
    again = run_script("effort_table.py", *args)  # every file is in rows.jsonl: none re-encoded
    assert rows.read_text().splitlines() == kept and '"seconds"' not in again


def test_correction_ab_prints_a_row_per_image_and_target(small_folder) -> None:
    out = run_script("correction_ab.py", small_folder / "kodim05_odd.png", "--targets", "1.0")
    assert "| kodim05_odd, 1.0 |" in out


def test_tcae_vs_static_finds_the_tcae_files_lossless(small_folder) -> None:
    out = run_script("tcae_vs_static.py", small_folder, "--knobs", "0")
    assert "all lossless: True" in out


def test_decoder_finetune_eval_measures_the_start_model(small_folder) -> None:
    out = run_script("decoder_finetune_eval.py", small_folder, "--knobs", "0", "--slice", "0:1",
                     "--no-v1")
    assert out.splitlines()[-1].startswith("+0.0 ")


def test_exact_vs_float_encodes_then_decodes(small_folder, tmp_path) -> None:
    image = small_folder / "kodim05_odd.png"
    run_script("exact_vs_float.py", "encode", tmp_path, image)
    out = run_script("exact_vs_float.py", "decode", tmp_path, "v2", 1, image)
    assert "kodim05_odd v2 threads=1" in out


def test_grid_crops_writes_its_picture(detail_folder, tmp_path) -> None:
    run_script("grid_crops.py", detail_folder / "detail.png", tmp_path / "grid.png")
    assert (tmp_path / "grid.png").exists()


def test_jpeg_hand_check_prints_the_eval_rows_beside_its_own(tmp_path) -> None:
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    for name in ("kodim01.png", "kodim08.png", "kodim15.png", "kodim23.png"):
        shutil.copy(DATA / "kodim05_odd.png", kodak / name)
    with (tmp_path / "per_image.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["codec", "image", "setting", "bytes", "psnr"])
        w.writerow(["jpeg", "kodim23.png", "50", "1234", "30.5"])
    out = run_script("jpeg_hand_check.py", tmp_path / "per_image.csv", "--kodak", kodak)
    assert "| 1234 |" in out and "| 30.500 |" in out


def test_plot_learning_curve_draws_a_val_csv(tmp_path) -> None:
    rows = [(step, step / 1000, knob, 0.1 * 2 ** (i + step / 100), 25 + i + step / 50, 0.5)
            for step in (100, 200, 300) for i, knob in enumerate((-1, -0.6, -0.2, 0.2, 0.6, 1))]
    (tmp_path / "val.csv").write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    out = run_script("plot_learning_curve.py", tmp_path, tmp_path / "curve.png")
    assert "| CPU-hours |" in out and (tmp_path / "curve.png").exists()


def test_quantizer_ablation_measures_a_v1_run(v1_run, detail_folder) -> None:
    out = run_script("quantizer_ablation.py", detail_folder, v1_run, "--knobs=0",
                     "--table-images", 2)
    assert "| lcmq |" in out


def test_v2_ablation_measures_a_v2_run(v2_run, detail_folder) -> None:
    out = run_script("v2_ablation.py", detail_folder, v2_run, "--knobs=0", "--table-images", 2)
    assert "abl-base: 2 steps" in out


def test_flat_colours_measures_a_v2_run(v2_run) -> None:
    out = run_script("flat_colours.py", v2_run)
    assert out.startswith("abl-base (10, 200, 30):")


def test_holdout_curve_measures_a_checkpoint(v2_run, tmp_path) -> None:
    rng = np.random.default_rng(0)
    for folder, fraction in (("small", 0.02), ("hires", 0.1)):
        (tmp_path / folder).mkdir()
        for name in held_out_names(fraction, ".png"):
            pixels = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / folder / name)
    out = run_script("holdout_curve.py", v2_run / "last.ckpt", "--small", tmp_path / "small",
                     "--hires", tmp_path / "hires", "--crop", 64, "--threads", 1)
    assert "\thires\t" in out and "\tsmall\t" in out


def test_remap_rate_anchors_writes_a_checkpoint_with_the_new_range(v2_run, tmp_path) -> None:
    import torch

    run_script("remap_rate_anchors.py", v2_run / "last.ckpt", tmp_path / "new.ckpt",
               "--lam-range", 0.0001, 0.1)
    st = torch.load(tmp_path / "new.ckpt", weights_only=False)
    assert st["net_config"]["lam_range"] == [0.0001, 0.1]


def test_demo_compare_fits_every_codec_within_the_lic_file_and_draws_the_detail(
        tmp_path) -> None:
    """``make demo``'s last step, on a 256×192 detail of the demo photo."""
    from lcodec import api

    with Image.open(DATA / "colosseum.jpg") as im:
        im.crop((1280, 896, 1536, 1088)).save(tmp_path / "detail.png")
    data = api.encode(tmp_path / "detail.png", knob=0.3, correction=False)
    (tmp_path / "detail.lic").write_bytes(data)
    api.decode(data).save(tmp_path / "back.png")
    out = run_script("demo_compare.py", tmp_path / "detail.png", tmp_path / "detail.lic",
                     tmp_path / "back.png", "--picture", tmp_path / "compare.png")
    rows = dict(re.findall(r"^(lcodec|JPEG XL|JPEG|WebP|AVIF) .*? (\d+) +[\d.]+ +[\d.]+ +[\d.]+$",
                           out, re.MULTILINE))
    assert rows["lcodec"] == str(len(data)) and "JPEG" in rows
    assert all(int(n) <= len(data) for n in rows.values())
    assert all(label in out for label in ("WebP", "AVIF", "JPEG XL"))  # a row or why not
    tiles = 3 + ("AVIF" in rows)  # original, lcodec, JPEG, AVIF: each 256 wide at 2×, 6 apart
    with Image.open(tmp_path / "compare.png") as picture:
        assert picture.width == tiles * 2 * 256 + (tiles - 1) * 6
