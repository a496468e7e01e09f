"""Tests of the input packer: bit layout, padding, uint8 thresholds and chunk plans."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_features, random_network

import lgnrt
from lgnrt import Model, _kernels
from lgnrt.model import prepare_features
from lgnrt.network import LogicLayer, Network, ThresholdEncoder
from lgnrt.passes import build_pack_plan

ISAS = lgnrt.kernel_info()["supported"]


def packed_bits(model: Model, features: np.ndarray, isa: str, tile_words: int) -> tuple[np.ndarray, int]:
    """Return the packed input bits, bool (n_encoder_bits, padded samples), and the sample count."""
    array = prepare_features(features, model.n_features)
    slot_rows = _kernels.pack(model._program, array, _kernels.ISA_CODES[isa], tile_words)
    input_slots = model._compiled.input_slots
    n_padded = slot_rows.shape[0] * tile_words * 64
    bits = np.zeros((input_slots.shape[0], n_padded), dtype=bool)
    for bit, slot in enumerate(input_slots):
        if slot < 0:
            continue
        words = np.ascontiguousarray(slot_rows[:, slot, :]).reshape(-1)
        bits[bit] = np.unpackbits(words.view(np.uint8), bitorder="little").astype(bool)
    return bits, array.shape[0]


def unoptimized_model(network: Network) -> Model:
    # Without passes every encoder bit that a gate reads keeps its own slot.
    return Model.from_network(network, optimize=False)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_packed_bits_match_encoder(isa, dtype, rng):
    network = random_network(rng, n_features=150, bits_per_feature=2, extra_bits=30, widths=(300, 21))
    model = unoptimized_model(network)
    used = model._compiled.input_slots >= 2
    assert used.sum() > 0.8 * used.size
    for tile_words in (1, 2, 4, 8, 16):
        for n in (1, 63, 64, 65, 200):
            features = random_features(rng, network, n, dtype)
            bits, n_samples = packed_bits(model, features, isa, tile_words)
            expected = network.encoder.encode(features).T
            context = f"{isa}, {np.dtype(dtype).name}, T={tile_words}, n={n}"
            assert np.array_equal(bits[used, :n_samples], expected[used]), context
            assert not bits[:, n_samples:].any(), f"padding bits set: {context}"


@pytest.mark.parametrize("isa", ISAS)
def test_padding_bits_zero_when_zero_is_one(isa):
    # Thresholds below every input make every real bit 1; padding must
    # still be 0.
    encoder = ThresholdEncoder(70, np.arange(70, dtype=np.int32), np.full(70, -1.0, np.float32))
    layer = LogicLayer(np.arange(70, dtype=np.int32), np.arange(70, dtype=np.int32), np.full(70, 3, np.uint8))
    model = unoptimized_model(Network(encoder, [layer], n_classes=2))
    for dtype in (np.uint8, np.float32):
        features = np.zeros((65, 70), dtype=dtype)
        bits, n_samples = packed_bits(model, features, isa, 2)
        assert bits[:, :n_samples].all()
        assert not bits[:, n_samples:].any()


@pytest.mark.parametrize("isa", ISAS)
def test_uint8_threshold_edges(isa):
    thresholds = np.array([-1e9, -1.0, -0.5, -0.0, 0.0, 0.25, 0.5, 1.0, 127.5, 128.0,
                           253.999, 254.0, 254.5, 255.0, 255.5, 256.0, 1e9], dtype=np.float32)
    n_bits = thresholds.shape[0]
    encoder = ThresholdEncoder(1, np.zeros(n_bits, dtype=np.int32), thresholds)
    layer = LogicLayer(np.arange(n_bits, dtype=np.int32), np.arange(n_bits, dtype=np.int32),
                       np.full(n_bits, 3, np.uint8))
    network = Network(encoder, [layer], n_classes=1)
    model = unoptimized_model(network)
    features = np.arange(256, dtype=np.uint8)[:, np.newaxis]
    bits, n_samples = packed_bits(model, features, isa, 4)
    assert np.array_equal(bits[:, :n_samples], encoder.encode(features).T)


def test_plan_contiguous_windows():
    n_features = 784
    plan = build_pack_plan(np.arange(n_features), np.full(n_features, 0.5, np.float32),
                           2 + np.arange(n_features), n_features, sink_slot=2 + n_features)
    bases = plan["chunk_base"]
    assert bases.tolist() == [64 * k for k in range(12)] + [n_features - 64]
    # The last window overlaps the one before; only its new lanes are used.
    last = slice(64 * 12, 64 * 13)
    used = plan["lane_slot"][last] != 2 + n_features
    assert used.sum() == n_features - 12 * 64
    assert np.all(plan["lane_feature"][last][used] >= 12 * 64)


def test_plan_thermometer_planes():
    # Three thresholds per feature give three dense planes.
    n_features = 128
    feature = np.repeat(np.arange(n_features), 3)
    threshold = np.tile(np.array([50.0, 100.0, 150.0], np.float32), n_features)
    plan = build_pack_plan(feature, threshold, 2 + np.arange(feature.size), n_features, sink_slot=10_000)
    assert plan["chunk_base"].tolist() == [0, 64, 0, 64, 0, 64]
    plane_thresholds = plan["lane_f32_threshold"].reshape(6, 64)[:, 0]
    assert plane_thresholds.tolist() == [50.0, 50.0, 100.0, 100.0, 150.0, 150.0]


def test_plan_sparse_plane_gathers():
    # Every feature has one threshold and one feature per 64-feature window
    # has a second: plane 1 has 20 bits in 20 windows, one gather chunk.
    n_features = 1280
    feature = np.concatenate([np.arange(n_features), np.arange(0, n_features, 64)])
    threshold = np.arange(feature.size, dtype=np.float32)
    plan = build_pack_plan(feature, threshold, 2 + np.arange(feature.size), n_features, sink_slot=10_000)
    assert plan["chunk_base"].tolist() == [64 * k for k in range(20)] + [-1]
    used = plan["lane_slot"] != 10_000
    assert used.sum() == feature.size
    gathered_features = plan["lane_feature"][64 * 20:][used[64 * 20:]]
    assert sorted(gathered_features.tolist()) == list(range(0, n_features, 64))


def test_plan_few_features_gathers():
    plan = build_pack_plan(np.array([0, 1, 2, 2]), np.array([1, 2, 3, 4], np.float32),
                           np.array([2, 3, 4, 5]), 3, sink_slot=6)
    assert plan["chunk_base"].tolist() == [-1, -1]
    assert np.all(plan["lane_feature"] < 3)


def test_plan_uint8_thresholds():
    threshold = np.array([-3.0, -0.5, 0.0, 0.7, 254.9, 255.0, 300.0], np.float32)
    plan = build_pack_plan(np.arange(7), threshold, 2 + np.arange(7), 7, sink_slot=9)
    lanes = plan["lane_u8_threshold"][:7]
    assert lanes.tolist() == [255, 255, 0, 0, 254, 255, 255]
    assert int(plan["chunk_u8_ones"][0]) == 0b11
    assert np.all(plan["lane_u8_threshold"][7:64] == 255)
    assert np.all(np.isinf(plan["lane_f32_threshold"][7:64]))
