"""The library is thread-safe: many threads encoding and decoding at once with the models
cached for the whole process give the bytes and pixels of a single-threaded run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lcodec import api

THREADS = 4


@pytest.fixture(scope="module")
def images(crop_path: Path, odd_path: Path) -> list[np.ndarray]:
    """Two sizes, so that concurrent calls on one cached model see different layouts."""
    return [np.asarray(Image.open(p).convert("RGB")) for p in (crop_path, odd_path)]


@pytest.fixture(scope="module")
def files(images: list[np.ndarray]) -> list[bytes]:
    """Each image encoded once, single-threaded, at two knobs (with the TCAE context model)."""
    return [api.encode(im, knob=k) for im in images for k in (-0.5, 0.5)]


def _run(jobs: list, fn) -> list:
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(fn, jobs))


def test_concurrent_decodes_match_single_threaded_pixels(files: list[bytes]) -> None:
    expected = [api.decode_array(f) for f in files]
    jobs = [i % len(files) for i in range(THREADS * 6)]  # 4 threads × 6 decodes
    got = _run(jobs, lambda i: api.decode_array(files[i]))
    for i, pixels in zip(jobs, got, strict=True):
        assert np.array_equal(pixels, expected[i]), f"decode {i} differs under threads"


def test_concurrent_encodes_match_single_threaded_bytes(images: list[np.ndarray],
                                                        files: list[bytes]) -> None:
    jobs = [(i % len(images), (-0.5, 0.5)[(i // len(images)) % 2]) for i in range(THREADS * 2)]
    got = _run(jobs, lambda job: api.encode(images[job[0]], knob=job[1]))
    for (im, knob), data in zip(jobs, got, strict=True):
        assert data == files[2 * im + (knob > 0)], f"encode of image {im} at knob {knob} differs"
