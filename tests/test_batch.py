"""Batch mode: many inputs, an output folder, per-file errors, one summary line."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def test_batch_verbose_prints_psnr_for_every_file(tmp_path, crop_path, odd_path,
                                                  capsys) -> None:
    code = main(["encode", str(crop_path), str(odd_path), "-o", str(tmp_path), "-v",
                 "--knob", "0"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if " -> " in ln]
    assert code == 0 and len(lines) == 2 and all("PSNR" in ln for ln in lines), err


def test_batch_prints_each_files_notices(tmp_path, crop_path, capsys) -> None:
    from PIL import Image

    rgba = tmp_path / "in" / "rgba.png"
    rgba.parent.mkdir()
    Image.open(crop_path).convert("RGBA").save(rgba)
    code = main(["encode", str(rgba), str(crop_path), "-o", str(tmp_path / "o"), "--knob", "0",
                 "--alpha", "drop"])
    assert code == 0 and "Notice: rgba.png" in capsys.readouterr().err.replace(str(rgba),
                                                                                 "rgba.png")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_stops_the_batch_workers_and_leaves_no_partial_file(
        sig, tmp_path, crop_path) -> None:
    from PIL import Image

    inputs = tmp_path / "in"
    inputs.mkdir()
    big = Image.open(crop_path).convert("RGB").resize((768, 512))
    for i in range(16):
        big.save(inputs / f"im{i:02}.png", compress_level=0)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lcodec.cli", "encode",
                             *sorted(str(p) for p in inputs.iterdir()), "-o", str(out),
                             "-j", "2", "--knob", "0", "-q"], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180  # a loaded machine starts torch slowly
    while not list(out.glob("*.lic")) and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) >= 2 and proc.poll() is None, "the batch ended before the signal"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert "Traceback" not in err, err
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)], "workers outlived the batch"
    done = sorted(p.name for p in out.iterdir())
    time.sleep(1.0)
    assert sorted(p.name for p in out.iterdir()) == done, "outputs appeared after the exit"
    assert all(name.endswith(".lic") and not name.startswith(".") for name in done), done
    assert 0 < len(done) < 16


GOLDEN = Path(__file__).parent / "golden"
SMALL_LICS = ["v1.3-v2-mse-fffc224b-static-rgb-odd.lic", "v1.3-v2-mse-fffc224b-static-gray-odd.lic"]


def _lic_folder(folder: Path) -> list[Path]:
    """Two small golden files copied into ``folder`` (77×45: quick to decode)."""
    folder.mkdir()
    for name in SMALL_LICS:
        shutil.copy(GOLDEN / name, folder / name)
    return sorted(folder.iterdir())


def test_batch_decode_of_a_folder_with_one_truncated_file_names_it_and_decodes_the_others(
        tmp_path, capsys) -> None:
    lics = _lic_folder(tmp_path / "lic")
    broken = tmp_path / "lic" / "broken.lic"
    broken.write_bytes(lics[0].read_bytes()[:120])
    out = tmp_path / "png"
    code = main(["decode", *sorted(str(p) for p in broken.parent.iterdir()), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    errors = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert errors == [ln for ln in errors if ln.startswith(f"Error: {broken}: truncated")]
    assert len(errors) == 1, err
    assert sorted(p.name for p in out.iterdir()) == sorted(p.stem + ".png" for p in lics)
    assert "decoded 2 of 3 files (1 failed)" in err


def test_non_terminal_batch_output_is_one_line_per_file_and_a_summary(tmp_path,
                                                                       capsys) -> None:
    lics = _lic_folder(tmp_path / "lic")
    assert main(["decode", *(str(p) for p in lics), "-o", str(tmp_path / "png")]) == 0
    lines = capsys.readouterr().err.split("\n")
    assert lines[-1] == ""  # the text ends with a newline, and has no blank line inside
    lines = lines[:-1]
    assert len(lines) == len(lics) + 1 and all(ln.strip() for ln in lines), lines
    for lic, line in zip(lics, lines, strict=False):
        assert line.startswith(f"{lic} -> {tmp_path / 'png' / lic.stem}.png: 77×45 ")
    assert lines[-1].startswith("decoded 2 of 2 files (0 failed)")


def test_a_rerun_with_skip_existing_encodes_nothing_new(tmp_path, crop_path, odd_path, capsys,
                                                        monkeypatch) -> None:
    from lcodec import api

    out = tmp_path / "o"
    args = ["encode", str(crop_path), str(odd_path), "-o", str(out), "--knob", "0",
            "--no-correction"]
    assert main([*args, "-q"]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    monkeypatch.setattr(api, "encode_with_stats", lambda *a, **k: pytest.fail("encoded"))
    capsys.readouterr()
    assert main([*args, "--skip-existing"]) == 0
    err = capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert "encoded 0 of 2 files (2 skipped, 0 failed)" in err
    assert err.count("skipped, the output exists") == 2
    (out / "kodim05_odd.lic").write_bytes(b"half a file")  # not a .lic: not skipped
    assert main([*args, "--skip-existing", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{out / 'kodim05_odd.lic'} exists but is not a valid .lic file" in err


def test_a_decode_rerun_with_skip_existing_decodes_nothing(tmp_path, capsys,
                                                           monkeypatch) -> None:
    from lcodec import api

    lics = _lic_folder(tmp_path / "lic")
    out = tmp_path / "png"
    assert main(["decode", *(str(p) for p in lics), "-o", str(out), "-q"]) == 0
    monkeypatch.setattr(api, "decode_full", lambda *a, **k: pytest.fail("decoded"))
    assert main(["decode", *(str(p) for p in lics), "-o", str(out), "--skip-existing"]) == 0
    assert "decoded 0 of 2 files (2 skipped, 0 failed)" in capsys.readouterr().err
    single = out / f"{lics[0].stem}.png"
    assert main(["decode", str(lics[0]), str(single), "--skip-existing"]) == 0
    assert "skipped" in capsys.readouterr().err


def test_threads_sets_the_torch_threads_of_each_file_and_restores_them(tmp_path,
                                                                       monkeypatch) -> None:
    import torch

    from lcodec.cli.jobs import DecodeJob

    seen = []
    real = DecodeJob.__call__

    def call(self, src, dst):
        seen.append(torch.get_num_threads())
        return real(self, src, dst)

    monkeypatch.setattr(DecodeJob, "__call__", call)
    lics = _lic_folder(tmp_path / "lic")
    before = torch.get_num_threads()
    assert main(["decode", *(str(p) for p in lics), "-o", str(tmp_path / "o"), "--threads",
                 "1", "-q"]) == 0
    assert main(["decode", str(lics[0]), str(tmp_path / "one.png"), "--threads", "1"]) == 0
    assert seen == [1, 1, 1] and torch.get_num_threads() == before


def test_more_threads_than_cores_get_a_notice(tmp_path, capsys) -> None:
    lics = _lic_folder(tmp_path / "lic")
    threads = str((os.cpu_count() or 1) + 1)
    assert main(["decode", *(str(p) for p in lics), "-o", str(tmp_path / "o"), "--threads",
                 threads]) == 0
    assert f"--threads {threads} runs" in capsys.readouterr().err
