"""Claims about the inclined TCAE entropy models (src/lcodec/entropy/tcae*.py)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from lcodec.codemask import code_mask_np
from lcodec.entropy import tcae_config, tcae_int, tcae_layout
from lcodec.entropy.coder import PRECISION, SymbolDecoder
from lcodec.entropy.tcae import TcaeModels
from lcodec.entropy.tcae_config import TcaeConfig
from lcodec.entropy.tcae_int import IntLayer, IntTcae, frequencies
from lcodec.entropy.tcae_net import (
    TcaeNet,
    TrimmedConv,
    float_log2_probs,
    int_log2_probs,
    side_classes_torch,
)
from lcodec.errors import LcodecError, LicError
from lcodec.quant import code_mask
from lcodec.train.tcae.cli import main as tcae_main
from lcodec.train.tcae.codes import load_codes, synthetic_codes
from lcodec.train.tcae.evaluate import evaluate_static
from lcodec.train.tcae.freeze import freeze_models
from lcodec.train.tcae.inputs import configs_for, knob_buckets_torch

L = 16
CFG_Q = TcaeConfig(channels=1, classes=L, offset=0, groups=4, k_before=0, k_after=0)
CFG_Y = TcaeConfig(channels=4, classes=8, offset=1, groups=3, k_before=1, k_after=2,
                   side_classes=4, embed=3)
CFG_C = TcaeConfig(channels=2, classes=8, offset=1, groups=2, k_before=1, k_after=1,
                   side_classes=3)
CFGS = {"importance": CFG_Q, "luma": CFG_Y, "chroma": CFG_C}


def _codes(count: int, size, seed: int) -> dict:
    return synthetic_codes(count, size, seed, n_luma=CFG_Y.channels,
                           n_chroma=CFG_C.channels, levels=L)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: one torch thread is faster (and the results must not care)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _sharp_nets(cfgs: dict[str, TcaeConfig], seed: int) -> dict[str, TcaeNet]:
    """Random float models, sharper than a fresh init so probabilities are far from uniform;
    knob biases and side weights (where present) large enough to matter."""
    torch.manual_seed(seed)
    out = {}
    for name, cfg in cfgs.items():
        net = TcaeNet(cfg).eval()
        with torch.no_grad():
            net.final.weight.mul_(4.0)
            net.final.bias.normal_(0.0, 1.0)
            if net.knob_bias is not None:
                net.knob_bias.normal_(0.0, 1.5)
            if cfg.luma_classes:
                net.side.weight.mul_(6.0)
        out[name] = net
    return out


@pytest.fixture(scope="module")
def nets() -> dict[str, TcaeNet]:
    return _sharp_nets(CFGS, 0)


@pytest.fixture(scope="module")
def models(nets) -> TcaeModels:
    codes = _codes(24, 12, seed=1)
    return freeze_models(nets, codes, np.arange(24))


def _plane(n: int, h: int, w: int) -> np.ndarray:
    k, i, j = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
    return k + i + j


class _Recorder:
    """A SymbolDecoder that remembers the frequency rows it was given."""

    def __init__(self, payload: bytes) -> None:
        self.dec = SymbolDecoder(payload)
        self.rows: list[np.ndarray] = []

    def decode(self, freqs: np.ndarray) -> np.ndarray:
        self.rows.append(freqs.copy())
        return self.dec.decode(freqs)

    def finish(self) -> None:
        self.dec.finish()


def test_the_numpy_code_mask_matches_the_torch_one() -> None:
    qi = np.random.default_rng(0).integers(0, L, (7, 9))
    for n in (1, 4, 8, 32):
        ref = code_mask(torch.from_numpy(qi)[None, None], n, L)[0].numpy()
        assert np.array_equal(code_mask_np(qi, n, L), ref)


@pytest.mark.parametrize("cfg", [CFG_Y, CFG_Q], ids=["cuboid", "qi"])
@pytest.mark.parametrize("first", [True, False], ids=["first", "hidden"])
def test_trimmed_conv_outputs_at_plane_t_ignore_later_planes(cfg, first) -> None:
    torch.manual_seed(1)
    n, h, w = cfg.channels, 5, 6
    conv = TrimmedConv(cfg, 3, 2, first)
    x = torch.randn(1, 3, n, h, w)
    plane = torch.from_numpy(_plane(n, h, w))
    y = conv(x)
    changed_somewhere = False
    for t in range(int(plane.max()) + 1):
        later = plane >= t if first else plane > t
        x2 = torch.where(later, torch.randn_like(x), x)
        assert torch.allclose(conv(x2)[..., plane == t], y[..., plane == t], atol=1e-5)
        # the plane just before (first layer) or the plane itself (hidden) is seen
        seen = plane == (t - 1 if first else t)
        x3 = torch.where(seen, torch.randn_like(x), x)
        changed_somewhere |= not torch.allclose(conv(x3)[..., plane == t], y[..., plane == t])
    assert changed_somewhere


@pytest.mark.parametrize("first", [True, False], ids=["first", "hidden"])
def test_trimmed_conv_is_a_masked_2d_conv_over_n_g_maps(first) -> None:
    """Eq. 24 form: a 2-D conv over n·g maps (map k·g + group) with the eq. 26/27 mask."""
    torch.manual_seed(2)
    cfg = CFG_Y
    n, cin, cout = cfg.channels, 3, 2
    conv = TrimmedConv(cfg, cin, cout, first)
    x = torch.randn(1, cin, n, 6, 7)
    dense = conv.dense_2d_weight()
    y2 = F.conv2d(x.permute(0, 2, 1, 3, 4).reshape(1, n * cin, 6, 7), dense, padding=2)
    y2 = y2.view(1, n, cout, 6, 7).permute(0, 2, 1, 3, 4) + conv.bias[None, :, :, None, None]
    assert torch.allclose(y2, conv(x), atol=1e-5)
    d = dense.view(n, cout, n, cin, 5, 5).abs().sum((1, 3))  # (k, k', di, dj)
    for k in range(n):
        for kp in range(n):
            for di in range(-2, 3):
                for dj in range(-2, 3):
                    s = (kp - k) + di + dj
                    if (s >= 0) if first else (s > 0):
                        assert d[k, kp, di + 2, dj + 2] == 0


def test_network_probabilities_at_plane_t_ignore_symbols_at_later_planes(models, nets) -> None:
    c = _codes(1, (5, 6), seed=3)
    qi = c["qi"][0].astype(np.int64)
    luma = c["luma"][0].astype(np.int64)
    m = code_mask_np(qi, CFG_Y.channels, L)
    plane = _plane(*m.shape)
    _, rows = models.luma.frequency_rows(luma, m)
    order_planes = np.sort(plane[m], kind="stable")
    ref_float = float_log2_probs(nets["luma"], luma, m)
    rng = np.random.default_rng(4)
    for t in (0, 3, 7):
        other = np.where(plane >= t, rng.integers(0, 8, luma.shape), luma) * m
        _, rows2 = models.luma.frequency_rows(other, m)
        keep = order_planes < t + 1
        assert np.array_equal(rows2[keep], rows[keep])
        # the float model: probabilities of the original symbols at planes <= t are unchanged
        cls = torch.from_numpy(np.where(m, other + 1, 0))[None]
        at = torch.from_numpy(m)[None]
        with torch.no_grad():
            logp = F.log_softmax(nets["luma"](cls, at, side_classes_torch(at, 4)), 1)[0]
        k, i, j = np.nonzero(m)
        o = np.argsort(k + i + j, kind="stable")
        k, i, j = k[o], i[o], j[o]
        got = logp[luma[k, i, j], k, i, j].numpy() / np.log(2)
        assert np.allclose(got[keep], ref_float[keep], atol=1e-5)


def test_qi_model_probabilities_ignore_later_antidiagonals(models) -> None:
    qi = _codes(1, (6, 7), seed=5)["qi"][0].astype(np.int64)[None]
    act = np.ones_like(qi, dtype=bool)
    plane = _plane(*qi.shape)
    _, rows = models.importance.frequency_rows(qi, act)
    planes = np.sort(plane.ravel(), kind="stable")
    for t in (1, 4, 9):
        other = np.where(plane >= t, (qi + 5) % L, qi)
        _, rows2 = models.importance.frequency_rows(other, act)
        assert np.array_equal(rows2[planes <= t], rows[planes <= t])


@pytest.mark.parametrize("name", ["importance", "luma", "chroma"])
def test_encoder_rows_equal_plane_by_plane_decoder_rows(models, name) -> None:
    c = _codes(1, (7, 9), seed=6)
    qi = c["qi"][0].astype(np.int64)
    model = models.models[name]
    if name == "importance":
        syms, act = qi[None], np.ones((1, *qi.shape), bool)
    else:
        act = code_mask_np(qi, model.cfg.channels, L)
        syms = c[name][0].astype(np.int64)
    _, rows = model.frequency_rows(syms, act)
    rec = _Recorder(model.encode(syms, act))
    decoded = model.decode(rec, act)
    assert np.array_equal(np.concatenate(rec.rows), rows)
    assert np.array_equal(decoded, syms * act)
    assert len(rec.rows) <= sum(act.shape) - 2  # one batched call per non-empty plane


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (5, 9), (11, 6)])
def test_round_trip_is_lossless(models, shape) -> None:
    c = _codes(1, shape, seed=7)
    qi, luma, chroma = (c[k][0].astype(np.int64) for k in ("qi", "luma", "chroma"))
    out = models.decode(models.encode(qi, luma, chroma), *shape)
    for a, b in zip(out, (qi, luma, chroma), strict=True):
        assert a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.parametrize("level", [0, L - 1])
def test_round_trip_with_empty_and_full_masks(models, level) -> None:
    h, w = 4, 5
    qi = np.full((h, w), level)
    rng = np.random.default_rng(8)
    m_y, m_c = models.masks(qi)
    luma = rng.integers(0, 8, (CFG_Y.channels, h, w)) * m_y
    chroma = rng.integers(0, 8, (CFG_C.channels, h, w)) * m_c
    pay = models.encode(qi, luma, chroma)
    out = models.decode(pay, h, w)
    assert np.array_equal(out[0], qi)
    assert np.array_equal(out[1], luma) and np.array_equal(out[2], chroma)
    if level == 0:
        assert not m_y.any() and models.code_length_bits(qi, luma, chroma)["luma"] == 0.0


def test_every_frequency_row_sums_to_2_16_with_entries_at_least_1(models) -> None:
    c = _codes(1, (8, 8), seed=9)
    qi = c["qi"][0].astype(np.int64)
    m = code_mask_np(qi, CFG_Y.channels, L)
    for model, syms, act in ((models.luma, c["luma"][0].astype(np.int64), m),
                             (models.importance, qi[None], np.ones((1, 8, 8), bool))):
        _, rows = model.frequency_rows(syms, act)
        assert np.all(rows.sum(1) == 1 << PRECISION) and rows.min() >= 1
    table = tcae_int.exp_table()
    extreme = np.array([[0] * 8, [10**9] + [-(10**9)] * 7, [5, 5, 5, -3, 0, 0, 9, 9],
                        list(range(0, 8000, 1000))], dtype=np.int64)
    f = frequencies(extreme, table)
    assert np.all(f.sum(1) == 1 << PRECISION) and f.min() >= 1
    assert np.all(f[0] == f[0, 0]) or f[0].max() - f[0].min() <= 8


def test_results_do_not_depend_on_threads_or_batch_layout(models, monkeypatch) -> None:
    a = _codes(1, (9, 7), seed=10)
    b = _codes(1, (6, 11), seed=11)

    def enc(c: dict) -> dict[str, bytes]:
        return models.encode(*(c[k][0].astype(np.int64) for k in ("qi", "luma", "chroma")))

    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ref = enc(a)
        torch.set_num_threads(2)
        assert enc(a) == ref
    finally:
        torch.set_num_threads(old)
    enc(b)  # coding another image in between changes nothing
    assert enc(a) == ref
    monkeypatch.setattr(tcae_int, "_CHUNK", 5)  # encoder blocks of a few planes instead of one
    assert enc(a) == ref
    monkeypatch.setattr(tcae_int, "_CHUNK", 1)  # one plane per block: ring buffers wrap around
    assert enc(a) == ref
    assert all(np.array_equal(x, a[k][0]) for x, k in zip(
        models.decode(ref, 9, 7), ("qi", "luma", "chroma"), strict=True))
    rng = np.random.default_rng(12)
    x = rng.integers(0, 256, (301, 40)).astype(np.float32)
    w = rng.integers(-127, 128, (40, 6)).astype(np.float32)
    exact = x.astype(np.int64) @ w.astype(np.int64)
    assert np.array_equal(tcae_int._gemm(x, w).astype(np.int64), exact)
    assert np.array_equal(tcae_int._gemm(x[:7], w).astype(np.int64), exact[:7])


def test_float64_requantisation_is_the_integer_formula() -> None:
    rng = np.random.default_rng(20)
    a = np.concatenate([rng.integers(-(1 << 31) + 1, 1 << 31, 20000),
                        np.arange(-300, 300), [0, 1, -1, (1 << 31) - 1, -(1 << 31) + 1]])
    for mult, shift in ((1 << 15, 1), (1, 62), (23456, 17), (16385, 30), (32767, 5)):
        m, sh = np.array([mult]), np.array([shift])
        ref = tcae_int._requant(a.astype(np.int64)[:, None], m, sh)
        got = tcae_int._requant_float(a.astype(np.float64)[:, None], np.ldexp(float(mult), -shift))
        assert np.array_equal(got.astype(np.int64), ref)
    # exact halves round up (towards +inf), as the shift formula does
    half = tcae_int._requant_float(np.array([[-3.0], [-1.0], [1.0], [3.0]]), np.array([0.5]))
    assert half.ravel().tolist() == [-1.0, 0.0, 1.0, 2.0]


def test_gray_images_code_no_chroma(models) -> None:
    c = _codes(1, (5, 6), seed=21)
    qi, luma = c["qi"][0].astype(np.int64), c["luma"][0].astype(np.int64)
    pay = models.encode(qi, luma, None)
    assert set(pay) == {"importance", "luma"}
    out = models.decode(pay, 5, 6)
    assert np.array_equal(out[1], luma) and not out[2].any()
    assert models.code_length_bits(qi, luma, None)["chroma"] == 0.0


def test_coded_size_matches_code_length(models) -> None:
    c = _codes(1, (40, 48), seed=13)
    qi, luma, chroma = (c[k][0].astype(np.int64) for k in ("qi", "luma", "chroma"))
    pay = models.encode(qi, luma, chroma)
    bits = models.code_length_bits(qi, luma, chroma)
    m_y, _ = models.masks(qi)
    assert qi.size + m_y.sum() > 2000
    for name in ("importance", "luma", "chroma"):
        assert abs(8 * len(pay[name]) - bits[name]) <= 0.01 * bits[name] + 64, name


def test_integer_model_is_close_to_float_model(models, nets) -> None:
    c = _codes(2, (12, 12), seed=14)
    for i in range(2):
        qi = c["qi"][i].astype(np.int64)
        for name, syms, act in (
                ("importance", qi[None], np.ones((1, 12, 12), bool)),
                ("luma", c["luma"][i].astype(np.int64), code_mask_np(qi, CFG_Y.channels, L))):
            fl = float_log2_probs(nets[name], syms, act)
            il = int_log2_probs(models.models[name], syms, act)
            assert np.abs(fl - il).mean() < 0.06, name
            assert abs(fl.sum() - il.sum()) < 0.01 * abs(fl.sum()) + 1, name


def test_freeze_copes_with_dead_feature_groups() -> None:
    torch.manual_seed(22)
    nets = {n: TcaeNet(c).eval() for n, c in CFGS.items()}
    with torch.no_grad():  # groups that never fire get tiny calibrated ranges
        for net in nets.values():
            net.first.weight[0] = -1.0
            net.first.bias[0] = -5.0
            if net.side is not None:
                net.side.weight[0] = 0.0
            net.blocks[0][0].weight[1] = -1.0
            net.blocks[0][0].bias[1] = -5.0
    frozen = freeze_models(nets, _codes(8, 10, seed=23), np.arange(8))
    c = _codes(1, (6, 7), seed=24)
    args = [c[k][0].astype(np.int64) for k in ("qi", "luma", "chroma")]
    out = frozen.decode(frozen.encode(*args), 6, 7)
    assert all(np.array_equal(a, b) for a, b in zip(out, args, strict=True))


def test_garbage_payloads_raise_only_lic_error(models) -> None:
    c = _codes(1, (6, 7), seed=15)
    qi, luma, chroma = (c[k][0].astype(np.int64) for k in ("qi", "luma", "chroma"))
    good = models.encode(qi, luma, chroma)
    rng = np.random.default_rng(16)
    candidates = [b"", b"\x00" * 3, b"\xff" * 4, rng.bytes(8), rng.bytes(64), rng.bytes(1001),
                  good["luma"][: len(good["luma"]) // 2], good["importance"][4:]]
    for garbage in candidates:
        for key in ("importance", "luma", "chroma"):
            pay = dict(good, **{key: garbage})
            try:
                out = models.decode(pay, 6, 7)
            except LicError:
                continue
            assert out[0].shape == (6, 7) and out[0].max() < L


def test_save_load_keeps_the_bitstream_and_the_id(models, tmp_path) -> None:
    path = tmp_path / "tcae.safetensors"
    eid = models.save(path)
    assert eid == hashlib.sha256(path.read_bytes()).digest()[:8]
    loaded = TcaeModels.load(path)
    assert loaded.entropy_id == eid
    for name, m in models.models.items():  # every table and layer exactly as frozen
        again = loaded.models[name]
        assert np.array_equal(again.first, m.first) and np.array_equal(
            again.first_layer.bias, m.first_layer.bias), name
        for a, b in zip(again.layers, m.layers, strict=True):
            assert np.array_equal(a.w, b.w) and np.array_equal(a.bias, b.bias), name
    c = _codes(1, (5, 6), seed=17)
    args = [c[k][0].astype(np.int64) for k in ("qi", "luma", "chroma")]
    assert loaded.encode(*args) == models.encode(*args)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a weights file")
    with pytest.raises(LcodecError):
        TcaeModels.load(bad)
    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    for key, change in (("luma.l0.w", lambda a: a[:-1]), ("chroma.exp", lambda a: a[:5]),
                        ("importance.l3.shift", lambda a: a * 0)):
        broken = dict(tensors, **{key: change(tensors[key])})
        save_file(broken, str(bad), metadata=meta)
        with pytest.raises(LcodecError):
            TcaeModels.load(bad)


def test_models_outside_the_exact_integer_range_are_refused(models) -> None:
    m = models.luma
    big = IntLayer(m.layers[0].w * 0 + 200, m.layers[0].bias, m.layers[0].mult,
                   m.layers[0].shift)
    with pytest.raises(LcodecError):
        IntTcae(m.cfg, m.first, m.side, m.first_layer, [big, *m.layers[1:]], m.exp)
    wide = TcaeConfig(channels=2, classes=8, offset=1, groups=64, k_before=2, k_after=2)
    k = len(tcae_layout.trimmed_taps(wide, False)) * 64
    w = np.full((k, 64), 127, np.float32)  # Σ|w|·255 > 2**24: float32 would not be exact
    layer = IntLayer(w, np.zeros((2, 64), np.int64), np.full(64, 1 << 14), np.full(64, 20))
    with pytest.raises(LcodecError, match="2\\*\\*24"):
        layer.check("wide", np.abs(w).sum(0) * tcae_int.ACT_MAX)


def test_training_cli_trains_resumes_and_freezes(tmp_path, monkeypatch) -> None:
    codes = tmp_path / "codes.npz"
    np.savez(codes, **_codes(8, 8, seed=18))
    run = tmp_path / "run"
    over = ('{"importance": {"groups": 2}, "luma": {"groups": 2, "k_before": 1, "k_after": 1},'
            ' "chroma": {"groups": 2, "k_before": 1, "k_after": 1}}')
    args = ["--codes", str(codes), "--out", str(run), "--batch", "2", "--val-every", "2",
            "--log-every", "1", "--ckpt-every", "1", "--calib", "2", "--configs", over,
            "--threads", "1"]
    threads = torch.get_num_threads()
    try:
        assert tcae_main([*args, "--steps", "2"]) == 0
        assert (run / "tcae.safetensors").exists()
        assert tcae_main([*args, "--steps", "3"]) == 0  # resumes from step 2
    finally:
        torch.set_num_threads(threads)
    rows = (run / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:] if ",train," in r] == ["1", "2", "3"]
    models = TcaeModels.load(run / "tcae.safetensors")
    c = _codes(1, (4, 4), seed=19)
    args3 = [c[k][0].astype(np.int64) for k in ("qi", "luma", "chroma")]
    out = models.decode(models.encode(*args3), 4, 4)
    assert all(np.array_equal(a, b) for a, b in zip(out, args3, strict=True))

    import hashlib
    import json
    import shutil

    from lcodec import models as registry

    shipped = tmp_path / "models"
    shipped.mkdir()
    src = registry.find("lite-mse-fcf1326f70791116").path  # retired: named by its file stem
    shutil.copy(src, shipped / src.name)
    monkeypatch.setenv("LCODEC_MODELS", str(shipped))
    assert tcae_main(["freeze", "--run", str(run), "--codes", str(codes), "--model",
                     "lite-mse", "--calib", "2"]) == 0
    (frozen,) = (shipped / "entropy").glob("lite-mse-tcae-*.safetensors")
    eid = hashlib.sha256(frozen.read_bytes()).digest()[:8].hex()
    assert frozen.stem.endswith(eid)
    assert registry.find_entropy(prefix="lite-mse-tcae") == frozen
    card = json.loads(frozen.with_suffix(".json").read_text())
    assert card["entropy_id"] == eid and card["training"]["steps"] == 3


def test_make_codes_refuses_kodak(tmp_path) -> None:
    folder = tmp_path / "kodak"
    folder.mkdir()
    with pytest.raises(SystemExit):
        tcae_main(["make-codes", "--model", "lite-mse", "--images", str(folder),
                  "--out", str(tmp_path / "c.npz")])


def test_codes_of_a_v2_model_record_its_levels_and_stride(tmp_path) -> None:
    """make-codes on network v2 (stride 16, T = 16): the TCAE gets 16 classes and bits per
    pixel count 256 pixels per code position; two codes files join into one set."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(5)
    from PIL import Image

    for i in range(2):
        img = (rng.random((288, 320, 3)) * 64 + np.linspace(0, 180, 320)[None, :, None])
        Image.fromarray(img.astype(np.uint8)).save(folder / f"p{i}.png")
    out = tmp_path / "codes.npz"
    assert tcae_main(["make-codes", "--model", "v2-mse", "--images", str(folder),
                     "--out", str(out), "--knobs", "-1,1", "--crop", "16",
                     "--crops-per-image", "1", "--threads", "1"]) == 0
    codes = load_codes(out)
    assert int(codes["stride"]) == 16 and int(codes["code_levels"]) == 16
    assert codes["luma"].shape == (4, 96, 16, 16) and codes["luma"].max() <= 15
    cfgs = configs_for(codes)
    assert cfgs["luma"].classes == cfgs["chroma"].classes == 16
    assert cfgs["luma"].channels == 96 and cfgs["chroma"].channels == 32
    joined = load_codes(f"{out},{out}")
    assert len(joined["qi"]) == 8 and list(joined["image"]) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert list(joined["names"]) == ["p0.png", "p1.png"] * 2


