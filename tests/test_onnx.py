"""Tests of the ONNX export: outputs against the reference evaluator and the
runtime, graph structure, metadata, atomic writes and argument errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import lgnrt  # noqa: E402
from lgnrt import onnx_export  # noqa: E402
from lgnrt.errors import ModelFileError  # noqa: E402
from lgnrt.lgn_format import load_network, save_network  # noqa: E402
from lgnrt.network import LogicLayer, Network, ThresholdEncoder, reference_counts  # noqa: E402
from lgnrt.onnx_export import MIN_OPSET, export_onnx  # noqa: E402

FORMULATIONS = ["packed", "bool"]
BATCH_SIZES = [1, 63, 64, 65, 4103]
LATEST_OPSET = onnx.defs.onnx_opset_version()

# Feature values are drawn from this grid and thresholds are set to grid
# points too, so many features sit exactly at a threshold.
GRID = np.arange(-4.0, 4.5, 0.5, dtype=np.float32)


# ---------------------------------------------------------------------------
# Networks and helpers
# ---------------------------------------------------------------------------

def random_layer(rng, n_inputs: int, width: int) -> LogicLayer:
    """Return a layer with every gate id and a few neurons wired with a == b."""
    gates = rng.integers(0, 16, width).astype(np.uint8)
    gates[:16] = np.arange(16, dtype=np.uint8)[:width]
    wire_a = rng.integers(0, n_inputs, width).astype(np.int32)
    wire_b = rng.integers(0, n_inputs, width).astype(np.int32)
    same = rng.random(width) < 0.1
    same[16:32] = True
    wire_b[same] = wire_a[same]
    return LogicLayer(wire_a, wire_b, gates)


def thermometer_encoder(rng, n_features: int, bits_per_feature: int) -> ThresholdEncoder:
    """Return an encoder with `bits_per_feature` distinct grid thresholds per feature."""
    feature_index = np.repeat(np.arange(n_features, dtype=np.int32), bits_per_feature)
    thresholds = [np.sort(rng.choice(GRID[1:-1], bits_per_feature, replace=False))
                  for _ in range(n_features)]
    return ThresholdEncoder(n_features, feature_index, np.concatenate(thresholds).astype(np.float32))


def random_network(seed: int, n_features: int = 12, bits_per_feature: int = 3,
                   widths=(96, 64, 40), n_classes: int = 4, tau: float = 1.0) -> Network:
    rng = np.random.default_rng(seed)
    encoder = thermometer_encoder(rng, n_features, bits_per_feature)
    layers = []
    n_inputs = encoder.n_bits
    for width in widths:
        layers.append(random_layer(rng, n_inputs, width))
        n_inputs = width
    return Network(encoder, layers, n_classes=n_classes, tau=tau)


def trained_looking_network() -> Network:
    """Return a small digit-classifier-shaped network with a skewed gate mix.

    Trained logic gate networks are dominated by pass-through gates (A, B,
    NOT_A, NOT_B) and AND/OR variants, with a few constants, and use
    thermometer thresholds at feature quantiles.
    """
    rng = np.random.default_rng(7)
    n_features, bits_per_feature = 64, 2
    encoder = ThresholdEncoder(
        n_features,
        np.repeat(np.arange(n_features, dtype=np.int32), bits_per_feature),
        np.tile(np.array([4.0, 10.5], dtype=np.float32), n_features),
    )
    gate_weights = np.ones(16)
    gate_weights[[3, 5, 10, 12]] = 12.0
    gate_weights[[1, 7, 8, 14]] = 6.0
    gate_weights /= gate_weights.sum()
    layers = []
    n_inputs = encoder.n_bits
    for width in (400, 400, 200):
        gates = rng.choice(16, width, p=gate_weights).astype(np.uint8)
        layers.append(LogicLayer(rng.integers(0, n_inputs, width).astype(np.int32),
                                 rng.integers(0, n_inputs, width).astype(np.int32), gates))
        n_inputs = width
    return Network(encoder, layers, n_classes=10, tau=10.0,
                   class_names=[str(digit) for digit in range(10)], training={"epochs": 30})


def grid_features(rng, n_samples: int, n_features: int, dtype="float32") -> np.ndarray:
    return rng.choice(GRID, (n_samples, n_features)).astype(dtype)


def session_for(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run_model(model, features):
    counts, labels = session_for(model).run(["counts", "labels"], {"features": features})
    return counts, labels


def assert_matches_reference(network, counts, labels, features):
    expected = reference_counts(network, features)
    assert counts.dtype == np.int32
    assert labels.dtype == np.int64
    assert counts.shape == expected.shape
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))


def runtime_model(network, tmp_path, loader: str = "from_network"):
    """Return the runtime's model of `network` built by `loader`, or skip when it is missing.

    `loader` is "from_network" (lgnrt.Model.from_network) or "load" (save a
    .lgn file, then lgnrt.load).
    """
    if loader == "from_network":
        model_class = getattr(lgnrt, "Model", None)
        if model_class is None or not hasattr(model_class, "from_network"):
            pytest.skip("lgnrt.Model.from_network is not available")
        return model_class.from_network(network)
    if not hasattr(lgnrt, "load"):
        pytest.skip("lgnrt.load is not available")
    path = tmp_path / "runtime.lgn"
    save_network(network, path)
    return lgnrt.load(path)


# ---------------------------------------------------------------------------
# Outputs against the reference evaluator
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_random_network_matches_reference(formulation):
    network = random_network(seed=1)
    session = session_for(export_onnx(network, formulation=formulation))
    rng = np.random.default_rng(2)
    for n_samples in BATCH_SIZES:
        features = grid_features(rng, n_samples, network.n_features)
        counts, labels = session.run(["counts", "labels"], {"features": features})
        assert_matches_reference(network, counts, labels, features)


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("input_dtype", ["float64", "uint8"])
def test_input_dtypes_match_reference(formulation, input_dtype):
    network = random_network(seed=3)
    if input_dtype == "uint8":
        network.encoder.threshold = np.round(network.encoder.threshold * 20 + 100).astype(np.float32)
    session = session_for(export_onnx(network, formulation=formulation, input_dtype=input_dtype))
    rng = np.random.default_rng(4)
    for n_samples in BATCH_SIZES:
        if input_dtype == "uint8":
            features = rng.integers(0, 256, (n_samples, network.n_features)).astype(np.uint8)
        else:
            features = grid_features(rng, n_samples, network.n_features, "float64")
        counts, labels = session.run(["counts", "labels"], {"features": features})
        assert_matches_reference(network, counts, labels, features)


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_values_at_and_next_to_thresholds(formulation):
    network = random_network(seed=5, n_features=6, bits_per_feature=4, widths=(64, 32), n_classes=2)
    threshold = network.encoder.threshold
    column = network.encoder.feature_index
    rows = []
    for value in (threshold, np.nextafter(threshold, np.float32(-np.inf)),
                  np.nextafter(threshold, np.float32(np.inf))):
        row = np.zeros((len(threshold), network.n_features), dtype=np.float32)
        row[np.arange(len(threshold)), column] = value
        rows.append(row)
    features = np.concatenate(rows)

    counts, labels = run_model(export_onnx(network, formulation=formulation), features)

    assert_matches_reference(network, counts, labels, features)


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_trained_looking_network_matches_reference(formulation, tmp_path):
    network = trained_looking_network()
    save_network(network, tmp_path / "digits.lgn")
    loaded = load_network(tmp_path / "digits.lgn")
    rng = np.random.default_rng(8)
    features = rng.integers(0, 17, (2000, network.n_features)).astype(np.float32)

    counts, labels = run_model(export_onnx(loaded, formulation=formulation), features)

    assert_matches_reference(network, counts, labels, features)


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_ties_go_to_lowest_class(formulation):
    network = random_network(seed=9, widths=(64, 12), n_classes=3)
    last = network.layers[-1]
    # Classes 1 and 2 copy class 0's wiring and gates, so all three tie.
    for block in (1, 2):
        last.wire_a[4 * block:4 * block + 4] = last.wire_a[:4]
        last.wire_b[4 * block:4 * block + 4] = last.wire_b[:4]
        last.gates[4 * block:4 * block + 4] = last.gates[:4]
    features = grid_features(np.random.default_rng(10), 200, network.n_features)

    counts, labels = run_model(export_onnx(network, formulation=formulation), features)

    assert (counts[:, 0] == counts[:, 1]).all()
    assert (counts[:, 1] == counts[:, 2]).all()
    assert (labels == 0).all()


@pytest.mark.parametrize("block", [300, 70000])
def test_packed_head_counts_large_blocks(block):
    # Blocks of 256 or more neurons need 16-bit lanes in the packed head, and
    # blocks of 65536 or more need 32-bit lanes.
    network = random_network(seed=11, widths=(128, block), n_classes=1)
    features = grid_features(np.random.default_rng(12), 65, network.n_features)

    counts, labels = run_model(export_onnx(network, formulation="packed"), features)

    assert_matches_reference(network, counts, labels, features)


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_empty_batch_gives_empty_outputs(formulation):
    network = random_network(seed=13)
    features = np.zeros((0, network.n_features), dtype=np.float32)

    counts, labels = run_model(export_onnx(network, formulation=formulation), features)

    assert counts.shape == (0, network.n_classes)
    assert labels.shape == (0,)


def test_nan_feature_gives_bit_zero():
    # The reference evaluator rejects NaN, but the ONNX graph only compares:
    # NaN > threshold is false, so the bit is 0.
    network = random_network(seed=14, widths=(32, 8), n_classes=2)
    nan_features = np.full((1, network.n_features), np.nan, dtype=np.float32)
    low_features = np.full((1, network.n_features), GRID[0] - 1, dtype=np.float32)

    model = export_onnx(network)
    nan_counts, _ = run_model(model, nan_features)

    np.testing.assert_array_equal(nan_counts, reference_counts(network, low_features))


def test_float64_cast_to_float32_can_change_bits():
    # A float64 value just above a float32 threshold rounds onto the
    # threshold when cast to float32, so the float32 model reads bit 0 where
    # the float64 model and the reference read bit 1.
    encoder = ThresholdEncoder(1, np.array([0], np.int32), np.array([0.1], np.float32))
    layer = LogicLayer(np.array([0], np.int32), np.array([0], np.int32), np.array([3], np.uint8))
    network = Network(encoder, [layer], n_classes=1)
    features = np.array([[float(np.float32(0.1)) + 1e-12]], dtype=np.float64)

    float64_counts, _ = run_model(export_onnx(network, input_dtype="float64"), features)
    float32_counts, _ = run_model(export_onnx(network), features.astype(np.float32))

    assert reference_counts(network, features)[0, 0] == 1
    assert float64_counts[0, 0] == 1
    assert float32_counts[0, 0] == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), formulation=st.sampled_from(FORMULATIONS),
       n_classes=st.sampled_from([1, 2, 5]), n_samples=st.integers(1, 200))
def test_property_random_networks_match_reference(seed, formulation, n_classes, n_samples):
    rng = np.random.default_rng(seed)
    n_features = int(rng.integers(1, 8))
    widths = [int(rng.integers(1, 40)) for _ in range(int(rng.integers(1, 4)))]
    widths[-1] = n_classes * int(rng.integers(1, 10))
    network = random_network(seed, n_features=n_features, bits_per_feature=int(rng.integers(1, 4)),
                             widths=widths, n_classes=n_classes)
    features = grid_features(rng, n_samples, n_features)

    counts, labels = run_model(export_onnx(network, formulation=formulation), features)

    assert_matches_reference(network, counts, labels, features)


# ---------------------------------------------------------------------------
# Outputs against the runtime
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("loader", ["from_network", "load"])
def test_outputs_match_runtime(formulation, loader, tmp_path):
    network = random_network(seed=15)
    model = runtime_model(network, tmp_path, loader)
    session = session_for(export_onnx(model, formulation=formulation))
    rng = np.random.default_rng(16)
    for n_samples in BATCH_SIZES:
        features = grid_features(rng, n_samples, network.n_features)
        counts, labels = session.run(["counts", "labels"], {"features": features})
        np.testing.assert_array_equal(counts, model.scores(features))
        np.testing.assert_array_equal(labels, model.predict(features))


@pytest.mark.parametrize("input_dtype", ["float64", "uint8"])
def test_input_dtypes_match_runtime(input_dtype, tmp_path):
    network = random_network(seed=40)
    network.encoder.threshold = np.round(network.encoder.threshold * 20 + 100).astype(np.float32)
    model = runtime_model(network, tmp_path)
    session = session_for(export_onnx(model, input_dtype=input_dtype))
    rng = np.random.default_rng(41)
    for n_samples in BATCH_SIZES:
        features = rng.integers(0, 256, (n_samples, network.n_features)).astype(input_dtype)
        counts, labels = session.run(["counts", "labels"], {"features": features})
        np.testing.assert_array_equal(counts, model.scores(features))
        np.testing.assert_array_equal(labels, model.predict(features))


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_trained_looking_network_matches_runtime(formulation, tmp_path):
    network = trained_looking_network()
    model = runtime_model(network, tmp_path, "load")
    features = np.random.default_rng(17).integers(0, 17, (3000, network.n_features)).astype(np.float32)

    counts, labels = run_model(export_onnx(model, formulation=formulation), features)

    np.testing.assert_array_equal(counts, model.scores(features))
    np.testing.assert_array_equal(labels, model.predict(features))


# ---------------------------------------------------------------------------
# Graph structure and metadata
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_every_supported_opset_checks_and_runs(formulation):
    network = random_network(seed=18, widths=(32, 16), n_classes=2)
    features = grid_features(np.random.default_rng(19), 70, network.n_features)
    for opset in range(MIN_OPSET[formulation], LATEST_OPSET + 1):
        model = export_onnx(network, opset=opset, formulation=formulation)
        onnx.checker.check_model(model, full_check=True)
        assert [(entry.domain, entry.version) for entry in model.opset_import] == [("", opset)]
        counts, labels = run_model(model, features)
        assert_matches_reference(network, counts, labels, features)


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_default_opset_is_minimum(formulation):
    model = export_onnx(random_network(seed=20), formulation=formulation)
    assert model.opset_import[0].version == MIN_OPSET[formulation]


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_node_count_independent_of_width(formulation):
    narrow = random_network(seed=21, n_features=4, widths=(16, 16, 8), n_classes=2)
    wide = random_network(seed=22, n_features=50, widths=(2000, 1500, 1000), n_classes=2)
    deeper = random_network(seed=23, n_features=4, widths=(16, 16, 16, 8), n_classes=2)

    narrow_nodes = len(export_onnx(narrow, formulation=formulation).graph.node)
    wide_nodes = len(export_onnx(wide, formulation=formulation).graph.node)
    deeper_nodes = len(export_onnx(deeper, formulation=formulation).graph.node)

    assert narrow_nodes == wide_nodes
    assert deeper_nodes > narrow_nodes


def test_uses_only_default_domain():
    model = export_onnx(random_network(seed=24))
    assert {node.domain for node in model.graph.node} == {""}


def test_gates_and_wiring_are_initializers():
    network = random_network(seed=25)
    model = export_onnx(network)
    initializers = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    for k, layer in enumerate(network.layers):
        np.testing.assert_array_equal(initializers[f"layers.{k}.gates"], layer.gates)
        np.testing.assert_array_equal(initializers[f"layers.{k}.wire_a"], layer.wire_a)
        np.testing.assert_array_equal(initializers[f"layers.{k}.wire_b"], layer.wire_b)
    np.testing.assert_array_equal(initializers["encoder.feature_index"], network.encoder.feature_index)
    np.testing.assert_array_equal(initializers["encoder.threshold"], network.encoder.threshold)


@pytest.mark.parametrize("input_dtype, elem_type", [("float32", onnx.TensorProto.FLOAT),
                                                     ("float64", onnx.TensorProto.DOUBLE),
                                                     ("uint8", onnx.TensorProto.UINT8)])
def test_input_and_output_signature(input_dtype, elem_type):
    network = random_network(seed=26)
    graph = export_onnx(network, input_dtype=input_dtype).graph

    (features,) = graph.input
    counts, labels = graph.output

    assert features.name == "features"
    assert features.type.tensor_type.elem_type == elem_type
    assert features.type.tensor_type.shape.dim[1].dim_value == network.n_features
    assert counts.name == "counts"
    assert counts.type.tensor_type.elem_type == onnx.TensorProto.INT32
    assert counts.type.tensor_type.shape.dim[1].dim_value == network.n_classes
    assert labels.name == "labels"
    assert labels.type.tensor_type.elem_type == onnx.TensorProto.INT64


def test_metadata_has_producer_and_head():
    network = trained_looking_network()
    model = export_onnx(network, formulation="bool")
    metadata = {entry.key: entry.value for entry in model.metadata_props}

    assert model.producer_name == "lgnrt"
    assert model.producer_version == lgnrt.__version__
    assert json.loads(metadata["class_names"]) == network.class_names
    assert float(metadata["tau"]) == network.tau
    assert metadata["n_classes"] == str(network.n_classes)
    assert metadata["formulation"] == "bool"


def test_metadata_without_class_names():
    model = export_onnx(random_network(seed=27))
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert json.loads(metadata["class_names"]) is None


def test_accepts_object_with_network_attribute():
    network = random_network(seed=28)

    class Wrapper:
        pass

    wrapper = Wrapper()
    wrapper.network = network

    assert export_onnx(wrapper) == export_onnx(network)


# ---------------------------------------------------------------------------
# Writing files
# ---------------------------------------------------------------------------

def test_write_creates_loadable_file(tmp_path):
    path = tmp_path / "model.onnx"
    model = export_onnx(random_network(seed=29), path)

    loaded = onnx.load(str(path))

    assert loaded == model
    onnx.checker.check_model(str(path), full_check=True)
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_write_replaces_existing_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old contents")

    model = export_onnx(random_network(seed=30), str(path))

    assert path.read_bytes() == model.SerializeToString()


def test_invalid_network_leaves_old_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old contents")
    network = random_network(seed=31)
    network.layers[0].gates[0] = 16

    with pytest.raises(ModelFileError, match="gate id out of range"):
        export_onnx(network, path)

    assert path.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_failed_write_leaves_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old contents")

    def failing_fsync(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx_export.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        export_onnx(random_network(seed=32), path)

    assert path.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        export_onnx(random_network(seed=33), tmp_path / "missing" / "model.onnx")


# ---------------------------------------------------------------------------
# Argument errors
# ---------------------------------------------------------------------------

def test_rejects_non_network():
    with pytest.raises(TypeError, match="expects an lgnrt.Network"):
        export_onnx("model.lgn")


def test_rejects_unknown_formulation():
    with pytest.raises(ValueError, match="invalid formulation 'bits'"):
        export_onnx(random_network(seed=34), formulation="bits")


def test_rejects_unknown_input_dtype():
    with pytest.raises(ValueError, match="invalid input_dtype 'int16'"):
        export_onnx(random_network(seed=35), input_dtype="int16")


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_rejects_opset_below_minimum(formulation):
    minimum = MIN_OPSET[formulation]
    with pytest.raises(ValueError, match=f"needs opset {minimum} or later"):
        export_onnx(random_network(seed=36), opset=minimum - 1, formulation=formulation)


def test_rejects_opset_above_latest():
    with pytest.raises(ValueError, match="newer than"):
        export_onnx(random_network(seed=37), opset=LATEST_OPSET + 1)


@pytest.mark.parametrize("opset", [18.0, "18", True])
def test_rejects_non_integer_opset(opset):
    with pytest.raises(TypeError, match="opset must be an integer"):
        export_onnx(random_network(seed=38), opset=opset)


def test_missing_onnx_raises_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install lgnrt\[onnx\]"):
        export_onnx(random_network(seed=39))


def test_import_loads_neither_onnx_nor_torch():
    code = ("import sys, lgnrt.onnx_export; "
            "print(sorted(name for name in ('onnx', 'onnxruntime', 'torch') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.stdout.strip() == "[]"
