"""Tests of the training bridge's encoders, export, training loop and checkpoints."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lgnrt.bridge.augment import shift_images
from lgnrt.bridge.encoders import (
    encode_bits,
    make_encoder,
    quantile_thresholds,
    thermometer_encoder,
    uniform_thresholds,
)
from lgnrt.bridge.estimators import ESTIMATORS
from lgnrt.bridge.export import export_model, to_network, verify_export
from lgnrt.bridge.model import LogicNet
from lgnrt.bridge.train import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PRESETS,
    TrainConfig,
    parse_overrides,
    select_device,
    train,
)
from lgnrt.datasets import Dataset, make_dataset, split_fingerprint
from lgnrt.lgn_format import load_network
from lgnrt.network import reference_counts, reference_predict

BATCH_SIZES = [1, 63, 64, 65, 127, 128, 300]


@pytest.fixture(autouse=True)
def single_thread():
    # The networks here are tiny, so thread start-up and spinning cost more
    # than they save, most of all on a loaded machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def blob_dataset(n_samples: int = 400, n_features: int = 16, n_classes: int = 4, seed: int = 0) -> Dataset:
    """Make a learnable uint8 data set: each class lights up its own block of features."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n_samples)
    features = rng.integers(0, 120, size=(n_samples, n_features))
    block = n_features // n_classes
    for label in range(n_classes):
        rows = labels == label
        features[np.ix_(rows, np.arange(label * block, (label + 1) * block))] += 130
    names = tuple(f"class {label}" for label in range(n_classes))
    return make_dataset("blobs", features.astype(np.uint8), labels.astype(np.int64), names,
                        n_test=n_samples // 4, seed=seed, value_range=(0, 255), image_shape=(4, n_features // 4))


def tiny_config(**changes) -> TrainConfig:
    # No shift: the blob classes live at fixed feature positions.
    base = TrainConfig(dataset="blobs", widths=(64, 64), tau_out=4.0, epochs=3, batch_size=32, shift=0,
                       progress=False, seed=3)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def blobs() -> Dataset:
    return blob_dataset()


# ---------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------

def test_uniform_thresholds_pixels():
    assert uniform_thresholds(0, 255, 1).tolist() == [127.5]
    assert uniform_thresholds(0, 16, 3).tolist() == [4.0, 8.0, 12.0]


def test_thermometer_encoder_bit_order():
    encoder = thermometer_encoder(2, [10.0, 20.0])
    features = np.array([[15, 25], [20, 5]], dtype=np.uint8)

    bits = encoder.encode(features)

    assert encoder.feature_index.tolist() == [0, 0, 1, 1]
    assert encoder.threshold.dtype == np.float32
    # Strict comparison: 20 > 20 is false.
    assert bits.tolist() == [[True, False, True, True], [True, False, False, False]]


def test_thermometer_encoder_per_feature():
    encoder = thermometer_encoder(2, [[1.0], [5.0]])

    assert encoder.threshold.tolist() == [1.0, 5.0]


def test_thermometer_encoder_bad_shape():
    with pytest.raises(ValueError, match=r"shape \(k,\) or \(3, k\)"):
        thermometer_encoder(3, np.zeros((2, 2)))


def test_quantile_thresholds_split_data():
    features = np.arange(100, dtype=np.float32).reshape(100, 1)

    thresholds = quantile_thresholds(features, 3)

    assert thresholds.shape == (1, 3)
    np.testing.assert_allclose(thresholds[0], [24.75, 49.5, 74.25])


@pytest.mark.parametrize("encoding, n_levels, n_bits", [("uniform", 1, 16), ("uniform", 3, 48),
                                                        ("quantile", 2, 32), ("fixed", 1, 16)])
def test_make_encoder_kinds(blobs, encoding, n_levels, n_bits):
    encoder = make_encoder(blobs, encoding, n_levels, thresholds=(100.0,))

    assert encoder.n_bits == n_bits
    assert encoder.n_features == blobs.n_features


def test_make_encoder_real_features_without_range(blobs):
    real = dataclasses.replace(blobs, train_features=blobs.train_features.astype(np.float32),
                               test_features=blobs.test_features.astype(np.float32), value_range=None)

    encoder = make_encoder(real, "uniform", 1)

    low, high = real.train_features.min(axis=0), real.train_features.max(axis=0)
    np.testing.assert_allclose(encoder.threshold, (low + high) / 2, rtol=1e-6)


def test_make_encoder_fixed_needs_thresholds(blobs):
    with pytest.raises(ValueError, match="needs thresholds"):
        make_encoder(blobs, "fixed")


def test_encode_bits_matches_runtime_encoder(blobs):
    encoder = make_encoder(blobs, "uniform", 3)

    bits = encode_bits(encoder, blobs.test_features)

    assert bits.dtype == torch.bool
    np.testing.assert_array_equal(bits.numpy(), encoder.encode(blobs.test_features))


def test_shift_images_moves_pixels():
    image = np.zeros((1, 9), dtype=np.uint8)
    image[0, 4] = 7  # centre of a 3x3 image

    class FixedOffsets:
        # Offsets 0 and 2 in the padded frame: up one row, right one column.
        def __init__(self):
            self.values = iter([np.array([2]), np.array([0])])

        def integers(self, low, high, size):
            return next(self.values)

    shifted = shift_images(image, (3, 3), 1, FixedOffsets())

    assert shifted.reshape(3, 3).tolist() == [[0, 0, 7], [0, 0, 0], [0, 0, 0]]


def test_shift_images_zero_is_identity():
    features = np.arange(18, dtype=np.uint8).reshape(2, 9)

    shifted = shift_images(features, (3, 3), 0, np.random.default_rng(0))

    np.testing.assert_array_equal(shifted, features)


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("wiring", ["random", "unique"])
def test_export_equals_hard_prediction(blobs, estimator, wiring):
    encoder = make_encoder(blobs, "uniform", 2)
    net = LogicNet(encoder.n_bits, [80, 60, 40], blobs.n_classes, tau_out=3.0, estimator=estimator,
                   wiring=wiring, seed=2)
    features = np.concatenate([blobs.train_features, blobs.test_features])

    network = to_network(net, encoder)

    bits = encode_bits(encoder, features)
    np.testing.assert_array_equal(reference_counts(network, features), net.hard_counts(bits).numpy())
    for batch_size in BATCH_SIZES:
        expected = net.hard_predict(bits[:batch_size]).numpy()
        np.testing.assert_array_equal(reference_predict(network, features[:batch_size]), expected)


def test_export_file_round_trip(tmp_path, blobs):
    encoder = make_encoder(blobs, "uniform", 1)
    net = LogicNet(encoder.n_bits, [48, 32], blobs.n_classes, tau_out=5.0, seed=4)
    record = {"estimator": "hard_st", "test_accuracy": 0.5}

    export_model(net, encoder, tmp_path / "model.lgn", record, blobs.class_names)
    loaded = load_network(tmp_path / "model.lgn")

    bits = encode_bits(encoder, blobs.test_features)
    np.testing.assert_array_equal(reference_predict(loaded, blobs.test_features), net.hard_predict(bits).numpy())
    assert loaded.training == record
    assert loaded.class_names == list(blobs.class_names)
    assert loaded.tau == 5.0
    for exported, layer in zip(loaded.layers, net.layers):
        np.testing.assert_array_equal(exported.wire_a, layer.wire_a.numpy())
        np.testing.assert_array_equal(exported.gates, layer.gate_ids().numpy())


def test_export_rejects_wrong_encoder(blobs):
    net = LogicNet(10, [8], blobs.n_classes)

    with pytest.raises(ValueError, match="encoder produces 16 bits but the model reads 10"):
        to_network(net, make_encoder(blobs, "uniform", 1))


def test_verify_export_detects_mismatch(blobs):
    encoder = make_encoder(blobs, "uniform", 1)
    net = LogicNet(encoder.n_bits, [48, 32], blobs.n_classes, seed=4)
    network = to_network(net, encoder)
    network.layers[-1].gates[:] = 0  # FALSE everywhere: every count becomes 0

    with pytest.raises(RuntimeError, match="disagrees with the trained model"):
        verify_export(network, net, encoder, blobs.test_features)


def test_eval_scores_equal_counts_over_tau(blobs):
    # The computation gap: relaxed argmax gates on binary inputs give exact counts.
    encoder = make_encoder(blobs, "uniform", 1)
    net = LogicNet(encoder.n_bits, [64, 64, 32], blobs.n_classes, tau_out=3.0, estimator="soft_mix")
    net.eval()
    bits = encode_bits(encoder, blobs.test_features)

    scores = net(bits)

    torch.testing.assert_close(scores * 3.0, net.hard_counts(bits).float(), rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------
# Training loop
# ---------------------------------------------------------------------------

def test_train_hard_st_zero_gap(tmp_path, blobs):
    config = tiny_config(out_dir=str(tmp_path), epochs=4)

    result = train(config, blobs)

    assert result.deployed_accuracy > 0.8
    assert len(result.history) == 4
    for metrics in result.history:
        assert metrics["selection_gap"] == 0.0
        assert metrics["training_mode_accuracy"] == metrics["deployed_accuracy"]
        assert len(metrics["commitment"]) == 2
        assert [sum(layer) for layer in metrics["gate_usage"]] == [64, 64]
        assert 0.5 <= metrics["tau_b"][0] <= 3.0
        assert 0.0 < metrics["confidence_ema"][0] < 1.0
    assert not result.model.training


def test_train_writes_metrics_and_model(tmp_path, blobs):
    config = tiny_config(out_dir=str(tmp_path), eval_every=5)

    result = train(config, blobs)

    lines = (tmp_path / METRICS_FILE).read_text().splitlines()
    assert len(lines) == len(result.history)
    assert json.loads(lines[-1])["step"] == result.history[-1]["step"]
    network = load_network(tmp_path / MODEL_FILE)
    record = network.training
    assert record["estimator"] == "hard_st"
    assert record["dataset"] == "blobs"
    assert record["test_accuracy"] == result.deployed_accuracy
    assert record["test_fingerprint"] == split_fingerprint(blobs.test_features, blobs.test_labels)
    assert record["n_train"] == blobs.n_train
    assert record["n_test"] == blobs.n_test
    assert record["cage"]["tau_max"] == 3.0
    assert record["seed"] == 3
    assert set(record["versions"]) == {"python", "numpy", "torch", "lgnrt"}
    predictions = reference_predict(network, blobs.test_features)
    assert np.mean(predictions == blobs.test_labels) == result.deployed_accuracy


@pytest.mark.parametrize("estimator", ["soft_mix", "soft_gumbel", "gumbel_st"])
def test_train_other_estimators(blobs, estimator):
    config = tiny_config(estimator=estimator, cage=estimator == "gumbel_st", epochs=2)

    result = train(config, blobs)

    assert result.history[-1]["deployed_accuracy"] == result.deployed_accuracy
    if estimator == "gumbel_st":
        assert "tau_b" in result.history[-1]
    else:
        assert "tau_b" not in result.history[-1]


def test_train_deterministic(blobs):
    first = train(tiny_config(epochs=2), blobs)
    second = train(tiny_config(epochs=2), blobs)

    for ours, theirs in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(ours, theirs)


def test_train_with_shift_augmentation(blobs):
    result = train(tiny_config(shift=1, epochs=2), blobs)

    assert result.history[-1]["selection_gap"] == 0.0


def test_resume_matches_uninterrupted_run(tmp_path, blobs):
    straight = train(tiny_config(epochs=4, estimator="gumbel_st"), blobs)
    steps_per_epoch = -(-blobs.n_train // 32)
    interrupted = tiny_config(epochs=2, estimator="gumbel_st", out_dir=str(tmp_path),
                              checkpoint_every=steps_per_epoch)
    train(interrupted, blobs)

    resumed = train(dataclasses.replace(interrupted, epochs=4, resume=True), blobs)

    assert (tmp_path / CHECKPOINT_FILE).exists()
    for ours, theirs in zip(resumed.model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(ours, theirs)
    assert resumed.deployed_accuracy == straight.deployed_accuracy


def test_resume_rejects_other_settings(tmp_path, blobs):
    train(tiny_config(epochs=1, out_dir=str(tmp_path), checkpoint_every=1), blobs)

    with pytest.raises(ValueError, match="different settings .*widths"):
        train(tiny_config(epochs=2, widths=(32, 32), out_dir=str(tmp_path), resume=True), blobs)


@pytest.mark.parametrize("changes, message", [
    ({"batch_size": 0}, "batch_size"),
    ({"epochs": 0}, "epochs"),
    ({"steps": 0}, "steps"),
    ({"lr": -1.0}, "lr"),
    ({"eval_every": 0}, "eval_every"),
    ({"checkpoint_every": 5}, "need out_dir"),
    ({"shift": -1}, "shift"),
])
def test_train_config_validation(blobs, changes, message):
    with pytest.raises(ValueError, match=message):
        train(tiny_config(**changes), blobs)


def test_train_rejects_shift_without_images(blobs):
    flat = dataclasses.replace(blobs, image_shape=None)

    with pytest.raises(ValueError, match="needs images"):
        train(tiny_config(shift=1), flat)


def test_steps_override_epochs(blobs):
    result = train(tiny_config(steps=7, eval_every=3), blobs)

    assert [metrics["step"] for metrics in result.history] == [3, 6, 7]


def test_select_device():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_demo_preset_is_default():
    assert PRESETS["demo"] == TrainConfig()
    assert TrainConfig().estimator == "hard_st"
    assert TrainConfig().cage


def test_parse_overrides():
    overrides = parse_overrides(["widths=100,200", "epochs=5", "cage=false", "tau=0.5", "steps=none",
                                 "estimator=gumbel_st"])

    assert overrides == {"widths": (100, 200), "epochs": 5, "cage": False, "tau": 0.5, "steps": None,
                         "estimator": "gumbel_st"}


def test_parse_overrides_unknown_field():
    with pytest.raises(ValueError, match="invalid --set 'colour=red'"):
        parse_overrides(["colour=red"])


@pytest.mark.parametrize("item, message", [
    ("cage=2", "expected one of 1, true"),
    ("resume=maybe", "expected one of 1, true"),
    ("epochs=abc", "invalid --set 'epochs=abc'"),
    ("widths=1000,abc", "invalid --set 'widths=1000,abc'"),
])
def test_parse_overrides_bad_values(item, message):
    with pytest.raises(ValueError, match=message):
        parse_overrides([item])


def test_parse_overrides_bool_words():
    assert parse_overrides(["cage=off", "resume=yes"]) == {"cage": False, "resume": True}


def test_train_rejects_zero_threads(blobs):
    with pytest.raises(ValueError, match="threads must be positive"):
        train(TrainConfig(widths=(20,), epochs=1, threads=0, progress=False), blobs)


def test_select_device_rejects_unknown_name():
    with pytest.raises(ValueError, match="invalid device 'tpu'"):
        select_device("tpu")


def test_tiny_preset_trains():
    pytest.importorskip("sklearn")
    config = dataclasses.replace(PRESETS["tiny"], epochs=3, progress=False)

    result = train(config)

    assert result.deployed_accuracy > 0.3  # chance is 0.1
    assert result.record["dataset"] == "digits"


def test_command_line_writes_model(tmp_path):
    pytest.importorskip("sklearn")
    from lgnrt.bridge.train import main

    result = main(["--preset", "tiny", "--out-dir", str(tmp_path), "--set", "epochs=1", "--set", "progress=false"])

    assert (tmp_path / MODEL_FILE).is_file()
    assert load_network(tmp_path / MODEL_FILE).training["test_accuracy"] == result.deployed_accuracy