def test_static_baseline_is_the_static_coders_size(tmp_path) -> None:
    """evaluate_static's bits are those the STATIC_CONTEXT_V1 coder really writes."""
    from lcodec import models as registry
    from lcodec.container import EntropyMethod
    from lcodec.entropy import methods

    loaded = registry.load(registry.find("v2-mse"))
    codes = synthetic_codes(3, 12, seed=31, n_luma=96, n_chroma=32, levels=L,
                            classes=16)
    codes["stride"] = np.array(16)
    got = evaluate_static(loaded.tables, codes, np.arange(3))
    coder = methods.coder_for(EntropyMethod.STATIC_CONTEXT_V1, loaded)
    sizes = {"importance": 0, "luma": 0, "chroma": 0}
    counts = dict.fromkeys(sizes, 0)
    for i in range(3):
        qi, luma, chroma = (codes[k][i] for k in ("qi", "luma", "chroma"))
        sec = coder.encode(qi, luma, chroma)
        for t, n in zip(sorted(sec), ("importance", "luma", "chroma"), strict=True):
            sizes[n] += 8 * len(sec[t])
        m_y = code_mask_np(qi, 96, L)
        counts["importance"] += qi.size
        counts["luma"] += int(m_y.sum())
        counts["chroma"] += int(code_mask_np(qi, 32, L).sum())
    for n in sizes:
        est = got[f"bits_{n}"] * counts[n]
        assert abs(sizes[n] - est) <= 0.02 * est + 3 * 64, n  # range coder: ≤ a word a stream


