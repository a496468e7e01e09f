"""Tests of lgnrt.Model against the numpy reference evaluator.

Every kernel path this CPU supports runs with and without each graph pass,
on batch sizes around the 64-sample word and tile boundaries, with uint8,
float32 and float64 features and 1 to 4 threads. Results must equal
lgnrt.network.reference_counts sample by sample.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import random_features, random_network

import lgnrt
from lgnrt import InputError, Model
from lgnrt.model import available_cores
from lgnrt.network import LogicLayer, Network, ThresholdEncoder, reference_counts, reference_predict
from lgnrt.passes import PASS_ORDER

ISAS = lgnrt.kernel_info()["supported"]
PASS_CONFIGS = [(), ("fold",), ("not",), ("merge",), ("dead",), PASS_ORDER]
BATCH_SIZES = [0, 1, 63, 64, 65, 127, 128, 4095, 4097]
MATRIX_DTYPES = [np.uint8, np.float32, np.float64]


def expected_counts(network: Network, features: np.ndarray) -> np.ndarray:
    return reference_counts(network, features)


def assert_counts_equal(actual: np.ndarray, expected: np.ndarray, context: str) -> None:
    assert actual.dtype == np.int32, context
    assert actual.shape == expected.shape, context
    if not np.array_equal(actual, expected):
        sample = int(np.argwhere(actual != expected)[0, 0])
        raise AssertionError(f"{context}: first mismatch at sample {sample}: "
                             f"got {actual[sample].tolist()}, expected {expected[sample].tolist()}")


@pytest.fixture
def kernel_isa(request):
    lgnrt.set_kernel_isa(request.param)
    yield request.param
    lgnrt.set_kernel_isa(None)


@pytest.fixture(scope="module")
def matrix_cases():
    """Networks with their features and reference counts for every batch size and dtype."""
    rng = np.random.default_rng(7)
    networks = [
        # Fewer than 64 features: the packer gathers lane by lane.
        random_network(rng, n_features=10, bits_per_feature=3, extra_bits=5, widths=(48, 40, 30), n_classes=3),
        # Three feature windows, the last one partial, and uneven thermometers.
        random_network(rng, n_features=150, bits_per_feature=2, extra_bits=40, widths=(256, 128, 80),
                       n_classes=5),
    ]
    cases = []
    for network in networks:
        data = {}
        for n in BATCH_SIZES:
            for dtype in MATRIX_DTYPES:
                features = random_features(rng, network, n, dtype)
                data[n, np.dtype(dtype).name] = (features, expected_counts(network, features))
        cases.append((network, data))
    return cases


@pytest.mark.parametrize("kernel_isa", ISAS, indirect=True)
@pytest.mark.parametrize("passes", PASS_CONFIGS, ids=lambda p: "+".join(p) or "none")
def test_scores_match_reference(kernel_isa, passes, matrix_cases):
    for case, (network, data) in enumerate(matrix_cases):
        model = Model.from_network(network, passes=passes)
        assert model.info()["kernel"] == kernel_isa
        for index, n in enumerate(BATCH_SIZES):
            threads = 1 + index % 4
            for dtype in MATRIX_DTYPES:
                features, expected = data[n, np.dtype(dtype).name]
                context = f"network {case}, {kernel_isa}, passes {passes}, n={n}, {np.dtype(dtype).name}, " \
                          f"threads={threads}"
                scores = model.scores(features, threads=threads)
                assert_counts_equal(scores, expected, context)
                labels = model.predict(features, threads=threads)
                assert labels.dtype == np.int64, context
                assert np.array_equal(labels, expected.argmax(axis=1) if n else np.zeros(0)), context


@pytest.mark.parametrize("kernel_isa", ISAS, indirect=True)
def test_all_gate_ids_each_path(kernel_isa):
    # One layer reading two inputs directly, every gate id on every input
    # combination, so a wrong ANF mask shows up as a wrong gate.
    encoder = ThresholdEncoder(2, np.array([0, 1], np.int32), np.array([0.5, 0.5], np.float32))
    gates = np.repeat(np.arange(16, dtype=np.uint8), 2)
    layer = LogicLayer(np.zeros(32, np.int32), np.ones(32, np.int32), gates)
    network = Network(encoder, [layer], n_classes=16)
    features = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 20, dtype=np.uint8)
    expected = reference_counts(network, features)
    for passes in ((), PASS_ORDER):
        model = Model.from_network(network, passes=passes)
        assert_counts_equal(model.scores(features, threads=1), expected, f"{kernel_isa} {passes}")


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16, np.int32, np.int64, np.float16, np.bool_])
def test_other_dtypes_match_reference(dtype, rng):
    network = random_network(rng, n_features=70, bits_per_feature=2, widths=(96, 60))
    features = random_features(rng, network, 300, dtype)
    model = Model.from_network(network)
    assert_counts_equal(model.scores(features, threads=2), reference_counts(network, features),
                        np.dtype(dtype).name)


def test_float64_rounding_at_threshold(rng):
    # float64 values one ulp either side of a float32 threshold: rounding
    # them to float32 the usual way would put them on the threshold.
    network = random_network(rng, n_features=80, bits_per_feature=1, widths=(64, 30))
    thresholds = network.encoder.threshold.astype(np.float64)
    above = np.nextafter(thresholds, np.inf)
    below = np.nextafter(thresholds, -np.inf)
    features = np.stack([thresholds, above, below, thresholds * (1 + 1e-12)])
    features = features[:, np.argsort(network.encoder.feature_index)]
    model = Model.from_network(network, optimize=False)
    assert_counts_equal(model.scores(features), reference_counts(network, features), "float64 near thresholds")


def test_large_values_match_reference(rng):
    network = random_network(rng, n_features=20, bits_per_feature=2, widths=(40, 30),
                             threshold_low=-3.4e38, threshold_high=3.4e38)
    features = rng.choice([-1e300, -3.5e38, -3.4e38, 0.0, 3.4e38, 3.5e38, 1e300], (50, 20))
    model = Model.from_network(network)
    assert_counts_equal(model.scores(features), reference_counts(network, features), "float64 extremes")
    wide = rng.integers(-2**62, 2**62, (50, 20), dtype=np.int64)
    assert_counts_equal(model.scores(wide), reference_counts(network, wide), "int64 extremes")


@pytest.mark.parametrize("group_size", [300, 70000])
def test_wide_count_fields(group_size, rng):
    # Groups above 255 and 65535 outputs need 16- and 32-bit count fields.
    network = random_network(rng, n_features=8, bits_per_feature=2, widths=(40, 2 * group_size), n_classes=2,
                             gate_ids=[1, 6, 7, 8, 9, 14])
    features = random_features(rng, network, 70, np.float32)
    expected = reference_counts(network, features)
    for isa in ISAS:
        lgnrt.set_kernel_isa(isa)
        try:
            model = Model.from_network(network, optimize=False)
            assert_counts_equal(model.scores(features, threads=2), expected, f"{isa} group {group_size}")
        finally:
            lgnrt.set_kernel_isa(None)


def test_constant_outputs_count_as_bias(rng):
    # Outputs folded to constants are not read by the counter but still count.
    encoder = ThresholdEncoder(3, np.arange(3, dtype=np.int32), np.full(3, 0.5, np.float32))
    layer = LogicLayer(np.array([0, 1, 2, 0, 1, 2], np.int32), np.array([1, 2, 0, 0, 1, 2], np.int32),
                       np.array([15, 15, 0, 6, 15, 3], np.uint8))
    network = Network(encoder, [layer], n_classes=2)
    features = rng.integers(0, 2, (100, 3)).astype(np.uint8)
    model = Model.from_network(network)
    assert model.info()["gates_after"] == 0
    assert_counts_equal(model.scores(features), reference_counts(network, features), "constant outputs")


def test_all_constant_outputs(rng):
    # No op and no input bit survives the passes: the packer has no chunk
    # and every count is a bias.
    encoder = ThresholdEncoder(3, np.arange(3, dtype=np.int32), np.full(3, 0.5, np.float32))
    layer = LogicLayer(np.array([0, 1, 2, 0], np.int32), np.array([1, 2, 0, 0], np.int32),
                       np.array([15, 0, 15, 15], np.uint8))
    network = Network(encoder, [layer], n_classes=2)
    model = Model.from_network(network)
    assert model.info()["input_chunks"] == 0
    assert model.info()["ops"] == 0
    for n in (1, 65, 300):
        features = rng.integers(0, 2, (n, 3)).astype(np.uint8)
        assert_counts_equal(model.scores(features, threads=2), reference_counts(network, features), f"n={n}")
        # Class 0 counts TRUE and FALSE (1), class 1 counts TRUE twice (2).
        assert np.array_equal(model.predict(features), np.ones(n))


def test_predict_ties_go_to_lowest_class():
    # Two classes with identical outputs tie on every sample.
    encoder = ThresholdEncoder(2, np.array([0, 1], np.int32), np.array([0.5, 0.5], np.float32))
    layer = LogicLayer(np.array([0, 0, 0, 0], np.int32), np.array([1, 1, 1, 1], np.int32),
                       np.array([6, 0, 6, 0], np.uint8))
    network = Network(encoder, [layer], n_classes=2)
    features = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.uint8)
    model = Model.from_network(network)
    assert np.array_equal(model.predict(features), [0, 0, 0, 0])
    assert np.array_equal(model.predict(features), reference_predict(network, features))


def test_empty_batch_shapes(small_network):
    model = Model.from_network(small_network)
    for dtype in (np.uint8, np.float32, np.float64):
        features = np.empty((0, small_network.n_features), dtype=dtype)
        scores = model.scores(features)
        labels = model.predict(features)
        assert scores.shape == (0, small_network.n_classes)
        assert scores.dtype == np.int32
        assert labels.shape == (0,)
        assert labels.dtype == np.int64


def test_single_sample_as_vector(small_network, rng):
    model = Model.from_network(small_network)
    features = random_features(rng, small_network, 1, np.float32)
    assert np.array_equal(model.predict(features[0]), reference_predict(small_network, features))


def test_array_layouts_match_reference(small_network, rng, tmp_path):
    model = Model.from_network(small_network)
    base = random_features(rng, small_network, 500, np.float32)
    expected = reference_counts(small_network, base)

    fortran = np.asfortranarray(base)
    assert_counts_equal(model.scores(fortran), expected, "Fortran order")

    strided_rows = np.repeat(base, 2, axis=0)[::2]
    assert_counts_equal(model.scores(strided_rows), expected, "every other row")

    reversed_rows = base[::-1][::-1]
    assert_counts_equal(model.scores(reversed_rows), expected, "reversed twice")
    assert_counts_equal(model.scores(base[::-1]), expected[::-1], "negative row stride")

    wide = np.zeros((500, 2 * small_network.n_features), dtype=np.float32)
    wide[:, ::2] = base
    assert_counts_equal(model.scores(wide[:, ::2]), expected, "strided columns")

    read_only = base.copy()
    read_only.setflags(write=False)
    assert_counts_equal(model.scores(read_only), expected, "read-only")

    path = tmp_path / "features.f32"
    base.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=base.shape)
    assert_counts_equal(model.scores(mapped), expected, "memmap")

    as_list = base.astype(np.float64).tolist()
    assert_counts_equal(model.scores(as_list), expected, "nested list")


def test_concurrent_python_threads(rng):
    network = random_network(rng, n_features=40, bits_per_feature=2, widths=(128, 64, 30))
    model = Model.from_network(network)
    batches = [random_features(rng, network, int(n), np.uint8) for n in rng.integers(1, 3000, 8)]
    expected = [reference_counts(network, batch) for batch in batches]
    results = [None] * 8
    errors = []
    start = threading.Barrier(8)

    def work(index):
        try:
            start.wait()
            outputs = []
            for repeat in range(5):
                outputs.append(model.scores(batches[index], threads=1 + repeat % 2))
            results[index] = outputs
        except Exception as error:  # reported below with the thread index
            errors.append((index, error))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors
    for index in range(8):
        for repeat, scores in enumerate(results[index]):
            assert_counts_equal(scores, expected[index], f"thread {index}, repeat {repeat}")


def test_load_round_trip(small_network, rng, tmp_path):
    path = tmp_path / "model.lgn"
    lgnrt.save_network(small_network, path)
    model = lgnrt.load(path)
    features = random_features(rng, small_network, 200, np.uint8)
    assert_counts_equal(model.scores(features), reference_counts(small_network, features), "loaded model")
    assert model.n_features == small_network.n_features
    assert model.n_classes == small_network.n_classes
    assert model.class_names == small_network.class_names
    assert model.tau == small_network.tau
    assert model.training == small_network.training
    unoptimized = lgnrt.load(path, optimize=False)
    assert unoptimized.info()["passes"] == []
    assert unoptimized.info()["gates_after"] == small_network.n_gates


def test_info_reports_passes(small_network):
    info = Model.from_network(small_network).info()
    assert [entry["pass"] for entry in info["passes"]] == list(PASS_ORDER)
    assert info["passes"][0]["gates_before"] == small_network.n_gates
    assert info["passes"][-1]["gates_after"] == info["gates_after"]
    for before, after in zip(info["passes"], info["passes"][1:]):
        assert before["gates_after"] == after["gates_before"]
    assert info["widths"] == [layer.width for layer in small_network.layers]
    assert info["kernel"] in ISAS
    assert info["tile_words_max"] in (1, 2, 4, 8, 16)


def test_passes_argument_selects_passes(small_network):
    info = Model.from_network(small_network, passes=["dead", "fold"]).info()
    assert [entry["pass"] for entry in info["passes"]] == ["fold", "dead"]
    with pytest.raises(ValueError, match="unknown pass 'constant'"):
        Model.from_network(small_network, passes=["constant"])
    with pytest.raises(ValueError, match="collection of pass names"):
        Model.from_network(small_network, passes="fold")


def test_tile_width_follows_batch(small_network):
    model = Model.from_network(small_network)
    assert model.tile_words(1, 1) == 1
    assert model.tile_words(64, 1) == 1
    assert model.tile_words(65, 1) == 2
    assert model.tile_words(1_000_000, 1) == model.info()["tile_words_max"]
    assert model.tile_words(4 * 64 * 8, 4) == min(8, model.info()["tile_words_max"])


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True, None])
def test_threads_validation(small_network, threads):
    model = Model.from_network(small_network)
    features = np.zeros((3, small_network.n_features), dtype=np.uint8)
    if threads is None:
        assert model.predict(features, threads=None).shape == (3,)
        return
    with pytest.raises(InputError, match="threads must be a positive integer"):
        model.predict(features, threads=threads)


def test_threads_accepts_numpy_integer(small_network):
    model = Model.from_network(small_network)
    features = np.zeros((3, small_network.n_features), dtype=np.uint8)
    assert model.predict(features, threads=np.int64(2)).shape == (3,)


def test_bad_features_raise_input_error(small_network):
    model = Model.from_network(small_network)
    n = small_network.n_features
    cases = [
        (np.zeros((4, n + 1), np.float32), f"the model expects {n} per sample, got {n + 1}"),
        (np.zeros((2, 3, n), np.float32), "must have shape"),
        (np.zeros((4, n), dtype=object), "numeric array"),
        (np.array([["a"] * n]), "numeric array"),
        (np.full((4, n), np.nan, np.float32), "NaN or infinity at sample 0, feature 0"),
        (np.concatenate([np.zeros((2, n)), np.full((1, n), np.inf)]), "at sample 2"),
    ]
    for features, message in cases:
        with pytest.raises(InputError, match=message):
            model.predict(features)
        with pytest.raises(InputError, match=message):
            model.scores(features)


def test_kernel_isa_selection():
    info = lgnrt.kernel_info()
    assert info["isa"] == info["detected"]
    assert info["detected"] == info["supported"][-1]
    assert "portable" in info["supported"]
    with pytest.raises(ValueError, match="unknown kernel path 'sse9'"):
        lgnrt.set_kernel_isa("sse9")
    try:
        lgnrt.set_kernel_isa("portable")
        assert lgnrt.kernel_info()["isa"] == "portable"
        assert lgnrt.kernel_info()["forced"]
    finally:
        lgnrt.set_kernel_isa("auto")
    assert lgnrt.kernel_info()["isa"] == info["detected"]


def test_available_cores_positive():
    assert available_cores() >= 1


def test_import_does_not_load_torch_or_kernels():
    code = "import sys, lgnrt; print('torch' in sys.modules, 'lgnrt._kernels' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_many_tiles_split_across_threads(threads):
    rng = np.random.default_rng(threads)
    network = random_network(rng)
    model = Model.from_network(network)
    n_samples = 64 * model.tile_words(10**9, 1) * 2 * threads + 17
    assert model.useful_threads(n_samples, threads) == threads
    features = random_features(rng, network, n_samples, np.uint8)
    assert_counts_equal(model.scores(features, threads=threads), expected_counts(network, features),
                        f"threads {threads}")


def test_small_batch_uses_one_thread():
    model = Model.from_network(random_network(np.random.default_rng(0)))
    assert model.useful_threads(1000, 4) == 1
    assert model.useful_threads(0, 4) == 1
