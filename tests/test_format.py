"""Tests of the .lgn reader and writer: exact bytes, round trips and rejections."""

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_network

import lgnrt
from lgnrt.errors import ModelFileError
from lgnrt.lgn_format import decode_network, encode_network, load_network, save_network
from lgnrt.network import reference_counts

GOLDEN = Path(__file__).parent / "golden" / "tiny_v1.lgn"


def split_file(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]), data[8 + length:]


def join_file(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def test_golden_bytes_match():
    data = encode_network(tiny_network())
    assert data == GOLDEN.read_bytes()


def test_golden_file_digest_is_pinned():
    # Catches an accidental regeneration of the golden file itself.
    digest = hashlib.sha256(GOLDEN.read_bytes()).hexdigest()
    assert digest == "92502b060ac1f1c07342528e4a77d0d2ff1eb4254e4c112c7eb0d90ba277bd98"


def test_golden_file_reads_with_safetensors():
    import safetensors.numpy

    tensors = safetensors.numpy.load(GOLDEN.read_bytes())
    np.testing.assert_array_equal(tensors["layers.0.gates"], [1, 6, 9, 14])
    np.testing.assert_array_equal(tensors["encoder.threshold"], np.float32([0.5, 0.5, 0.25, 0.75]))


def test_golden_header_fields():
    header, body = split_file(GOLDEN.read_bytes())
    metadata = header["__metadata__"]
    assert metadata["format"] == "lgn"
    assert metadata["format_version"] == "1"
    assert metadata["data_sha256"] == hashlib.sha256(body).hexdigest()
    graph = json.loads(metadata["graph"])
    assert [node["op"] for node in graph["nodes"]] == ["Threshold", "LogicLayer", "LogicLayer", "GroupSum"]
    assert header["layers.0.gates"]["dtype"] == "U8"
    assert header["encoder.threshold"]["shape"] == [4]


def test_round_trip_keeps_everything(tmp_path):
    network = tiny_network()
    path = tmp_path / "tiny.lgn"
    save_network(network, path)
    loaded = load_network(path)
    assert loaded.n_features == 3
    assert loaded.n_classes == 2
    assert loaded.tau == 1.0
    assert loaded.class_names == ["no", "yes"]
    assert loaded.training == {"seed": 0}
    np.testing.assert_array_equal(loaded.encoder.threshold, network.encoder.threshold)
    for got, want in zip(loaded.layers, network.layers):
        np.testing.assert_array_equal(got.wire_a, want.wire_a)
        np.testing.assert_array_equal(got.wire_b, want.wire_b)
        np.testing.assert_array_equal(got.gates, want.gates)
    features = np.random.default_rng(0).random((50, 3), dtype=np.float32)
    np.testing.assert_array_equal(reference_counts(loaded, features), reference_counts(network, features))


def test_package_exports_file_functions():
    assert lgnrt.load_network is load_network
    assert lgnrt.save_network is save_network


def test_save_leaves_no_temporary_files(tmp_path):
    save_network(tiny_network(), tmp_path / "a.lgn")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.lgn"]


def test_save_failure_keeps_old_file(tmp_path):
    path = tmp_path / "model.lgn"
    save_network(tiny_network(), path)
    before = path.read_bytes()
    broken = tiny_network()
    broken.layers[0].gates[0] = 16
    with pytest.raises(ModelFileError):
        save_network(broken, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.lgn"]


@pytest.mark.parametrize("cut", [0, 4, 8, 20, 200, 1400, 1500, -1])
def test_truncated_file_rejected(cut):
    data = GOLDEN.read_bytes()
    with pytest.raises(ModelFileError) as info:
        decode_network(data[:cut])
    assert "invalid model file" in str(info.value)


def test_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.lgn"):
        load_network(tmp_path / "nope.lgn")


def test_flipped_data_byte_fails_checksum():
    data = bytearray(GOLDEN.read_bytes())
    data[-1] ^= 0xFF
    with pytest.raises(ModelFileError, match="data_sha256"):
        decode_network(bytes(data))


def test_wrong_format_version_rejected():
    header, body = split_file(GOLDEN.read_bytes())
    header["__metadata__"]["format_version"] = "2"
    with pytest.raises(ModelFileError, match=r"format_version.*expected 1, got 2"):
        decode_network(join_file(header, body))


def test_gate_id_out_of_range_rejected():
    header, body = split_file(GOLDEN.read_bytes())
    start = header["layers.0.gates"]["data_offsets"][0]
    body = bytearray(body)
    body[start] = 16
    header["__metadata__"]["data_sha256"] = hashlib.sha256(body).hexdigest()
    with pytest.raises(ModelFileError, match=r"layers.0.gates.*expected <= 15, got 16"):
        decode_network(join_file(header, bytes(body)))


def test_wire_index_at_width_rejected():
    header, body = split_file(GOLDEN.read_bytes())
    start = header["layers.1.wire_b"]["data_offsets"][0]
    body = bytearray(body)
    body[start:start + 4] = struct.pack("<i", 4)
    header["__metadata__"]["data_sha256"] = hashlib.sha256(body).hexdigest()
    with pytest.raises(ModelFileError, match=r"layers.1.wire_b.*expected < 4, got 4"):
        decode_network(join_file(header, bytes(body)))


def test_overlapping_offsets_rejected():
    header, body = split_file(GOLDEN.read_bytes())
    begin = header["layers.0.gates"]["data_offsets"][0]
    header["layers.1.gates"]["data_offsets"] = [begin, begin + 2]
    with pytest.raises(ModelFileError, match="overlaps"):
        decode_network(join_file(header, body))


def test_not_json_header_rejected():
    raw = b"{not json"
    with pytest.raises(ModelFileError, match="not valid JSON"):
        decode_network(struct.pack("<Q", len(raw)) + raw)


def test_huge_header_length_rejected():
    with pytest.raises(ModelFileError, match="header too large"):
        decode_network(struct.pack("<Q", 2**40) + b"{}")