def test_knob_buckets_are_the_nearest_of_evenly_spaced_knobs() -> None:
    assert [tcae_config.knob_bucket(9, k) for k in (-1000, -999, 0, 124, 125, 1000, 5000)] == [
        0, 0, 4, 4, 5, 8, 8]
    assert tcae_config.knob_bucket(0, 700) == 0
    got = knob_buckets_torch(torch.tensor([-1.0, 0.0, 0.125, 1.0]), 9)
    assert got.tolist() == [0, 4, 5, 8]


@pytest.fixture(scope="module")
def knob_models() -> tuple[dict[str, TcaeNet], TcaeModels]:
    """The small models with 3 knob buckets whose first-layer biases differ a lot."""
    nets = _sharp_nets({n: TcaeConfig(**{**c.to_dict(), "knob_buckets": 3})
                        for n, c in CFGS.items()}, 40)
    codes = _codes(24, 12, seed=41)
    codes["knob"] = np.tile(np.array([-1.0, 0.0, 1.0], np.float32), 8)
    return nets, freeze_models(nets, codes, np.arange(24))


def test_knob_buckets_change_probabilities_and_round_trip_at_each_knob(knob_models, tmp_path
                                                                        ) -> None:
    """A model with knob buckets codes differently at each bucket, decodes its own bytes at
    the file's knob exactly, follows its float model per bucket, and survives save/load."""
    nets, models = knob_models
    c = _codes(1, (10, 11), seed=42)
    qi, luma, chroma = (c[k][0].astype(np.int64) for k in ("qi", "luma", "chroma"))
    pays = {k: models.encode(qi, luma, chroma, k) for k in (-1000, 0, 1000)}
    assert pays[-1000]["luma"] != pays[1000]["luma"]
    assert models.encode(qi, luma, chroma, -900) == pays[-1000]  # same bucket
    for k, pay in pays.items():
        out = models.decode(pay, 10, 11, k)
        assert all(np.array_equal(a, b) for a, b in zip(out, (qi, luma, chroma), strict=True))
    act = code_mask_np(qi, CFG_Y.channels, L)
    for bucket in range(3):
        fl = float_log2_probs(nets["luma"], luma, act, bucket)
        il = int_log2_probs(models.luma, luma, act, bucket)
        assert np.abs(fl - il).mean() < 0.06, bucket
    path = tmp_path / "knob.safetensors"
    models.save(path)
    again = TcaeModels.load(path)
    assert again.encode(qi, luma, chroma, 1000) == pays[1000]
    assert again.luma.cfg.knob_buckets == 3


