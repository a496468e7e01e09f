"""Generate the hostile .lgn files in this folder and their expectations table.

Every file derives deterministically from the valid golden file
tests/golden/tiny_v1.lgn (3 features, 4 input bits, layers of width 4 and 2,
2 classes). Where a case tests a semantic error rather than corruption, the
data_sha256 checksum is recomputed so the reader gets past the checksum to
the check under test.

expected.json maps each file name to the `field` that lgnrt.ModelFileError
must report, a fragment of its message and a one-line description.
tests/test_hostile_files.py loads every file and checks both.

Usage: python tests/hostile/make_hostile.py [--out FOLDER]
The default output folder is the folder of this script.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GOLDEN = HERE.parent / "golden" / "tiny_v1.lgn"
EXPECTATIONS_NAME = "expected.json"
FOLDER_CASE_NAME = "is_a_folder.lgn"

# safetensors dtype names of the numpy dtypes the cases use. Only I32, F32
# and U8 are valid in a .lgn file.
DTYPE_NAMES = {
    "<i4": "I32", "<f4": "F32", "|u1": "U8", "<f8": "F64", "<i8": "I64",
    "|i1": "I8", "<i2": "I16", "<u2": "U16", "|b1": "BOOL",
}


# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------

def dump_json(value) -> str:
    """Serialise JSON the way the lgnrt writer does: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def split_golden() -> tuple[dict, bytes]:
    """Return the golden file's header as a dict and its data section."""
    data = GOLDEN.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]), data[8 + length:]


def assemble(header_text: bytes, body: bytes) -> bytes:
    """Join a raw header and a data section, padding the header as the writer does."""
    header_text += b" " * (-(8 + len(header_text)) % 8)
    return struct.pack("<Q", len(header_text)) + header_text + body


def pack(header: dict, body: bytes) -> bytes:
    return assemble(dump_json(header).encode("utf-8"), body)


def golden_tensors() -> dict[str, np.ndarray]:
    """Return the golden tensors in data-section order, as writable copies."""
    header, body = split_golden()
    entries = sorted((entry["data_offsets"][0], name, entry) for name, entry in header.items()
                     if name != "__metadata__")
    dtypes = {"I32": "<i4", "F32": "<f4", "U8": "u1"}
    tensors = {}
    for _, name, entry in entries:
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(body[begin:end], dtype=dtypes[entry["dtype"]]).copy()
    return tensors


def golden_graph() -> dict:
    header, _ = split_golden()
    return json.loads(header["__metadata__"]["graph"])


def encode_unchecked(tensors: dict[str, np.ndarray], graph: dict, metadata_changes: dict | None = None) -> bytes:
    """Write tensors and a graph as a .lgn file without validating either.

    Tensors are laid out back to back in the dict's order and the checksum
    is computed over the resulting data section, so the container is
    well-formed and only the content can be wrong.
    """
    header: dict = {}
    chunks = []
    offset = 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": DTYPE_NAMES[array.dtype.str], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    body = b"".join(chunks)
    header["__metadata__"] = {
        "data_sha256": hashlib.sha256(body).hexdigest(),
        "format": "lgn",
        "format_version": "1",
        "graph": dump_json(graph),
    }
    header["__metadata__"].update(metadata_changes or {})
    return pack(header, body)


def edit_tensors(change) -> bytes:
    """Apply `change(tensors, graph)` to the golden network and re-encode it with a valid checksum."""
    tensors = golden_tensors()
    graph = golden_graph()
    change(tensors, graph)
    return encode_unchecked(tensors, graph)


def edit_graph(change) -> bytes:
    return edit_tensors(lambda tensors, graph: change(graph))


def edit_header(change) -> bytes:
    """Apply `change(header)` to the golden header and keep the data section as it is."""
    header, body = split_golden()
    change(header)
    return pack(header, body)


def edit_metadata(key: str, value) -> bytes:
    def change(header):
        header["__metadata__"][key] = value
    return edit_header(change)


def replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise ValueError(f"expected exactly one {old!r} in the header text, found {text.count(old)}")
    return text.replace(old, new)


def edit_header_text(old: str, new: str) -> bytes:
    """Replace one substring of the serialised golden header, keeping the data section."""
    header, body = split_golden()
    return assemble(replace_once(dump_json(header), old, new).encode("utf-8"), body)


