"""Property-based fuzzing of the .lgn loader with hypothesis.

Each test mutates a valid file (bytes, header JSON, graph JSON or tensor
values) and checks the one property the loader promises. Decoding either
raises ModelFileError, or returns a network that passes validate_network,
evaluates on random input and survives a save/load round trip. Any other
exception, a crash or a hang fails the test.

By default every test runs a fixed, derandomised set of examples so CI stays
short and repeatable. Set LGNRT_FUZZ_EXAMPLES to run that many random
examples per test instead (see docs/security.md).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from conftest import tiny_network
from hypothesis import strategies as st

from lgnrt.errors import ModelFileError
from lgnrt.lgn_format import decode_network, encode_network
from lgnrt.network import LogicLayer, Network, ThresholdEncoder, reference_counts, validate_network

LONG_RUN_EXAMPLES = int(os.environ.get("LGNRT_FUZZ_EXAMPLES", "0"))


def fuzz_settings(default_examples: int):
    """Return hypothesis settings: `default_examples` derandomised, or the LGNRT_FUZZ_EXAMPLES random ones."""
    return settings(
        max_examples=LONG_RUN_EXAMPLES or default_examples,
        derandomize=not LONG_RUN_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# A loaded network is evaluated only when a random feature matrix of this
# width is cheap to build, because a mutated n_features can be up to 2^62.
MAX_EVALUATED_FEATURES = 4096
N_SAMPLES = 8


# ---------------------------------------------------------------------------
# Seed files
# ---------------------------------------------------------------------------

def wider_network() -> Network:
    """Return a 3-layer, 3-class network with random wiring and a nested training record."""
    rng = np.random.default_rng(7)
    n_features, n_bits, widths = 6, 12, [16, 12, 6]
    encoder = ThresholdEncoder(n_features, rng.integers(0, n_features, n_bits).astype(np.int32),
                               rng.normal(size=n_bits).astype(np.float32))
    layers = []
    previous = n_bits
    for width in widths:
        layers.append(LogicLayer(rng.integers(0, previous, width).astype(np.int32),
                                 rng.integers(0, previous, width).astype(np.int32),
                                 rng.integers(0, 16, width).astype(np.uint8)))
        previous = width
    training = {"estimator": "gumbel", "temperatures": [1.0, 0.5], "cage": {"enabled": True, "margin": 0.1}}
    return Network(encoder, layers, n_classes=3, tau=2.5, class_names=None, training=training)


SEEDS = [encode_network(tiny_network()), encode_network(wider_network())]


def split_file(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]), data[8 + length:]


def join_file(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-(8 + len(raw)) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def fix_checksum(header: dict, body: bytes) -> None:
    metadata = header.get("__metadata__")
    if isinstance(metadata, dict):
        metadata["data_sha256"] = hashlib.sha256(body).hexdigest()


# ---------------------------------------------------------------------------
# The property
# ---------------------------------------------------------------------------

def check_loader_outcome(data: bytes) -> None:
    """Assert that decoding `data` raises ModelFileError or yields a usable, valid network."""
    try:
        network = decode_network(data)
    except ModelFileError as error:
        event(f"rejected: {error.field.split('[')[0]}")
        return
    event("accepted")
    validate_network(network)

    if network.n_features <= MAX_EVALUATED_FEATURES:
        rng = np.random.default_rng(len(data))
        features = rng.normal(size=(N_SAMPLES, network.n_features)).astype(np.float32)
        counts = reference_counts(network, features)
        block = network.layers[-1].width // network.n_classes
        assert counts.shape == (N_SAMPLES, network.n_classes)
        assert counts.min() >= 0
        assert counts.max() <= block

    # An accepted file must describe a network the writer can store again.
    encoded = encode_network(network)
    assert encode_network(decode_network(encoded)) == encoded


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

seed_files = st.sampled_from(SEEDS)

BOUNDARY_INTEGERS = [0, 1, 2, 3, 4, 6, 15, 16, 255, 256, -1, -2, 2**31 - 1, 2**31, -2**31, 2**32,
                     2**53, 2**62 - 1, 2**62, 2**63, 2**64, -2**63]

json_scalars = (
    st.none()
    | st.booleans()
    | st.sampled_from(BOUNDARY_INTEGERS)
    | st.integers(-1000, 1000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["I32", "F32", "U8", "F64", "lgn", "1", "2", "LogicLayer", "GroupSum", "Threshold",
                       "encoder.threshold", "layers.0.gates", "layers.1.wire_a", "__metadata__"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


def json_paths(value, prefix=()) -> list[tuple]:
    """Return the path of every member and element of a JSON value, containers included."""
    paths = []
    if isinstance(value, dict):
        for key, child in value.items():
            paths.append(prefix + (key,))
            paths.extend(json_paths(child, prefix + (key,)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths.append(prefix + (index,))
            paths.extend(json_paths(child, prefix + (index,)))
    return paths


def parent_of(root, path: tuple):
    node = root
    for key in path[:-1]:
        node = node[key]
    return node


@st.composite
def json_edit(draw, document):
    """Apply one random edit to a parsed JSON document in place and return a label for it."""
    paths = json_paths(document)
    path = draw(st.sampled_from(paths))
    parent = parent_of(document, path)
    key = path[-1]
    current = parent[key]
    operation = draw(st.sampled_from(["replace", "delete", "nudge", "insert", "wrap"]))
    if operation == "replace":
        parent[key] = draw(json_values)
    elif operation == "delete":
        del parent[key]
    elif operation == "nudge" and isinstance(current, int) and not isinstance(current, bool):
        parent[key] = current + draw(st.sampled_from([-2**32, -8, -4, -1, 1, 2, 4, 8, 2**32]))
    elif operation == "insert" and isinstance(current, dict):
        current[draw(st.text(max_size=8))] = draw(json_values)
    elif operation == "insert" and isinstance(current, list):
        current.insert(draw(st.integers(0, len(current))), draw(json_values))
    else:
        parent[key] = [current]
    return operation


@st.composite
def header_edits(draw):
    """Return a seed file with one to three edits to its header or graph JSON.

    The data section is unchanged, so the checksum still matches unless an
    edit touched data_sha256, and validation past the checksum is reached.
    """
    header, body = split_file(draw(seed_files))
    graph = json.loads(header["__metadata__"]["graph"])
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            draw(json_edit(graph))
        else:
            draw(json_edit(header))
    metadata = header.get("__metadata__")
    if isinstance(metadata, dict) and isinstance(metadata.get("graph"), str):
        metadata["graph"] = json.dumps(graph, separators=(",", ":"))
    return join_file(header, body)


TENSOR_VALUES = {
    "I32": st.sampled_from([0, 1, 2, 3, 4, 5, 11, 12, 15, 16, -1, 2**31 - 1, -2**31]),
    "F32": st.sampled_from([0.0, -0.0, 0.5, 1e-40, 3.4e38, float("nan"), float("inf"), float("-inf")]),
    "U8": st.integers(0, 255),
}
PACK_FORMATS = {"I32": "<i", "F32": "<f", "U8": "<B"}


@st.composite
def tensor_edits(draw):
    """Return a seed file with tensor values replaced by boundary values and the checksum fixed."""
    header, body = split_file(draw(seed_files))
    body = bytearray(body)
    names = sorted(name for name in header if name != "__metadata__")
    for _ in range(draw(st.integers(1, 4))):
        entry = header[draw(st.sampled_from(names))]
        count = entry["shape"][0]
        size = struct.calcsize(PACK_FORMATS[entry["dtype"]])
        index = draw(st.integers(0, count - 1))
        value = draw(TENSOR_VALUES[entry["dtype"]])
        start = entry["data_offsets"][0] + index * size
        body[start:start + size] = struct.pack(PACK_FORMATS[entry["dtype"]], value)
    body = bytes(body)
    fix_checksum(header, body)
    if draw(st.booleans()):
        draw(json_edit(header))
    return join_file(header, body)


@st.composite
def byte_mutations(draw):
    """Return a seed file with raw byte flips, insertions, deletions or overwrites anywhere."""
    data = bytearray(draw(seed_files))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "insert", "delete", "overwrite"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if operation == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif operation == "delete":
            del data[position:position + draw(st.integers(1, 16))]
        else:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[position:position + len(chunk)] = chunk
    return bytes(data)


@st.composite
def body_mutations_with_checksum(draw):
    """Return a seed file with raw data-section bytes flipped and the checksum fixed up."""
    header, body = split_file(draw(seed_files))
    body = bytearray(body)
    for _ in range(draw(st.integers(1, 6))):
        body[draw(st.integers(0, len(body) - 1))] ^= draw(st.integers(1, 255))
    body = bytes(body)
    fix_checksum(header, body)
    return join_file(header, body)


@st.composite
def graph_text_mutations(draw):
    """Return a seed file whose graph JSON text has characters changed, inserted or removed."""
    header, body = split_file(draw(seed_files))
    text = header["__metadata__"]["graph"]
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(text) - 1))
        replacement = draw(st.sampled_from(["", "0", "9", "-", ".", "e", "[", "]", "{", "}", ",", ":", '"',
                                            "\\", "null", "1e999", "NaN"]) | st.text(max_size=3))
        text = text[:position] + replacement + text[position + draw(st.integers(0, 2)):]
    header["__metadata__"]["graph"] = text
    return join_file(header, body)


@st.composite
def truncations(draw):
    data = draw(seed_files)
    return data[:draw(st.integers(0, len(data) - 1))]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_seed_files_load(index):
    network = decode_network(SEEDS[index])
    validate_network(network)


def test_fuzz_helpers_round_trip_seeds():
    for seed in SEEDS:
        header, body = split_file(seed)
        assert join_file(copy.deepcopy(header), body) == seed


@fuzz_settings(400)
@given(header_edits())
def test_fuzz_header_json_edits(data):
    check_loader_outcome(data)


@fuzz_settings(300)
@given(tensor_edits())
def test_fuzz_tensor_values(data):
    check_loader_outcome(data)


@fuzz_settings(300)
@given(byte_mutations())
def test_fuzz_raw_bytes(data):
    check_loader_outcome(data)


@fuzz_settings(200)
@given(body_mutations_with_checksum())
def test_fuzz_data_section_past_checksum(data):
    check_loader_outcome(data)


@fuzz_settings(300)
@given(graph_text_mutations())
def test_fuzz_graph_text(data):
    check_loader_outcome(data)


@fuzz_settings(100)
@given(truncations())
def test_fuzz_truncations(data):
    check_loader_outcome(data)
