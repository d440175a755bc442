"""Shared fixtures: small test images shipped in tests/data (crops of Kodak images)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"


def pytest_configure(config) -> None:
    """Under pytest-xdist (``make test`` runs a worker per core), each worker's networks use
    one thread, so the workers do not fight over the cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def crop_path() -> Path:
    """A 128×96 crop of kodim23 (aligned to the model's stride)."""
    return DATA / "kodim23_crop.png"


@pytest.fixture(scope="session")
def odd_path() -> Path:
    """A 77×45 crop of kodim05 (not a multiple of 8: exercises padding and cropping)."""
    return DATA / "kodim05_odd.png"


@pytest.fixture(scope="session")
def crop_rgb(crop_path: Path) -> np.ndarray:
    return np.asarray(Image.open(crop_path).convert("RGB"))


def pytest_terminal_summary(terminalreporter) -> None:
    """Say which branch of the golden pixel check each golden file took."""
    lines = [value for report in terminalreporter.stats.get("passed", [])
             for name, value in report.user_properties if name == "golden_pixels"]
    if lines:
        terminalreporter.section("golden pixels: which check each file passed")
        for line in sorted(lines):
            terminalreporter.line(line)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """Six small smooth random images: a training folder for the trainer tests."""
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(6):
        arr = np.clip(np.cumsum(rng.integers(-9, 10, (48, 64, 3)), axis=1) + 128, 0, 255)
        Image.fromarray(arr.astype(np.uint8)).save(folder / f"img{i}.png")
    return folder
