"""Data-parallel v2 training: two gloo ranks under ``torchrun`` train exactly as one process
with their joint batch, log and checkpoint once, and resume from (and into) single-process
checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_train import TINY

from lcodec.config import CONFIGS

HELPER = Path(__file__).with_name("tiny_train.py")


def _config(folder: Path, out: Path) -> Path:
    """Batch 4 (2 crops a rank), flat crops weighted ×4, a log row and checkpoint often; fp32
    (on a CPU with native bf16, autocast would round a rank's half batch differently from
    the whole batch, by more than the float-rounding tolerance checked here)."""
    cfg = {"data": str(folder), "net": "v2-tiny", "batch": 4, "crop": 32,
           "val_fraction": 0.3, "val_crop": 32, "ckpt_every": 2, "log_every": 1,
           "threads": 1, "flat_fraction": 0.5, "flat_weight": 4.0, "amp": False}
    path = out / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def _torchrun(run: Path, cfg: Path, steps: int) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", str(HELPER), str(run), "--config", str(cfg), "--budget-minutes", "60",
         "--max-steps", str(steps)],
        capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def _single(run: Path, cfg: Path, steps: int) -> None:
    from lcodec.train.v2.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(CONFIGS, "v2-tiny", TINY)
        main([str(run), "--config", str(cfg), "--budget-minutes", "60",
              "--max-steps", str(steps)])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, image_folder) -> dict[str, Path | str]:
    """``two``: 2 ranks for 2 steps, then resumed by 2 ranks to 4; ``one``: one process, 4
    steps; ``mixed``: the 2-rank checkpoint at step 2 resumed by one process to 4."""
    base = tmp_path_factory.mktemp("ddp")
    cfg = _config(image_folder, base)
    two, one, mixed = base / "two", base / "one", base / "mixed"
    _torchrun(two, cfg, 2)
    mixed.mkdir()
    for name in ("last.ckpt", "config.json", "log.csv"):
        shutil.copy(two / name, mixed / name)
    resumed = _torchrun(two, cfg, 4)
    _single(one, cfg, 4)
    _single(mixed, cfg, 4)
    return {"two": two, "one": one, "mixed": mixed, "stdout": resumed}


def _rows(run: Path) -> list[list[float]]:
    """Step, loss, bpp, distortion and coded fraction of each log row."""
    rows = [line.split(",") for line in (run / "log.csv").read_text().splitlines()]
    return [[float(r[0]), *map(float, r[4:])] for r in rows]


def _assert_same_state(a: Path, b: Path) -> None:
    ca, cb = (torch.load(p / "last.ckpt", weights_only=False) for p in (a, b))
    assert ca["step"] == cb["step"] == 4
    assert ca["sampler"] == cb["sampler"]
    assert torch.equal(ca["rng"]["torch"], cb["rng"]["torch"])
    for key, value in ca["model"].items():
        torch.testing.assert_close(value, cb["model"][key], rtol=1e-5, atol=1e-6, msg=key)
    for i, st in ca["opt"]["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(st[key], cb["opt"]["state"][i][key], rtol=1e-4,
                                       atol=1e-9)


def test_two_ranks_train_as_one_process_with_their_joint_batch(runs) -> None:
    two, one = _rows(runs["two"]), _rows(runs["one"])
    assert [r[0] for r in two] == [r[0] for r in one] == [1, 2, 3, 4]
    for a, b in zip(two, one, strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-5)
    _assert_same_state(runs["two"], runs["one"])


def test_a_two_rank_run_resumes_from_its_checkpoint_and_only_rank_0_writes(runs) -> None:
    assert "resumed last.ckpt at step 2" in runs["stdout"]
    assert runs["stdout"].count("done: step 4") == 1
    val = (runs["two"] / "val.csv").read_text().splitlines()
    assert len(val) == 4 * 6  # start and end of each call, six knobs, rank 0 only


def test_one_process_resumes_a_two_rank_checkpoint(runs) -> None:
    assert [r[0] for r in _rows(runs["mixed"])] == [1, 2, 3, 4]
    _assert_same_state(runs["mixed"], runs["one"])


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(monkeypatch) -> None:
    from lcodec.train.v2.distributed import setup

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="does not split"):
        setup(3)


def test_the_forward_draws_a_rank_sees_are_its_slice_of_the_global_batch() -> None:
    from lcodec.train.v2.distributed import GlobalDraws

    torch.manual_seed(5)
    full = torch.empty(4, 3, 2).uniform_(-0.5, 0.5)
    for rank in (0, 1):
        torch.manual_seed(5)
        with GlobalDraws(rank, 2):
            part = torch.empty(2, 3, 2).uniform_(-0.5, 0.5)
            with pytest.raises(NotImplementedError):
                torch.rand(2)
        assert torch.equal(part, full[2 * rank : 2 * rank + 2])
