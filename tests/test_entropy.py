"""Claims about range coding and the static context model (src/lcodec/entropy/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lcodec.entropy.coder import (
    PRECISION,
    SymbolDecoder,
    encode_symbols,
    frequencies_from_counts,
)
from lcodec.entropy.static_context import (
    code_length_bits,
    count_codes,
    count_importance,
    decode_codes,
    decode_importance,
    encode_codes,
    encode_importance,
    fit_tables,
)
from lcodec.errors import LicError

T = 8  # quantization levels per channel
L = 16  # importance levels


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _mask(qi: np.ndarray, n: int) -> np.ndarray:
    """Eq. 4 prefix mask m_k = [k·L < n·QI] for an (h, w) QI map -> (n, h, w) bool."""
    k = np.arange(n).reshape(n, 1, 1)
    return k * L < n * qi[None]


def _skewed_codes(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """Codes with a skewed, channel-dependent distribution correlated with the channel above."""
    probs = np.array([0.4, 0.25, 0.15, 0.08, 0.05, 0.04, 0.02, 0.01])
    codes = rng.choice(T, size=(n, h, w), p=probs)
    same = rng.random((n, h, w)) < 0.5
    for k in range(1, n):
        codes[k] = np.where(same[k], codes[k - 1], codes[k])
    return codes.astype(np.int64)


def _fit_code_table(cuboids: list[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    counts = np.zeros((n, T + 1, T + 1, T), dtype=np.int64)
    for codes, mask in cuboids:
        count_codes(codes, mask, counts)
    return fit_tables(counts)


def _fit_importance_table(maps: list[np.ndarray]) -> np.ndarray:
    counts = np.zeros((L + 1, L + 1, L), dtype=np.int64)
    for qi in maps:
        count_importance(qi, counts)
    return fit_tables(counts)


# --- frequencies_from_counts -----------------------------------------------------------------


def _count_rows() -> np.ndarray:
    rng = _rng(0)
    rows = [
        rng.integers(0, 10, size=(20, 8)),
        rng.integers(0, 10**6, size=(20, 8)),
        rng.integers(0, 10**11, size=(5, 8)),
        np.zeros((3, 8), dtype=np.int64),
        np.tile(np.array([5, 5, 5, 1, 1, 0, 0, 0]), (2, 1)),
        np.array([[10**9, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]]),
        # Large, nearly equal counts: floors tie, so the remainder decides the order.
        10**7 + np.arange(8)[None],
        10**7 + rng.integers(0, 3, size=(20, 8)),
    ]
    return np.concatenate(rows).astype(np.int64)


def test_frequency_rows_sum_to_two_to_the_precision_and_are_positive() -> None:
    freqs = frequencies_from_counts(_count_rows())
    assert freqs.shape == (73, 8)
    assert (freqs.sum(-1) == 2**PRECISION).all()
    assert (freqs >= 1).all()


def test_frequencies_keep_the_leading_shape() -> None:
    counts = _rng(1).integers(0, 50, size=(3, 9, 9, 8))
    freqs = frequencies_from_counts(counts)
    assert freqs.shape == counts.shape
    assert (freqs.sum(-1) == 2**PRECISION).all()
    assert (freqs >= 1).all()
    assert np.array_equal(freqs[1, 4], frequencies_from_counts(counts[1, 4]))


def test_frequencies_are_deterministic() -> None:
    counts = _count_rows()
    a = frequencies_from_counts(counts)
    b = frequencies_from_counts(counts.copy())
    assert np.array_equal(a, b)
    # The same counts in another integer dtype give the same table.
    assert np.array_equal(frequencies_from_counts(counts[:20].astype(np.int32)), a[:20])
    # Rows are computed independently of each other.
    assert np.array_equal(frequencies_from_counts(counts[::-1]), a[::-1])


def test_frequencies_are_monotone_in_the_counts() -> None:
    counts = _count_rows()
    freqs = frequencies_from_counts(counts)
    more = counts[:, :, None] > counts[:, None, :]
    smaller = freqs[:, :, None] < freqs[:, None, :]
    assert not (more & smaller).any()


def test_frequencies_of_all_zero_counts_are_nearly_uniform() -> None:
    freqs = frequencies_from_counts(np.zeros((2, 16), dtype=np.int64))
    assert (freqs.sum(-1) == 2**PRECISION).all()
    assert (freqs >= 1).all()
    assert freqs.max() - freqs.min() <= 16


def test_frequencies_follow_the_counts_proportionally() -> None:
    counts = np.array([[999, 99_999, 0, 899_999]])  # +1 smoothing: 1000 : 100000 : 1 : 900000
    freqs = frequencies_from_counts(counts)[0]
    p = freqs / 2**PRECISION
    smoothed = np.array([1000, 100_000, 1, 900_000])
    assert np.allclose(p, smoothed / smoothed.sum(), atol=1e-4)


# --- code cuboids ----------------------------------------------------------------------------


def _random_cuboid(seed: int, n: int, h: int = 7, w: int = 11) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(seed)
    qi = rng.integers(0, L, size=(h, w))
    return _skewed_codes(rng, n, h, w), _mask(qi, n)


@pytest.mark.parametrize("n", [32, 8], ids=["luma", "chroma"])
@pytest.mark.parametrize("same_data", [False, True], ids=["other-data", "same-data"])
def test_code_cuboid_round_trips(n: int, same_data: bool) -> None:
    codes, mask = _random_cuboid(100 + n, n)
    assert mask.any() and not mask.all()
    training = [(codes, mask)] if same_data else [_random_cuboid(s, n) for s in (1, 2, 3)]
    table = _fit_code_table(training, n)
    assert table.shape == (n, T + 1, T + 1, T)
    payload = encode_codes(codes, mask, table)
    assert len(payload) % 4 == 0
    out = decode_codes(payload, mask, table)
    assert out.shape == codes.shape
    assert np.array_equal(out[mask], codes[mask])
    assert (out[~mask] == 0).all()


def test_code_cuboid_round_trips_with_uniform_random_codes() -> None:
    rng = _rng(7)
    n, h, w = 32, 7, 11
    codes = rng.integers(0, T, size=(n, h, w))
    mask = _mask(rng.integers(0, L, size=(h, w)), n)
    table = _fit_code_table([_random_cuboid(8, n)], n)  # fitted on a different distribution
    out = decode_codes(encode_codes(codes, mask, table), mask, table)
    assert np.array_equal(np.where(mask, codes, 0), out)


@pytest.mark.parametrize("n", [32, 8])
def test_all_zero_mask_codes_nothing_and_decodes_to_zeros(n: int) -> None:
    codes, _ = _random_cuboid(9, n)
    mask = np.zeros_like(codes, dtype=bool)
    table = _fit_code_table([_random_cuboid(10, n)], n)
    payload = encode_codes(codes, mask, table)
    assert len(payload) <= 8
    out = decode_codes(payload, mask, table)
    assert out.shape == codes.shape
    assert (out == 0).all()


def test_masked_out_positions_are_never_coded() -> None:
    n = 32
    codes, mask = _random_cuboid(11, n)
    table = _fit_code_table([_random_cuboid(12, n)], n)
    changed = codes.copy()
    noise = _rng(13).integers(0, T, size=codes.shape)
    changed[~mask] = (codes[~mask] + 1 + noise[~mask] % (T - 1)) % T
    assert not np.array_equal(changed, codes)
    assert encode_codes(changed, mask, table) == encode_codes(codes, mask, table)
    assert code_length_bits(changed, mask, table) == code_length_bits(codes, mask, table)


def test_masked_in_positions_are_coded() -> None:
    n = 32
    codes, mask = _random_cuboid(14, n)
    table = _fit_code_table([_random_cuboid(15, n)], n)
    changed = codes.copy()
    pos = tuple(np.argwhere(mask)[len(np.argwhere(mask)) // 2])
    changed[pos] = (codes[pos] + 1) % T
    assert encode_codes(changed, mask, table) != encode_codes(codes, mask, table)


def test_coded_size_is_close_to_the_model_code_length() -> None:
    n, h, w = 32, 12, 16
    rng = _rng(16)
    codes = _skewed_codes(rng, n, h, w)
    mask = _mask(rng.integers(4, L, size=(h, w)), n)
    symbols = int(mask.sum())
    assert 2000 <= symbols <= 10_000
    table = _fit_code_table([(codes, mask)], n)
    bits = code_length_bits(codes, mask, table)
    size = len(encode_codes(codes, mask, table))
    assert abs(size - bits / 8) <= 0.01 * bits / 8 + 8, (size, bits / 8)
    # The skewed data really compresses below 3 bits a symbol.
    assert size * 8 < 3 * symbols


# --- importance maps -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (5, 7), (13, 3), (2, 17)])
def test_importance_map_round_trips(shape: tuple[int, int]) -> None:
    rng = _rng(17 + shape[0] * 31 + shape[1])
    table = _fit_importance_table([rng.integers(0, L, size=(11, 13)) for _ in range(3)])
    assert table.shape == (L + 1, L + 1, L)
    qi = rng.integers(0, L, size=shape)
    payload = encode_importance(qi, table)
    assert len(payload) % 4 == 0
    out = decode_importance(payload, shape, table)
    assert out.shape == shape
    assert np.array_equal(out, qi)


def test_importance_map_round_trips_with_a_smooth_map_and_its_own_table() -> None:
    h, w = 19, 23
    yy, xx = np.mgrid[0:h, 0:w]
    qi = ((yy + xx) * L // (h + w)).clip(0, L - 1)
    table = _fit_importance_table([qi])
    out = decode_importance(encode_importance(qi, table), (h, w), table)
    assert np.array_equal(out, qi)


# --- corrupt input ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 2, 3, 5, 7, 9])
def test_payload_length_not_a_multiple_of_4_raises_lic_error(length: int) -> None:
    with pytest.raises(LicError):
        SymbolDecoder(bytes(range(length)))


def test_decoding_garbage_raises_nothing_but_lic_error() -> None:
    rng = _rng(18)
    n = 32
    codes, mask = _random_cuboid(19, n)
    code_table = _fit_code_table([(codes, mask)], n)
    imp_table = _fit_importance_table([rng.integers(0, L, size=(7, 11))])
    uniform = frequencies_from_counts(np.zeros((1, T), dtype=np.int64))
    for i in range(50):
        length = int(rng.integers(0, 40)) * (4 if i % 5 else 1) + (i % 5 == 0)
        payload = rng.integers(0, 256, size=length, dtype=np.uint8).tobytes()
        for decode in (
            lambda p: decode_codes(p, mask, code_table),
            lambda p: decode_importance(p, (7, 11), imp_table),
            lambda p: SymbolDecoder(p).decode(np.repeat(uniform, 500, axis=0)),
        ):
            try:
                out = decode(payload)
            except LicError:
                continue
            assert out.min() >= 0


def test_symbols_round_trip_through_the_raw_coder() -> None:
    rng = _rng(20)
    counts = rng.integers(0, 100, size=(300, 5))
    freqs = frequencies_from_counts(counts)
    symbols = rng.integers(0, 5, size=300)
    dec = SymbolDecoder(encode_symbols(symbols, freqs))
    first = dec.decode(freqs[:120])
    second = dec.decode(freqs[120:])
    assert np.array_equal(np.concatenate([first, second]), symbols)
    assert dec.decode(freqs[:0]).shape == (0,)


def test_a_coded_stream_must_end_where_its_section_ends() -> None:
    """Words appended to a stream (or its last word altered) are rejected, even where the
    decoder would not read them (tensorflow-compression's decode_sanity_check)."""
    rng = _rng(11)
    for n in (1, 3, 40, 500):
        freqs = frequencies_from_counts(rng.integers(0, 50, (n, T)))
        symbols = rng.integers(0, T, n)
        payload = encode_symbols(symbols, freqs)
        dec = SymbolDecoder(payload)
        assert np.array_equal(dec.decode(freqs), symbols)
        dec.finish()
        for extra in (b"\0\0\0\0", b"\x01\x02\x03\x04", bytes(8)):
            dec = SymbolDecoder(payload + extra)
            dec.decode(freqs)
            with pytest.raises(LicError, match="beyond its coded symbols"):
                dec.finish()


@pytest.mark.parametrize("entry", sorted((Path(__file__).parent / "golden").glob("*.lic")),
                         ids=lambda p: p.name)
def test_golden_files_with_words_appended_inside_a_section_are_rejected(entry) -> None:
    from lcodec import api, container

    lic = container.unpack(entry.read_bytes())
    api.decode_full(entry.read_bytes())  # the file itself decodes
    coded = [t for t in lic.sections
             if t not in (container.SectionType.ALPHA, container.SectionType.METADATA)]
    for t in coded:
        sections = {**lic.sections, t: lic.sections[t] + b"\0\0\0\0"}
        with pytest.raises(LicError):
            api.decode_full(container.pack(container.LicFile(lic.header, sections)))


def test_every_entropy_method_a_file_can_name_has_a_registered_coder(monkeypatch) -> None:
    from lcodec.container import EntropyMethod
    from lcodec.entropy import methods

    assert set(methods.METHODS) == set(EntropyMethod)
    monkeypatch.delitem(methods.METHODS, EntropyMethod.INCLINED_TCAE_V1)
    with pytest.raises(LicError, match="INCLINED_TCAE_V1 is not supported"):
        methods.coder_for(EntropyMethod.INCLINED_TCAE_V1, object())


def test_range_coder_calls_are_charged_to_coding_only_inside_timed_coding() -> None:
    from contextlib import contextmanager

    from lcodec.entropy.coder import encode_symbols, timed_coding

    stages: list[str] = []

    @contextmanager
    def timer(stage: str):
        stages.append(stage)
        yield

    freqs = np.full((5, 4), 1 << 14, dtype=np.int64)
    plain = encode_symbols(np.arange(5) % 4, freqs)
    assert stages == []
    with timed_coding(timer):
        timed = encode_symbols(np.arange(5) % 4, freqs)
    assert timed == plain and stages and set(stages) == {"coding"}