def test_a_run_with_knob_buckets_starts_from_another_run_unchanged(tmp_path) -> None:
    """--init copies a run's models, adds zero knob biases and splits chroma's side classes
    by luma activity (each with its side class's weights): with a zero learning rate the new
    run validates exactly as the old one did."""
    codes = tmp_path / "codes.npz"
    c = _codes(8, 8, seed=50)
    c["knob"] = np.linspace(-1, 1, 8).astype(np.float32)
    c["qi"] = np.maximum(c["qi"], 8)  # every crop codes luma and chroma
    np.savez(codes, **c)
    over = ('{"importance": {"groups": 2}, "luma": {"groups": 2, "k_before": 1, "k_after": 1},'
            ' "chroma": {"groups": 2, "k_before": 1, "k_after": 1}}')
    base = ["--codes", str(codes), "--batch", "2", "--val-every", "2", "--log-every", "1",
            "--calib", "2", "--threads", "1", "--steps", "2"]
    threads = torch.get_num_threads()
    try:
        assert tcae_main([*base, "--out", str(tmp_path / "a"), "--configs", over]) == 0
        knobs = over.replace('"groups": 2}', '"groups": 2, "knob_buckets": 3}').replace(
            '"k_after": 1}', '"k_after": 1, "knob_buckets": 3}').replace(
            '"chroma": {"groups": 2,', '"chroma": {"groups": 2, "luma_classes": 5,')
        assert tcae_main([*base, "--out", str(tmp_path / "b"), "--configs", knobs,
                         "--init", str(tmp_path / "a"), "--lr", "0"]) == 0
    finally:
        torch.set_num_threads(threads)

    def last_val(run: str) -> str:
        rows = (tmp_path / run / "log.csv").read_text().splitlines()
        return [r for r in rows if ",val," in r][-1].split(",")[2:6]

    assert last_val("a") == last_val("b")
    frozen = TcaeModels.load(tmp_path / "b" / "tcae.safetensors")
    assert {m.cfg.knob_buckets for m in frozen.models.values()} == {3}
    assert frozen.chroma.cfg.luma_classes == 5 and frozen.chroma.cfg.side_count == 8 * 5


