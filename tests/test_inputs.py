"""Tests of what Model.predict and Model.scores accept as features and what they reject.

Accepted inputs must give the counts of lgnrt.network.reference_counts
sample by sample, whatever their dtype, layout or container. Rejected
inputs must raise InputError with a message that names the problem, the
value and what to do. docs/inputs.md describes the same rules for users.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import random_features, random_network

import lgnrt
from lgnrt import InputError, Model
from lgnrt.model import MAX_THREADS
from lgnrt.network import LogicLayer, Network, ThresholdEncoder, reference_counts, reference_predict

ISAS = lgnrt.kernel_info()["supported"]
INTEGER_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
FLOAT_DTYPES = [np.float16, np.float32, np.float64, np.longdouble]
PASS_A = 3  # gate id of f(a, b) = a


@pytest.fixture(scope="module")
def network() -> Network:
    # 70 features: one contiguous 64-feature window and a gathered rest, so
    # both packer paths read every layout below.
    return random_network(np.random.default_rng(11), n_features=70, bits_per_feature=2, extra_bits=9,
                          widths=(160, 90, 30), n_classes=3)


@pytest.fixture(scope="module")
def model(network) -> Model:
    return Model.from_network(network)


@pytest.fixture
def kernel_isa(request):
    lgnrt.set_kernel_isa(request.param)
    yield request.param
    lgnrt.set_kernel_isa(None)


def assert_matches_reference(model: Model, network: Network, features, context: str) -> None:
    """Check scores and predict of `features` against the reference, sample by sample."""
    expected = reference_counts(network, np.asarray(features))
    for threads in (1, 2):
        scores = model.scores(features, threads=threads)
        assert scores.dtype == np.int32, context
        assert scores.shape == expected.shape, context
        mismatched = np.flatnonzero((scores != expected).any(axis=1))
        assert mismatched.size == 0, (
            f"{context}, threads={threads}: first mismatch at sample {mismatched[0] if mismatched.size else -1}: "
            f"got {scores[mismatched[:1]].tolist()}, expected {expected[mismatched[:1]].tolist()}"
        )
        labels = model.predict(features, threads=threads)
        assert labels.dtype == np.int64, context
        assert np.array_equal(labels, expected.argmax(axis=1)), f"{context}, threads={threads}: labels"


def bit_network(thresholds, feature_index=None) -> Network:
    """Return a network whose class c counts exactly input bit c, so scores expose the encoder."""
    thresholds = np.asarray(thresholds, dtype=np.float32)
    n_bits = thresholds.shape[0]
    if feature_index is None:
        feature_index = np.arange(n_bits)
    feature_index = np.asarray(feature_index, dtype=np.int32)
    encoder = ThresholdEncoder(int(feature_index.max()) + 1, feature_index, thresholds)
    wires = np.arange(n_bits, dtype=np.int32)
    layer = LogicLayer(wires, wires.copy(), np.full(n_bits, PASS_A, np.uint8))
    network = Network(encoder=encoder, layers=[layer], n_classes=n_bits)
    network.validate()
    return network


# ---------------------------------------------------------------------------
# Rejected inputs
# ---------------------------------------------------------------------------

def assert_rejected(model: Model, features, *fragments: str) -> None:
    """Check that predict and scores both raise InputError containing every fragment."""
    for method in (model.predict, model.scores):
        with pytest.raises(InputError) as caught:
            method(features)
        message = str(caught.value)
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} missing from {message!r}"


def test_wrong_feature_count_rejected(model):
    n = model.n_features
    for count in (0, 1, n - 1, n + 1, 2 * n):
        features = np.zeros((5, count), np.float32)
        assert_rejected(model, features, f"expects {n} per sample", f"got {count}", f"(5, {count})",
                        "pass the features the model was trained on")


def test_wrong_length_vector_rejected(model):
    n = model.n_features
    for length in (0, n - 1, n + 1):
        assert_rejected(model, np.zeros(length, np.float32), f"shape (n_samples, {n})", f"({length},)",
                        "reshape")


@pytest.mark.parametrize("features", [
    np.float32(3.0),
    np.array(2.5),
    7,
    np.zeros((2, 3, 70), np.float32),
    np.zeros((1, 1, 1, 70), np.uint8),
    np.zeros((0, 2, 70), np.float32),
], ids=["numpy-scalar", "0-d-array", "python-int", "3-d", "4-d", "3-d-empty"])
def test_wrong_rank_rejected(model, features):
    shape = np.shape(features)
    assert_rejected(model, features, "features must have shape (n_samples, 70)", f"got shape {shape}",
                    "reshape them to one row per sample")


@pytest.mark.parametrize("dtype", [
    np.complex64, np.complex128, object, "U3", "S3", "datetime64[s]", "timedelta64[ms]", "V4",
    [("value", np.float32)],
], ids=["complex64", "complex128", "object", "str", "bytes", "datetime64", "timedelta64", "void",
        "structured"])
def test_unsupported_dtype_rejected(model, dtype):
    features = np.zeros((4, model.n_features), dtype=dtype)
    assert_rejected(model, features, "numeric array", f"got dtype {features.dtype}", "convert them first")


@pytest.mark.parametrize("features", [
    [["1.0"] * 70],
    [[1.0] * 69 + [None]],
    [[1 + 2j] * 70],
    {"features": [0.0] * 70},
], ids=["strings", "none-value", "complex", "dict"])
def test_unsupported_python_values_rejected(model, features):
    assert_rejected(model, features, "numeric array", "convert them first")


@pytest.mark.parametrize("features", [
    [[0.0] * 70, [0.0] * 69],
    [[0.0] * 70, None],
    [[0.0] * 70, [[0.0] * 70]],
], ids=["short-row", "none-row", "nested-deeper"])
def test_ragged_list_rejected(model, features):
    assert_rejected(model, features, "could not be converted to an array",
                    "a list of rows with 70 numbers each")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "+inf", "-inf"])
def test_non_finite_value_names_sample_and_feature(model, dtype, value):
    features = np.ones((200, model.n_features), dtype=dtype)
    features[137, 41] = value
    features[150, 3] = value  # a later one must not be the one reported
    assert_rejected(model, features, "NaN or infinity", "at sample 137, feature 41",
                    f"(value {dtype(value)})", "replace them before predicting")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_reported_with_batch_index(model, dtype):
    # Far past the first chunk that is checked or converted at once, in a
    # Fortran-ordered array that takes the converting path.
    features = np.ones((40_000, model.n_features), dtype=dtype)
    features[33_333, 69] = np.nan
    assert_rejected(model, features, "at sample 33333, feature 69")
    assert_rejected(model, np.asfortranarray(features), "at sample 33333, feature 69")
    assert_rejected(model, features.tolist(), "at sample 33333, feature 69")


def test_non_finite_in_single_sample_vector(model):
    vector = np.zeros(model.n_features)
    vector[5] = np.inf
    assert_rejected(model, vector, "at sample 0, feature 5")


@pytest.mark.parametrize("threads", [0, -1, -(2**40)])
def test_threads_below_one_rejected(model, threads):
    features = np.zeros((3, model.n_features), np.uint8)
    for method in (model.predict, model.scores):
        with pytest.raises(InputError) as caught:
            method(features, threads=threads)
        assert f"got {threads}" in str(caught.value)
        assert "pass 1 for single-threaded use" in str(caught.value)


@pytest.mark.parametrize("threads", [1.0, 2.5, float("nan"), "2", b"2", True, np.bool_(True), [2], 2j])
def test_threads_of_wrong_type_rejected(model, threads):
    features = np.zeros((3, model.n_features), np.uint8)
    for method in (model.predict, model.scores):
        with pytest.raises(InputError) as caught:
            method(features, threads=threads)
        assert "threads must be a positive integer or None" in str(caught.value)
        assert repr(threads) in str(caught.value)
        assert "pass None" in str(caught.value)


@pytest.mark.parametrize("threads", [MAX_THREADS + 1, 2**31, 10**30, np.uint64(2**63)])
def test_threads_above_limit_rejected(model, threads):
    features = np.zeros((3, model.n_features), np.uint8)
    for method in (model.predict, model.scores):
        with pytest.raises(InputError) as caught:
            method(features, threads=threads)
        assert f"at most {MAX_THREADS}, got {threads}" in str(caught.value)
        assert "pass None" in str(caught.value)


@pytest.mark.parametrize("threads", [None, 1, np.int32(2), np.uint8(3), MAX_THREADS])
def test_valid_threads_accepted(model, network, threads):
    features = random_features(np.random.default_rng(5), network, 300, np.uint8)
    assert np.array_equal(model.predict(features, threads=threads), reference_predict(network, features))


# ---------------------------------------------------------------------------
# Accepted dtypes, containers and layouts
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kernel_isa", ISAS, indirect=True)
@pytest.mark.parametrize("dtype", [np.bool_, *INTEGER_DTYPES, *FLOAT_DTYPES],
                         ids=lambda dtype: np.dtype(dtype).name)
def test_dtype_matches_reference(kernel_isa, dtype, model, network):
    features = random_features(np.random.default_rng(3), network, 777, dtype)
    assert_matches_reference(model, network, features, f"{np.dtype(dtype).name} on {kernel_isa}")


@pytest.mark.parametrize("dtype", INTEGER_DTYPES, ids=lambda dtype: np.dtype(dtype).name)
def test_integer_extremes_match_reference(dtype, model, network):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(8)
    choices = np.array([info.min, info.min + 1, -1 if info.min < 0 else 0, 0, 1, 127, 128, 254, 255, 256,
                        info.max - 1, info.max], dtype=object)
    choices = np.array([value for value in choices if info.min <= value <= info.max], dtype=dtype)
    features = rng.choice(choices, (300, model.n_features))
    assert features.dtype == dtype
    assert_matches_reference(model, network, features, np.dtype(dtype).name)


def test_float_extremes_match_reference(model, network):
    rng = np.random.default_rng(9)
    for dtype in FLOAT_DTYPES:
        info = np.finfo(dtype)
        choices = np.array([info.min, -info.tiny, -0.0, 0.0, info.tiny, info.smallest_subnormal, info.max,
                            1e30 if dtype != np.float16 else 1e4, -1e30 if dtype != np.float16 else -1e4],
                           dtype=dtype)
        features = rng.choice(choices, (200, model.n_features))
        # The reference casts longdouble's extremes to float64 infinities;
        # the runtime does the same without a warning.
        with np.errstate(over="ignore"):
            expected = reference_counts(network, features)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            scores = model.scores(features)
        assert np.array_equal(scores, expected), np.dtype(dtype).name


def test_empty_batch_output_shapes(model):
    n = model.n_features
    empties = [np.empty((0, n), dtype=dtype) for dtype in (np.bool_, *INTEGER_DTYPES, *FLOAT_DTYPES)]
    empties.append(np.empty((0, n), np.float32, order="F"))
    empties.append(np.empty((0, 2 * n), np.float32)[:, ::2])
    for features in empties:
        for threads in (None, 1, 2):
            labels = model.predict(features, threads=threads)
            scores = model.scores(features, threads=threads)
            assert labels.shape == (0,), features.dtype
            assert labels.dtype == np.int64, features.dtype
            assert scores.shape == (0, model.n_classes), features.dtype
            assert scores.dtype == np.int32, features.dtype


def test_empty_float16_batch_accepted(model):
    # A batch without samples has no value to check for NaN, and float16
    # takes the converting path.
    assert model.predict(np.empty((0, model.n_features), np.float16)).shape == (0,)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, np.int16, np.bool_],
                         ids=lambda dtype: np.dtype(dtype).name)
def test_layouts_match_reference(dtype, model, network, tmp_path):
    rng = np.random.default_rng(12)
    base = random_features(rng, network, 1000, dtype)
    n = network.n_features

    layouts = {
        "C order": base,
        "Fortran order": np.asfortranarray(base),
        "every other row": np.repeat(base, 2, axis=0)[::2],
        "reversed rows": base[::-1],
        "every other column": np.repeat(base, 2, axis=1)[:, ::2],
        "reversed columns": base[:, ::-1][:, ::-1],
        "transposed view": np.ascontiguousarray(base.T).T,
        "column slice of a wider array": np.concatenate([base, base], axis=1)[:, 5:5 + n],
    }
    read_only = base.copy()
    read_only.setflags(write=False)
    layouts["read-only"] = read_only
    read_only_fortran = np.asfortranarray(base)
    read_only_fortran.setflags(write=False)
    layouts["read-only Fortran order"] = read_only_fortran

    path = tmp_path / "features.bin"
    base.tofile(path)
    layouts["memmap"] = np.memmap(path, dtype=base.dtype, mode="r", shape=base.shape)
    layouts["memmap, every third row"] = np.memmap(path, dtype=base.dtype, mode="r", shape=base.shape)[::3]
    fortran_path = tmp_path / "features_fortran.bin"
    np.asfortranarray(base).T.tofile(fortran_path)
    layouts["memmap, Fortran order"] = np.memmap(fortran_path, dtype=base.dtype, mode="r", shape=base.shape,
                                                 order="F")

    for name, features in layouts.items():
        assert_matches_reference(model, network, features, f"{np.dtype(dtype).name}, {name}")


def test_memmap_not_copied_by_kernels(model, network, tmp_path):
    # A read-only memmap of uint8 goes straight to the kernels and stays
    # unchanged.
    base = random_features(np.random.default_rng(13), network, 500, np.uint8)
    path = tmp_path / "features.u8"
    base.tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="r", shape=base.shape)
    assert_matches_reference(model, network, mapped, "memmap")
    assert np.array_equal(np.fromfile(path, dtype=np.uint8).reshape(base.shape), base)


def test_nested_lists_match_reference(model, network):
    rng = np.random.default_rng(14)
    floats = random_features(rng, network, 50, np.float64)
    integers = random_features(rng, network, 50, np.int64)
    booleans = random_features(rng, network, 50, np.bool_)
    mixed = [[int(v) if j % 2 else float(v) for j, v in enumerate(row)] for row in integers.tolist()]

    assert_matches_reference(model, network, floats.tolist(), "list of float rows")
    assert_matches_reference(model, network, integers.tolist(), "list of int rows")
    assert_matches_reference(model, network, booleans.tolist(), "list of bool rows")
    assert_matches_reference(model, network, mixed, "rows mixing int and float")
    assert_matches_reference(model, network, tuple(map(tuple, floats.tolist())), "tuple of tuples")
    assert_matches_reference(model, network, [row for row in floats], "list of numpy rows")


def test_single_sample_vector_and_list(model, network):
    features = random_features(np.random.default_rng(15), network, 1, np.float64)
    for vector in (features[0], features[0].tolist(), features[0].astype(np.uint8)):
        expected = reference_counts(network, np.asarray(vector)[np.newaxis, :])
        assert np.array_equal(model.scores(vector), expected)
        assert model.predict(vector).shape == (1,)


def test_input_not_modified(model, network):
    for dtype in (np.uint8, np.float32, np.float64, np.int16):
        features = random_features(np.random.default_rng(16), network, 300, dtype)
        original = features.copy()
        model.scores(features)
        model.scores(np.asfortranarray(features))
        assert np.array_equal(features, original), np.dtype(dtype).name


# ---------------------------------------------------------------------------
# Binarisation at the threshold
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kernel_isa", ISAS, indirect=True)
@pytest.mark.parametrize("optimize", [False, True], ids=["unoptimized", "optimized"])
def test_float_threshold_is_strict(kernel_isa, optimize):
    # Thresholds of every magnitude, including 0, negatives, subnormals and
    # numbers with no exact float16 or decimal form.
    thresholds = np.array([0.0, -0.0, 0.5, -3.25, 127.5, 1e-3, -1e30, 3.3e38, 1e-40, 255.0, 1 / 3, -7.1],
                          dtype=np.float32)
    network = bit_network(thresholds)
    model = Model.from_network(network, optimize=optimize)
    # NOTE: longdouble is left out because it is rounded to float64 first,
    # so one longdouble ulp above a threshold can compare as equal to it.
    for dtype in (np.float32, np.float64):
        at = thresholds.astype(dtype)
        rows = {
            "at": at,
            "one ulp above": np.nextafter(at, dtype(np.inf)),
            "one ulp below": np.nextafter(at, dtype(-np.inf)),
        }
        expected = {"at": 0, "one ulp above": 1, "one ulp below": 0}
        for name, row in rows.items():
            features = np.tile(row, (3, 1))
            context = f"{np.dtype(dtype).name}, {name}, {kernel_isa}"
            scores = model.scores(features)
            assert np.array_equal(scores, reference_counts(network, features)), context
            assert (scores == expected[name]).all(), f"{context}: got {scores[0].tolist()}"


def test_float16_threshold_is_strict():
    thresholds = np.array([0.0, 0.5, -3.25, 127.5, 1000.0, -1024.0, 6e-5], dtype=np.float16)
    network = bit_network(thresholds.astype(np.float32))
    model = Model.from_network(network)
    at = thresholds
    for name, row, value in (("at", at, 0),
                             ("one ulp above", np.nextafter(at, np.float16(np.inf)), 1),
                             ("one ulp below", np.nextafter(at, np.float16(-np.inf)), 0)):
        scores = model.scores(np.tile(row, (2, 1)))
        assert (scores == value).all(), f"float16 {name}: got {scores[0].tolist()}"


def test_float64_between_float32_neighbours():
    # A float64 value strictly between a float32 threshold and the next
    # float32 is above the threshold, although rounding it to nearest
    # float32 would give the threshold itself.
    thresholds = np.array([1.0, 100.0, -2.5, 1e-20], dtype=np.float32)
    network = bit_network(thresholds)
    model = Model.from_network(network)
    wide = thresholds.astype(np.float64)
    next_float32 = np.nextafter(thresholds, np.float32(np.inf)).astype(np.float64)
    between = wide + (next_float32 - wide) / 4
    assert (between.astype(np.float32) == thresholds).all()
    assert (model.scores(between[np.newaxis, :]) == 1).all()
    assert (model.scores(np.nextafter(wide, -np.inf)[np.newaxis, :]) == 0).all()


@pytest.mark.parametrize("kernel_isa", ISAS, indirect=True)
def test_integer_thresholds_are_strict(kernel_isa):
    # 70 bits read one feature each, so the uint8 path compares a whole
    # 64-feature window at once and gathers the rest.
    thresholds = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 99.5, 100.0, 127.0, 127.5, 128.0, 254.0, 254.5, 255.0,
                           255.5, 300.0, -200.0] * 5, dtype=np.float32)[:70]
    network = bit_network(thresholds)
    for optimize in (False, True):
        model = Model.from_network(network, optimize=optimize)
        for dtype in (np.uint8, np.int8, np.int16, np.uint16, np.int64):
            info = np.iinfo(dtype)
            values = np.arange(max(info.min, -300), min(info.max, 400) + 1)
            features = np.repeat(values[:, np.newaxis], 70, axis=1).astype(dtype)
            expected = (values[:, np.newaxis] > thresholds[np.newaxis, :].astype(np.float64)).astype(np.int32)
            scores = model.scores(features)
            mismatched = np.argwhere(scores != expected)
            assert mismatched.size == 0, (
                f"{np.dtype(dtype).name}, optimize={optimize}, {kernel_isa}: value "
                f"{values[mismatched[0, 0]] if mismatched.size else None} against threshold "
                f"{thresholds[mismatched[0, 1]] if mismatched.size else None}"
            )
            assert np.array_equal(scores, reference_counts(network, features))


def test_bool_compares_as_zero_and_one():
    thresholds = np.array([-0.5, 0.0, 0.5, 1.0, 1.5], dtype=np.float32)
    network = bit_network(thresholds)
    model = Model.from_network(network)
    false_row = np.zeros((1, 5), dtype=bool)
    true_row = np.ones((1, 5), dtype=bool)
    assert model.scores(false_row).tolist() == [[1, 0, 0, 0, 0]]
    assert model.scores(true_row).tolist() == [[1, 1, 1, 0, 0]]

    # numpy reads any nonzero byte of a bool array as True, also bytes
    # other than 1 that np.frombuffer lets in.
    raw = np.frombuffer(bytes([2, 2, 2, 200, 255]), dtype=bool).reshape(1, 5)
    assert model.scores(raw).tolist() == [[1, 1, 1, 0, 0]]
    assert np.array_equal(model.scores(raw), reference_counts(network, raw))


# ---------------------------------------------------------------------------
# Large batches: memory stays bounded
# ---------------------------------------------------------------------------

MEMORY_PROBE = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from conftest import random_network
    from lgnrt import Model
    from lgnrt.network import reference_predict

    def status_bytes(key):
        with open("/proc/self/status") as stream:
            for line in stream:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        raise KeyError(key)

    network = random_network(np.random.default_rng(1), n_features=4, bits_per_feature=2,
                             widths=(16, 6), n_classes=2)
    model = Model.from_network(network)
    n_samples = int(sys.argv[2])
    base = np.random.default_rng(2).integers(0, 256, (n_samples, 4), dtype=np.uint8)
    results = {}
    for name in sys.argv[3:]:
        if name == "uint8":
            features = base
        elif name == "uint8-fortran":
            features = np.asfortranarray(base)
        elif name == "float64":
            features = base.astype(np.float64)
        features_bytes = features.nbytes
        model.predict(features[:1000])
        with open("/proc/self/clear_refs", "w") as stream:
            stream.write("5")  # reset VmHWM, the peak resident set size
        before = status_bytes("VmRSS")
        labels = model.predict(features, threads=1)
        peak = status_bytes("VmHWM")
        sample = slice(None, None, 9973)
        results[name] = {
            "growth": peak - before,
            "outputs": labels.nbytes,
            "input": features_bytes,
            "correct": bool(np.array_equal(labels[sample], reference_predict(network, features[sample]))),
        }
        del features, labels
    print(json.dumps(results))
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset peak RSS")
def test_large_batch_memory_bounded():
    # 10 million samples of 4 features: without per-chunk conversion the
    # float64 batch alone would need a 153 MiB float32 copy, and Fortran
    # order a 38 MiB C-order copy.
    limit = 64 * 2**20
    output = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(Path(__file__).parent), "10000000", "uint8", "uint8-fortran",
         "float64"],
        capture_output=True, text=True, timeout=300,
    )
    assert output.returncode == 0, output.stderr
    results = json.loads(output.stdout)
    for name, result in results.items():
        extra = result["growth"] - result["outputs"]
        assert result["correct"], f"{name}: labels differ from the reference"
        assert extra < limit, (
            f"{name}: predict used {extra / 2**20:.0f} MiB beyond its {result['outputs'] / 2**20:.0f} MiB "
            f"of outputs on a {result['input'] / 2**20:.0f} MiB input; expected under {limit / 2**20:.0f} MiB"
        )