def edit_graph_text(old: str, new: str) -> bytes:
    """Replace one substring of the serialised graph, then store it as the graph string."""
    header, body = split_golden()
    header["__metadata__"]["graph"] = replace_once(header["__metadata__"]["graph"], old, new)
    return pack(header, body)


def set_tensor(name: str, array) -> bytes:
    def change(tensors, graph):
        tensors[name] = np.asarray(array)
    return edit_tensors(change)


def set_element(name: str, index: int, value) -> bytes:
    def change(tensors, graph):
        tensors[name][index] = value
    return edit_tensors(change)


def set_offsets(name: str, offsets) -> bytes:
    def change(header):
        header[name]["data_offsets"] = offsets
    return edit_header(change)


def set_entry(name: str, key: str, value) -> bytes:
    def change(header):
        header[name][key] = value
    return edit_header(change)


def with_length_field(value: int, rest: bytes = b"{}") -> bytes:
    return struct.pack("<Q", value) + rest


# ---------------------------------------------------------------------------
# Cases: file name -> (bytes, field, message fragment, description)
# ---------------------------------------------------------------------------

def build_cases() -> list[tuple[str, bytes, str, str, str]]:
    golden = GOLDEN.read_bytes()
    (header_length,) = struct.unpack("<Q", golden[:8])
    data_start = 8 + header_length
    header, body = split_golden()
    cases = []

    def add(name, data, field, fragment, description):
        cases.append((name, data, field, fragment, description))

    # Container: length prefix and truncation.
    add("empty.lgn", b"", "header_length", "file too short", "zero-byte file")
    add("truncated_in_length_prefix.lgn", golden[:5], "header_length", "file too short",
        "cut after 5 of the 8 length bytes")
    add("truncated_after_length_prefix.lgn", golden[:8], "header_length", "header extends past the end",
        "only the 8-byte length prefix")
    add("truncated_in_header.lgn", golden[:8 + header_length // 2], "header_length",
        "header extends past the end", "cut in the middle of the JSON header")
    add("truncated_at_data_start.lgn", golden[:data_start], "data", "data section size does not match",
        "header complete, data section missing")
    add("truncated_in_data.lgn", golden[:data_start + 40], "data", "data section size does not match",
        "cut in the middle of the data section")
    add("truncated_last_byte.lgn", golden[:-1], "data", "expected 86 bytes, got 85 bytes",
        "last byte of the data section missing")
    add("trailing_byte.lgn", golden + b"\0", "data", "expected 86 bytes, got 87 bytes",
        "one extra byte after the data section")
    add("header_length_past_end.lgn", struct.pack("<Q", len(golden)) + golden[8:], "header_length",
        "header extends past the end", "length field larger than the rest of the file")
    add("header_length_0.lgn", with_length_field(0, b""), "header_length", "expected >= 2 bytes, got 0",
        "header length 0")
    add("header_length_1.lgn", with_length_field(1, b"{"), "header_length", "expected >= 2 bytes, got 1",
        "header length 1")
    add("header_length_cap_plus_one.lgn", with_length_field(16 * 1024 * 1024 + 1), "header_length",
        "header too large", "header length one byte over the 16 MiB cap")
    add("header_length_2_40.lgn", with_length_field(2**40), "header_length", "header too large",
        "header length 2^40 in a 10-byte file")
    add("header_length_2_63.lgn", with_length_field(2**63), "header_length", "header too large",
        "header length 2^63 in a 10-byte file")
    add("header_length_u64_max.lgn", with_length_field(2**64 - 1), "header_length", "header too large",
        "header length 2^64 - 1 in a 10-byte file")
    add("png_signature.lgn", b"\x89PNG\r\n\x1a\n" + golden[8:], "header_length", "header too large",
        "PNG signature where the length prefix belongs")

    # Header JSON.
    add("header_not_json.lgn", assemble(b"{not json", b""), "header", "not valid JSON",
        "header is not JSON")
    add("header_json_array.lgn", assemble(b"[]", body), "header", "must be a JSON object",
        "header is a JSON array")
    header_text = dump_json(header).encode()
    add("header_padded_with_nul.lgn", assemble(header_text + b"\0" * (8 - (8 + len(header_text)) % 8), body),
        "header", "not valid JSON", "header padded with NUL bytes instead of spaces")
    add("header_empty_object.lgn", assemble(b"{}", b""), "__metadata__", "missing",
        "header {} and no data section")
    add("header_starts_with_bom.lgn", assemble(b"\xef\xbb\xbf" + dump_json(header).encode(), body), "header",
        "not valid JSON", "UTF-8 byte order mark before the JSON object")
    metadata_text = header_text
    add("metadata_not_utf8.lgn", assemble(metadata_text.replace(b'"lgn"', b'"lg\xffn"'), body), "header",
        "not valid UTF-8", "byte 0xff inside the metadata value of format")
    add("metadata_overlong_utf8.lgn", assemble(metadata_text.replace(b'"lgn"', b'"lg\xc0\xafn"'), body),
        "header", "not valid UTF-8", "overlong UTF-8 encoding of '/' inside a metadata value")
    add("metadata_encoded_surrogate.lgn", assemble(metadata_text.replace(b'"lgn"', b'"lg\xed\xa0\x80n"'), body),
        "header", "not valid UTF-8", "UTF-8 bytes of the surrogate U+D800 inside a metadata value")
    add("metadata_escaped_surrogate.lgn", edit_header_text('"format_version":"1"',
                                                           '"format_version":"1\\ud800"'),
        "__metadata__.format_version", "lone surrogate", "JSON escape of a lone surrogate in a metadata value")
    add("tensor_name_escaped_surrogate.lgn", edit_header_text('"layers.1.gates":', '"layers.1.gates\\udfff":'),
        "tensor 'layers.1.gates\\udfff'", "lone surrogate", "JSON escape of a lone surrogate in a tensor name")
    add("duplicate_key_top_level.lgn",
        edit_header_text('"layers.1.gates":{"data_offsets":[84,86],"dtype":"U8","shape":[2]}',
                         '"layers.1.gates":{"data_offsets":[84,86],"dtype":"U8","shape":[2]},'
                         '"layers.1.gates":{"data_offsets":[84,86],"dtype":"U8","shape":[2]}'),
        "header", "duplicate JSON key", "tensor entry layers.1.gates appears twice")
    add("duplicate_key_metadata.lgn", edit_header_text('"format":"lgn"', '"format":"lgn","format":"lgn"'),
        "header", "duplicate JSON key", "key format appears twice inside __metadata__")
    add("duplicate_key_tensor_entry.lgn",
        edit_header_text('"data_offsets":[84,86],"dtype":"U8"',
                         '"data_offsets":[84,86],"dtype":"U8","dtype":"U8"'),
        "header", "duplicate JSON key", "key dtype appears twice inside one tensor entry")
    add("duplicate_key_graph.lgn",
        edit_graph_text('"training":{"seed":0}', '"training":{"seed":0},"training":{}'), "__metadata__.graph",
        "duplicate JSON key", "member training appears twice in the graph")
    add("duplicate_key_graph_node.lgn", edit_graph_text('"op":"GroupSum"', '"op":"GroupSum","op":"GroupSum"'),
        "__metadata__.graph", "duplicate JSON key", "member op appears twice in the head node")
    add("nan_literal_header.lgn",
        edit_header_text('"dtype":"U8","shape":[2]}', '"dtype":"U8","shape":[NaN]}'), "header",
        "non-standard number", "NaN literal as a tensor length")
    add("infinity_literal_graph.lgn", edit_graph_text('"tau":1.0', '"tau":Infinity'), "__metadata__.graph",
        "non-standard number", "Infinity literal as tau")
    add("negative_infinity_literal_graph.lgn", edit_graph_text('"seed":0', '"seed":-Infinity'),
        "__metadata__.graph", "non-standard number", "-Infinity literal in the training record")
    add("float_overflow_graph.lgn", edit_graph_text('"seed":0', '"seed":1e999'), "__metadata__.graph",
        "overflows a 64-bit float", "1e999 in the training record, which parses to infinity")
    add("integer_too_long_header.lgn",
        edit_header_text('"dtype":"U8","shape":[2]}', '"dtype":"U8","shape":[' + "9" * 5000 + "]}"), "header",
        "too many digits", "tensor length with 5000 digits")
    add("integer_too_long_graph.lgn", edit_graph_text('"seed":0', '"seed":' + "7" * 5000),
        "__metadata__.graph", "too many digits", "training seed with 5000 digits")
    add("deeply_nested_header.lgn", assemble(b"[" * 20_000 + b"]" * 20_000, b""), "header",
        "nested too deeply", "20000 nested JSON arrays as the header")
    add("deeply_nested_graph.lgn", edit_graph_text('"seed":0', '"seed":' + "[" * 20_000 + "]" * 20_000),
        "__metadata__.graph", "nested too deeply", "20000 nested arrays in the training record")

    # Metadata.
    add("metadata_missing.lgn", edit_header(lambda h: h.pop("__metadata__")), "__metadata__", "missing",
        "no __metadata__ object")
    add("metadata_not_object.lgn", edit_header(lambda h: h.update(__metadata__=["lgn"])), "__metadata__",
        "must be an object", "__metadata__ is a list")
    add("metadata_unknown_key.lgn", edit_metadata("author", "someone"), "__metadata__", "unknown keys",
        "extra metadata key author")
    add("metadata_missing_checksum.lgn", edit_header(lambda h: h["__metadata__"].pop("data_sha256")),
        "__metadata__.data_sha256", "missing or not a string", "no data_sha256 key")
    add("metadata_graph_not_string.lgn", edit_metadata("graph", {"nodes": []}), "__metadata__.graph",
        "missing or not a string", "graph stored as a JSON object instead of a string")
    add("metadata_version_not_string.lgn", edit_metadata("format_version", 1), "__metadata__.format_version",
        "missing or not a string", "format_version is the number 1, not the string")
    add("wrong_format_name.lgn", edit_metadata("format", "onnx"), "__metadata__.format",
        "expected lgn, got onnx", "format name onnx")
    add("format_name_uppercase.lgn", edit_metadata("format", "LGN"), "__metadata__.format",
        "expected lgn, got LGN", "format name in capitals")
    add("wrong_version_2.lgn", edit_metadata("format_version", "2"), "__metadata__.format_version",
        "expected 1, got 2", "format version 2")
    add("wrong_version_0.lgn", edit_metadata("format_version", "0"), "__metadata__.format_version",
        "expected 1, got 0", "format version 0")
    add("wrong_version_decimal.lgn", edit_metadata("format_version", "1.0"), "__metadata__.format_version",
        "expected 1, got 1.0", "format version written as 1.0")
    add("version_2_with_other_layout.lgn",
        edit_header(lambda h: (h["__metadata__"].update(format_version="2"),
                               h["layers.0.gates"].update(dtype="U4"))),
        "__metadata__.format_version", "expected 1, got 2",
        "format version 2 with a dtype version 1 does not know, reported as a version mismatch")
    flipped = bytearray(golden)
    flipped[-1] ^= 0x01
    add("checksum_mismatch.lgn", bytes(flipped), "__metadata__.data_sha256", "checksum does not match",
        "one bit of the last gate id flipped, checksum left as it was")
    add("checksum_uppercase.lgn", edit_metadata("data_sha256", header["__metadata__"]["data_sha256"].upper()),
        "__metadata__.data_sha256", "checksum does not match", "checksum in upper-case hex")

    # Tensor entries and layout.
    add("tensor_entry_not_object.lgn", edit_header(lambda h: h.update({"layers.1.gates": [84, 86]})),
        "tensor 'layers.1.gates'", "entry must be an object", "tensor entry is a list")
    add("tensor_entry_extra_key.lgn", set_entry("layers.1.gates", "offset", 84), "tensor 'layers.1.gates'",
        "wrong keys", "tensor entry with an extra key")
    add("tensor_entry_missing_shape.lgn", edit_header(lambda h: h["layers.1.gates"].pop("shape")),
        "tensor 'layers.1.gates'", "wrong keys", "tensor entry without shape")
    add("dtype_f64_gates.lgn", set_tensor("layers.1.gates", np.array([7, 8], "<f8")),
        "tensor 'layers.1.gates'.dtype", "got F64", "gate ids stored as F64")
    add("dtype_i64_wiring.lgn", set_tensor("layers.0.wire_a", np.array([0, 1, 2, 3], "<i8")),
        "tensor 'layers.0.wire_a'.dtype", "got I64", "wire indices stored as I64")
    add("dtype_lowercase.lgn", set_entry("layers.1.gates", "dtype", "u8"), "tensor 'layers.1.gates'.dtype",
        "got u8", "dtype name in lower case")
    add("dtype_not_string.lgn", set_entry("layers.1.gates", "dtype", ["U8"]), "tensor 'layers.1.gates'.dtype",
        "unsupported dtype", "dtype is a JSON list")
    add("shape_2d.lgn", set_tensor("layers.0.gates", np.array([[1, 6], [9, 14]], np.uint8)),
        "tensor 'layers.0.gates'.shape", "must be one-dimensional", "gate ids with shape [2, 2]")
    add("shape_scalar.lgn", set_entry("layers.1.gates", "shape", []), "tensor 'layers.1.gates'.shape",
        "must be one-dimensional", "shape []")
    add("shape_negative.lgn", set_entry("layers.1.gates", "shape", [-2]), "tensor 'layers.1.gates'.shape",
        "non-negative integer", "shape [-2]")
    add("shape_string.lgn", set_entry("layers.1.gates", "shape", ["2"]), "tensor 'layers.1.gates'.shape",
        "non-negative integer", "shape [\"2\"]")
    add("shape_bool.lgn", set_entry("layers.1.gates", "shape", [True]), "tensor 'layers.1.gates'.shape",
        "non-negative integer", "shape [true]")
    add("offsets_overlap.lgn", set_offsets("layers.1.gates", [83, 85]), "tensor 'layers.1.gates'.data_offsets",
        "overlaps another tensor", "gates of layer 1 start one byte inside the gates of layer 0")
    add("offsets_identical.lgn",
        edit_header(lambda h: (h["layers.1.wire_a"].update(data_offsets=[64, 72]),
                               h["layers.1.wire_b"].update(data_offsets=[64, 72]))),
        "tensor 'layers.1.wire_b'.data_offsets", "overlaps another tensor",
        "two tensors share the same bytes")

    def insert_gap(gap_start: int, gap_size: int) -> bytes:
        gap_header, gap_body = split_golden()
        for name, entry in gap_header.items():
            if name != "__metadata__" and entry["data_offsets"][0] >= gap_start:
                entry["data_offsets"] = [offset + gap_size for offset in entry["data_offsets"]]
        gap_body = gap_body[:gap_start] + b"\0" * gap_size + gap_body[gap_start:]
        gap_header["__metadata__"]["data_sha256"] = hashlib.sha256(gap_body).hexdigest()
        return pack(gap_header, gap_body)

    def shift_all_offsets(shifted_header: dict, shift: int = 8) -> None:
        for name, entry in shifted_header.items():
            if name != "__metadata__":
                entry["data_offsets"] = [offset + shift for offset in entry["data_offsets"]]

    add("offsets_gap.lgn", insert_gap(80, 4), "tensor 'layers.0.gates'.data_offsets",
        "leaves a gap", "4 unused bytes before the gate ids, checksum recomputed")
    add("offsets_start_past_zero.lgn",
        edit_header(shift_all_offsets),
        "tensor 'encoder.feature_index'.data_offsets", "leaves a gap", "every offset shifted by 8 bytes")
    add("offsets_past_data_end.lgn",
        edit_header(lambda h: h["layers.1.gates"].update(shape=[4], data_offsets=[84, 88])), "data",
        "expected 88 bytes, got 86 bytes", "last tensor ends 2 bytes past the data section")
    add("offsets_2_62.lgn", set_offsets("layers.1.gates", [2**62, 2**62 + 2]),
        "tensor 'layers.1.gates'.data_offsets", "must be two non-negative integers", "offsets at 2^62")
    add("offsets_negative.lgn", set_offsets("layers.1.gates", [-2, 0]), "tensor 'layers.1.gates'.data_offsets",
        "must be two non-negative integers", "offsets [-2, 0]")
    add("offsets_reversed.lgn", set_offsets("layers.1.gates", [86, 84]), "tensor 'layers.1.gates'.data_offsets",
        "begin is after end", "offsets [86, 84]")
    add("offsets_one_value.lgn", set_offsets("layers.1.gates", [84]), "tensor 'layers.1.gates'.data_offsets",
        "must be two non-negative integers", "offsets [84]")
    add("offsets_size_mismatch.lgn", set_offsets("layers.1.gates", [84, 85]),
        "tensor 'layers.1.gates'.data_offsets", "expected 2 bytes, got 1 bytes",
        "offsets span 1 byte for 2 U8 values")
    add("offsets_size_mismatch_i32.lgn",
        edit_header(lambda h: h["layers.1.wire_b"].update(dtype="U8")),
        "tensor 'layers.1.wire_b'.data_offsets", "expected 2 bytes, got 8 bytes",
        "wiring relabelled U8, so 8 bytes no longer match 2 values")
    add("tensor_claims_2_61_bytes.lgn",
        edit_header(lambda h: h["layers.1.gates"].update(shape=[2**61], data_offsets=[84, 84 + 2**61])),
        "data", "data section size does not match", "one tensor claims 2^61 bytes of a 86-byte data section")

    # Graph description.
    add("graph_not_json.lgn", edit_metadata("graph", "{nodes:"), "__metadata__.graph", "not valid JSON",
        "graph string is not JSON")
    add("graph_not_object.lgn", edit_metadata("graph", "[]"), "graph", "must be a JSON object",
        "graph is a JSON array")
    add("graph_missing_nodes.lgn", edit_graph(lambda g: g.pop("nodes")), "graph.nodes", "missing",
        "graph without nodes")
    add("graph_nodes_not_list.lgn", edit_graph(lambda g: g.update(nodes={})), "graph.nodes", "must be a list",
        "nodes is an object")
    add("graph_training_not_object.lgn", edit_graph(lambda g: g.update(training=[])), "graph.training",
        "must be an object", "training record is a list")
    add("graph_node_not_object.lgn", edit_graph(lambda g: g["nodes"].__setitem__(1, "layers.0")),
        "graph.nodes[1]", "must be an object", "a node is a string")
    add("node_wrong_op_layer.lgn", edit_graph(lambda g: g["nodes"][1].update(op="Conv")), "graph.nodes[1].op",
        "expected LogicLayer, got Conv", "a logic layer node with op Conv")
    add("node_wrong_op_encoder.lgn", edit_graph(lambda g: g["nodes"][0].update(op="Identity")),
        "graph.nodes[0].op", "expected Threshold, got Identity", "encoder node with op Identity")
    add("node_wrong_op_head.lgn", edit_graph(lambda g: g["nodes"][3].update(op="Softmax")),
        "graph.nodes[3].op", "expected GroupSum, got Softmax", "head node with op Softmax")
    add("node_missing_op.lgn", edit_graph(lambda g: g["nodes"][2].pop("op")), "graph.nodes[2].op",
        "expected LogicLayer, got None", "a logic layer node without op")
    add("node_missing_tensor.lgn", edit_graph(lambda g: g["nodes"][1].update(gates="layers.9.gates")),
        "graph.nodes[1].gates", "names a tensor that is not in the file",
        "gates name a tensor that does not exist")
    add("node_tensor_name_not_string.lgn", edit_graph(lambda g: g["nodes"][0].update(threshold=["x"])),
        "graph.nodes[0].threshold", "names a tensor that is not in the file", "threshold tensor name is a list")
    add("node_tensor_metadata_name.lgn", edit_graph(lambda g: g["nodes"][1].update(wire_a="__metadata__")),
        "graph.nodes[1].wire_a", "names a tensor that is not in the file", "wire_a names __metadata__")
    add("layer_count_0.lgn", edit_graph(lambda g: g["nodes"].__delitem__(slice(1, 3))), "graph.nodes",
        "at least one logic layer", "encoder and head but no logic layer")
    add("nodes_empty.lgn", edit_graph(lambda g: g.update(nodes=[])), "graph.nodes", "expected >= 3 nodes, got 0",
        "empty node list")
    add("n_features_0.lgn", edit_graph(lambda g: g["inputs"].update(n_features=0)), "graph.inputs.n_features",
        "must be a positive integer", "n_features 0")
    add("n_features_string.lgn", edit_graph(lambda g: g["inputs"].update(n_features="3")),
        "graph.inputs.n_features", "must be a positive integer", "n_features is a string")
    add("n_inputs_mismatch_encoder.lgn", edit_graph(lambda g: g["nodes"][0].update(n_inputs=4)),
        "graph.nodes[0].n_inputs", "does not match inputs.n_features", "encoder n_inputs 4 for 3 features")
    add("n_outputs_mismatch_encoder.lgn", edit_graph(lambda g: g["nodes"][0].update(n_outputs=5)),
        "graph.nodes[0].n_outputs", "expected 4, got 5", "encoder n_outputs 5 for 4 bits")
    add("n_inputs_mismatch_layer.lgn", edit_graph(lambda g: g["nodes"][2].update(n_inputs=3)),
        "graph.nodes[2].n_inputs", "expected 4, got 3", "layer 1 n_inputs 3 after a layer of width 4")
    add("n_outputs_mismatch_layer.lgn", edit_graph(lambda g: g["nodes"][1].update(n_outputs=3)),
        "graph.nodes[1].n_outputs", "expected 4, got 3", "layer 0 n_outputs 3 for 4 gates")
    add("n_outputs_not_integer.lgn", edit_graph(lambda g: g["nodes"][1].update(n_outputs=4.0)),
        "graph.nodes[1].n_outputs", "must be an integer", "layer 0 n_outputs 4.0")
    add("head_n_inputs_mismatch.lgn", edit_graph(lambda g: g["nodes"][3].update(n_inputs=4)),
        "graph.nodes[3].n_inputs", "expected 2, got 4", "head n_inputs 4 after a layer of width 2")

    def set_classes(count, names):
        def change(graph):
            graph["nodes"][3]["n_outputs"] = count
            graph["outputs"].update(n_classes=count, class_names=names)
        return edit_graph(change)

    add("class_count_0.lgn", set_classes(0, None), "outputs.n_classes", "expected >= 1, got 0", "0 classes")
    add("class_count_negative.lgn", set_classes(-2, None), "outputs.n_classes", "expected >= 1, got -2",
        "-2 classes")
    add("classes_do_not_divide.lgn", set_classes(3, None), "outputs.n_classes", "a divisor of 2, got 3",
        "3 classes over a last layer of width 2")
    add("classes_mismatch_outputs.lgn", edit_graph(lambda g: g["outputs"].update(n_classes=1)),
        "graph.outputs.n_classes", "does not match the GroupSum node", "outputs say 1 class, the head says 2")
    add("classes_float_outputs.lgn", edit_graph(lambda g: g["outputs"].update(n_classes=2.0)),
        "graph.outputs.n_classes", "expected 2, got 2.0", "outputs.n_classes written as 2.0")
    add("class_names_wrong_count.lgn", edit_graph(lambda g: g["outputs"].update(class_names=["only"])),
        "outputs.class_names", "wrong count (expected 2, got 1)", "one class name for 2 classes")
    add("class_names_not_strings.lgn", edit_graph(lambda g: g["outputs"].update(class_names=[0, 1])),
        "outputs.class_names", "must be a list of strings", "class names are numbers")
    add("class_names_string.lgn", edit_graph(lambda g: g["outputs"].update(class_names="no,yes")),
        "outputs.class_names", "must be a list of strings", "class names in one comma-separated string")
    for label, value, fragment in [("0", 0, "got 0"), ("negative", -1.5, "got -1.5"),
                                   ("string", "1.0", "must be a number"), ("bool", True, "must be a number"),
                                   ("null", None, "must be a number")]:
        field = "GroupSum.tau" if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else "graph.nodes[3].tau"
        add(f"tau_{label}.lgn", edit_graph(lambda g, v=value: g["nodes"][3].update(tau=v)), field, fragment,
            f"tau {json.dumps(value)}")
    add("tau_huge_integer.lgn", edit_graph_text('"tau":1.0', '"tau":1' + "0" * 400), "graph.nodes[3].tau",
        "too large for a 64-bit float", "tau 10^400 written as an integer")

    # Tensor contents (checksum recomputed).
    add("gates_as_i32.lgn", set_tensor("layers.0.gates", np.array([1, 6, 9, 14], "<i4")), "layers.0.gates",
        "expected uint8, got int32", "gate ids stored as I32")
    add("feature_index_as_f32.lgn", set_tensor("encoder.feature_index", np.array([0, 1, 2, 2], "<f4")),
        "encoder.feature_index", "expected int32, got float32", "feature indices stored as F32")
    add("threshold_as_i32.lgn", set_tensor("encoder.threshold", np.array([0, 0, 0, 1], "<i4")),
        "encoder.threshold", "expected float32, got int32", "thresholds stored as I32")
    add("wire_a_too_short.lgn", set_tensor("layers.0.wire_a", np.array([0, 1, 2], "<i4")), "layers.0.wire_a",
        "wrong length (expected 4, got 3)", "layer 0 has 4 gates but 3 first inputs")
    add("threshold_too_long.lgn", set_tensor("encoder.threshold", np.zeros(5, "<f4")), "encoder.threshold",
        "wrong length (expected 4, got 5)", "5 thresholds for 4 input bits")
    add("wire_equals_width.lgn", set_element("layers.1.wire_b", 0, 4), "layers.1.wire_b",
        "expected < 4, got 4", "layer 1 reads input 4 of a layer of width 4")
    add("wire_past_width.lgn", set_element("layers.0.wire_a", 3, 1000), "layers.0.wire_a",
        "expected < 4, got 1000", "layer 0 reads input bit 1000 of 4")
    add("wire_int32_max.lgn", set_element("layers.0.wire_b", 0, 2**31 - 1), "layers.0.wire_b",
        "expected < 4, got 2147483647", "wire index 2^31 - 1")
    add("wire_negative.lgn", set_element("layers.1.wire_a", 1, -1), "layers.1.wire_a",
        "negative index (expected >= 0, got -1)", "wire index -1")
    add("wire_int32_min.lgn", set_element("layers.0.wire_a", 0, -2**31), "layers.0.wire_a",
        "got -2147483648", "wire index -2^31")
    add("gate_16.lgn", set_element("layers.0.gates", 2, 16), "layers.0.gates", "expected <= 15, got 16",
        "gate id 16")
    add("gate_255.lgn", set_element("layers.1.gates", 1, 255), "layers.1.gates", "expected <= 15, got 255",
        "gate id 255")
    add("feature_index_equals_n_features.lgn", set_element("encoder.feature_index", 3, 3),
        "encoder.feature_index", "expected < 3, got 3", "input bit reads feature 3 of 3")
    add("feature_index_negative.lgn", set_element("encoder.feature_index", 0, -1), "encoder.feature_index",
        "negative index", "input bit reads feature -1")
    add("threshold_nan.lgn", set_element("encoder.threshold", 1, np.nan), "encoder.threshold", "got nan",
        "threshold NaN")
    add("threshold_positive_infinity.lgn", set_element("encoder.threshold", 2, np.inf), "encoder.threshold",
        "got inf", "threshold +inf")
    add("threshold_negative_infinity.lgn", set_element("encoder.threshold", 0, -np.inf), "encoder.threshold",
        "got -inf", "threshold -inf")

    def empty_encoder(tensors, graph):
        tensors["encoder.feature_index"] = np.zeros(0, "<i4")
        tensors["encoder.threshold"] = np.zeros(0, "<f4")
        graph["nodes"][0]["n_outputs"] = 0
        graph["nodes"][1]["n_inputs"] = 0

    add("encoder_no_bits.lgn", edit_tensors(empty_encoder), "encoder.feature_index",
        "encoder has no input bits", "encoder with 0 input bits")

    def empty_last_layer(tensors, graph):
        for kind, dtype in (("wire_a", "<i4"), ("wire_b", "<i4"), ("gates", "u1")):
            tensors[f"layers.1.{kind}"] = np.zeros(0, dtype)
        graph["nodes"][2]["n_outputs"] = 0
        graph["nodes"][3]["n_inputs"] = 0

    add("layer_no_neurons.lgn", edit_tensors(empty_last_layer), "layers.1.gates", "layer has no neurons",
        "last logic layer of width 0")

    for name, *_ in cases:
        if not name.endswith(".lgn"):
            raise ValueError(f"hostile file names must end in .lgn, got {name}")
    if any(data is None for _, data, *_ in cases):
        raise ValueError("a case could not be built from the golden file")
    return cases


def write_cases(folder: Path) -> dict:
    """Write every case file and the expectations table into `folder`, and return the table."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = build_cases()
    names = [name for name, *_ in cases]
    if len(set(names)) != len(names):
        raise ValueError("duplicate case names")

    # Remove files of cases that no longer exist, so the folder and the table agree.
    for stale in folder.glob("*.lgn"):
        if stale.is_file() and stale.name not in names:
            stale.unlink()

    expectations = {}
    for name, data, field, fragment, description in cases:
        (folder / name).write_bytes(data)
        expectations[name] = {"field": field, "message": fragment, "description": description}

    # A model path that is a folder. Git keeps the folder because of the file inside.
    folder_case = folder / FOLDER_CASE_NAME
    if folder_case.is_file():
        folder_case.unlink()
    folder_case.mkdir(exist_ok=True)
    (folder_case / "README.txt").write_text(
        "This folder stands in for a model path that is a folder, not a file.\n")
    expectations[FOLDER_CASE_NAME] = {"field": "file", "message": "path is a folder",
                                      "description": "the model path is a folder"}

    expectations = dict(sorted(expectations.items()))
    (folder / EXPECTATIONS_NAME).write_text(json.dumps(expectations, indent=2) + "\n")
    return expectations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE,
                        help="folder to write the .lgn files and expected.json into "
                             "(default: this script's folder)")
    arguments = parser.parse_args()
    expectations = write_cases(arguments.out)
    print(f"wrote {len(expectations)} cases to {arguments.out}")


if __name__ == "__main__":
    main()