def test_luma_activity_counts_thresholds_of_coded_luma() -> None:
    luma = np.full((3, 1, 4), 8)  # T = 16: level 8 is the zero symbol
    luma[0, 0] = [8, 9, 0, 15]  # |level − 8| = 0, 1, 8, 7
    luma[1, 0] = [8, 8, 16 - 8, 12]
    active = np.ones((3, 1, 4), bool)
    active[1, 0, 3] = False  # not coded: does not count
    # activity per position: 0, 1, 8, 7 -> classes among thresholds 1, 2, 3, 4, 6, 8, ...
    assert tcae_config.luma_activity(luma, active, 16, 16).tolist() == [[0, 1, 6, 5]]
    assert tcae_config.luma_activity(luma, active, 16, 3).tolist() == [[0, 1, 2, 2]]
    from lcodec.entropy.tcae_net import luma_activity_torch  # what training computes

    got = luma_activity_torch(torch.from_numpy(luma)[None], torch.from_numpy(active)[None], 16, 16)
    assert got.tolist() == [[[0, 1, 6, 5]]]


def test_chroma_conditioned_on_luma_activity(tmp_path) -> None:
    """A chroma model with luma classes: its probabilities follow the co-located luma codes,
    its files decode exactly, and the integer model follows the float one."""
    nets = _sharp_nets(dict(CFGS, chroma=TcaeConfig(**{**CFG_C.to_dict(), "luma_classes": 4})),
                       60)
    models = freeze_models(nets, _codes(24, 12, seed=61), np.arange(24))
    c = _codes(1, (10, 11), seed=62)
    qi, luma, chroma = (c[k][0].astype(np.int64) for k in ("qi", "luma", "chroma"))
    pay = models.encode(qi, luma, chroma)
    out = models.decode(pay, 10, 11)
    assert all(np.array_equal(a, b) for a, b in zip(out, (qi, luma, chroma), strict=True))
    other = np.where(code_mask_np(qi, CFG_Y.channels, L), 7 - luma, 0)  # other luma activity
    assert models.encode(qi, other, chroma)["chroma"] != pay["chroma"]
    m_y = code_mask_np(qi, CFG_Y.channels, L)
    y = tcae_config.luma_activity(luma, m_y, CFG_Y.classes, 4)
    assert len(np.unique(y)) > 1
    act = code_mask_np(qi, CFG_C.channels, L)
    fl = float_log2_probs(nets["chroma"], chroma, act, 0, y)
    il = int_log2_probs(models.chroma, chroma, act, 0, y)
    assert np.abs(fl - il).mean() < 0.06
    path = tmp_path / "y.safetensors"
    models.save(path)
    assert TcaeModels.load(path).encode(qi, luma, chroma) == pay


def test_a_model_name_shipped_twice_finds_the_context_models_made_for_its_version(
        tmp_path, monkeypatch) -> None:
    import json

    from lcodec import models as registry

    folder = tmp_path / "entropy"
    folder.mkdir()
    for eid, model in (("1" * 16, "a" * 16), ("2" * 16, "b" * 16)):
        (folder / f"m-tcae-{eid}.safetensors").write_bytes(b"x")
        (folder / f"m-tcae-{eid}.json").write_text(json.dumps({"for_model": f"m ({model})"}))
    monkeypatch.setenv("LCODEC_MODELS", str(tmp_path))
    find = registry.find_entropy
    assert find(prefix="m-tcae", model_id=bytes.fromhex("b" * 16)).stem == "m-tcae-" + "2" * 16
    assert find(prefix="m-tcae", model_id=bytes.fromhex("a" * 16)).stem == "m-tcae-" + "1" * 16
    assert find(prefix="m-tcae").stem == "m-tcae-" + "1" * 16
    assert find(entropy_id=bytes.fromhex("2" * 16)).stem == "m-tcae-" + "2" * 16
