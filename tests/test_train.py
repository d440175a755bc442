"""The training loop runs on CPU and resumes exactly; export makes a loadable model."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from lcodec.train.v1.config import TrainConfig
from lcodec.train.v1.run import run


def config(folder, steps: int) -> TrainConfig:
    return TrainConfig(data=str(folder), steps=steps, batch=2, crop=32, val_fraction=0.3,
                       val_every=100, ckpt_every=2, threads=1, pretrain_fraction=0.25)


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path,
                                                                    image_folder) -> None:
    straight = torch.load(run(config(image_folder, 4), tmp_path / "a"), weights_only=False)
    run(config(image_folder, 4), tmp_path / "b", stop_at=2)
    resumed = torch.load(run(config(image_folder, 4), tmp_path / "b"), weights_only=False)
    assert straight["step"] == resumed["step"] == 4
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    log = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,split,loss")


def test_export_writes_a_model_the_codec_loads(tmp_path, image_folder, monkeypatch) -> None:
    from lcodec import api, models
    from lcodec.train.export import export

    run(config(image_folder, 2), tmp_path / "run")
    out = export(tmp_path / "run", "tiny", 4, tmp_path / "models")
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["model_id"] == out.stem.rsplit("-", 1)[1]
    monkeypatch.setenv("LCODEC_MODELS", str(tmp_path / "models"))
    rgb = np.asarray(Image.open(next(image_folder.iterdir())).convert("RGB"))
    data = api.encode(rgb, model="tiny")
    assert api.decode_array(data).shape == rgb.shape
    assert models.find("tiny").model_id.hex() == card["model_id"]
