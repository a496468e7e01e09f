"""Reader and writer of `.lgn` model files, format version 1.

A `.lgn` file is a safetensors file: an 8-byte little-endian header length N,
N bytes of UTF-8 JSON header, then the data section. The header's
`__metadata__` contains the graph description and a SHA-256 of the data
section. The tensors contain the encoder thresholds, the wiring and the gate
ids. docs/format.md is the normative specification, and this module
implements it and nothing else.

The reader never hands unchecked bytes to numpy or compiled code: it checks
the header's structure, every tensor's dtype, shape and offsets, the checksum
and every graph invariant first, and raises ModelFileError naming the field,
the expected value and the actual value.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
import struct
import sys
from pathlib import Path

import numpy as np
import safetensors.numpy

from . import __version__
from .atomic_write import write_file_atomic
from .errors import ModelFileError
from .network import LogicLayer, Network, ThresholdEncoder, validate_network

FORMAT_NAME = "lgn"
FORMAT_VERSION = 1

# A version-1 header stays far below this: it is the graph description plus
# about 80 bytes per tensor. The cap keeps a hostile length field from making
# the reader allocate gigabytes before it has checked anything.
MAX_HEADER_BYTES = 16 * 1024 * 1024

_DTYPES = {"I32": np.dtype("<i4"), "F32": np.dtype("<f4"), "U8": np.dtype("u1")}
_DTYPE_NAMES = {dtype.str: name for name, dtype in _DTYPES.items()}
_METADATA_KEYS = {"format", "format_version", "graph", "data_sha256"}

# Error messages quote at most this many characters of an offending value, so
# a hostile 16 MiB string does not end up in a log line.
_MAX_QUOTED_CHARS = 200

# CPython's default sys.get_int_max_str_digits().
_MAX_INTEGER_DIGITS = 4300


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

def network_tensors(network: Network) -> dict[str, np.ndarray]:
    """Return the tensors of a network, keyed by their names in the file."""
    tensors = {
        "encoder.feature_index": np.ascontiguousarray(network.encoder.feature_index, dtype="<i4"),
        "encoder.threshold": np.ascontiguousarray(network.encoder.threshold, dtype="<f4"),
    }
    for k, layer in enumerate(network.layers):
        tensors[f"layers.{k}.wire_a"] = np.ascontiguousarray(layer.wire_a, dtype="<i4")
        tensors[f"layers.{k}.wire_b"] = np.ascontiguousarray(layer.wire_b, dtype="<i4")
        tensors[f"layers.{k}.gates"] = np.ascontiguousarray(layer.gates, dtype="u1")
    return tensors


def graph_description(network: Network) -> dict:
    """Return the JSON graph description stored under `__metadata__.graph`."""
    nodes = [{
        "op": "Threshold",
        "name": "encoder",
        "n_inputs": network.n_features,
        "n_outputs": network.encoder.n_bits,
        "feature_index": "encoder.feature_index",
        "threshold": "encoder.threshold",
    }]
    n_inputs = network.encoder.n_bits
    for k, layer in enumerate(network.layers):
        nodes.append({
            "op": "LogicLayer",
            "name": f"layers.{k}",
            "n_inputs": n_inputs,
            "n_outputs": layer.width,
            "wire_a": f"layers.{k}.wire_a",
            "wire_b": f"layers.{k}.wire_b",
            "gates": f"layers.{k}.gates",
        })
        n_inputs = layer.width
    nodes.append({
        "op": "GroupSum",
        "name": "head",
        "n_inputs": n_inputs,
        "n_outputs": network.n_classes,
        "tau": float(network.tau),
    })
    return {
        "producer": {"name": "lgnrt", "version": __version__},
        "inputs": {"n_features": network.n_features},
        "nodes": nodes,
        "outputs": {"n_classes": network.n_classes, "class_names": network.class_names},
        "training": network.training,
    }


def encode_network(network: Network) -> bytes:
    """Serialise a validated network to the bytes of a `.lgn` file.

    The bytes are deterministic: the same network always gives the same file.
    safetensors' own writer emits metadata keys in hash-map order, so this
    writes the (simple) container itself; tests check that safetensors reads
    the result.
    """
    validate_network(network)
    tensors = network_tensors(network)

    # 4-byte tensors first, then the 1-byte gate ids, so every tensor starts
    # at an offset that is a multiple of its item size.
    names = [n for n in tensors if tensors[n].itemsize == 4] + [n for n in tensors if tensors[n].itemsize == 1]
    header: dict = {}
    chunks = []
    offset = 0
    for name in names:
        raw = tensors[name].tobytes()
        header[name] = {"dtype": _DTYPE_NAMES[tensors[name].dtype.str], "shape": [tensors[name].shape[0]],
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    data = b"".join(chunks)

    graph = json.dumps(graph_description(network), sort_keys=True, separators=(",", ":"), allow_nan=False)
    header["__metadata__"] = {
        "data_sha256": hashlib.sha256(data).hexdigest(),
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "graph": graph,
    }
    header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
    # Pad with spaces so the data section starts 8-byte aligned, as safetensors does.
    header_bytes += b" " * (-(8 + len(header_bytes)) % 8)
    return struct.pack("<Q", len(header_bytes)) + header_bytes + data


def save_network(network: Network, path: str | os.PathLike) -> None:
    """Write a network to `path` atomically (see atomic_write.write_file_atomic).

    A crash, a kill or a full disk during the save leaves any earlier file
    at `path` intact.
    """
    write_file_atomic(encode_network(network), path)


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def load_network(path: str | os.PathLike) -> Network:
    """Read and fully validate a `.lgn` file."""
    path = Path(path)
    try:
        # Checked before open() because opening a FIFO blocks until a writer appears.
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise ModelFileError("file", "path is a folder, not a model file", "a .lgn file", str(path))
        _require(stat.S_ISREG(mode), "file", "not a regular file", "a .lgn file", str(path))
        with open(path, "rb") as stream:
            return decode_network_stream(stream, os.fstat(stream.fileno()).st_size)
    except FileNotFoundError:
        raise FileNotFoundError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelFileError("file", "path is a folder, not a model file", "a .lgn file", str(path)) from None


def decode_network(data: bytes) -> Network:
    """Parse and validate the bytes of a `.lgn` file."""
    return decode_network_stream(io.BytesIO(data), len(data))


def decode_network_stream(stream, file_size: int) -> Network:
    """Parse and validate a `.lgn` file read from a binary stream of `file_size` bytes.

    The checks run in this order, each before anything that relies on it:
    header length, header JSON, metadata keys and format version, tensor
    layout against the file size, checksum of the data section, then the
    graph and every network invariant.
    """
    header_length = _read_header_length(stream, file_size)
    header_bytes = stream.read(header_length)
    _require(len(header_bytes) == header_length, "header", "file truncated inside the header",
             f"{header_length} bytes", f"{len(header_bytes)} bytes")
    header = _parse_header_json(header_bytes)
    metadata, layout = _split_header(header)
    # The format name and version come before the layout, so a file of a
    # newer version is reported as such rather than as a bad tensor entry.
    _check_metadata_fields(metadata)
    data_length = _check_layout(layout)
    available = file_size - 8 - header_length
    _require(available == data_length, "data", "data section size does not match the tensors",
             f"{data_length} bytes", f"{available} bytes")
    data = stream.read(data_length)
    _require(len(data) == data_length, "data", "file truncated inside the data section",
             f"{data_length} bytes", f"{len(data)} bytes")
    _check_checksum(metadata, data)
    tensors = _tensors_from_data(header_length, header_bytes, data)
    graph = _parse_graph(metadata["graph"])
    network = _network_from_graph(graph, tensors)
    validate_network(network)
    return network


def _require(condition: bool, field_name: str, problem: str, expected=None, actual=None) -> None:
    if not condition:
        raise ModelFileError(field_name, problem, _quote(expected), _quote(actual))


def _describe(value) -> str:
    """Return the repr and type of a value whose type is wrong, e.g. "'3' (str)"."""
    if value is None:
        return "nothing (missing or null)"
    return f"{value!r} ({type(value).__name__})"


def _quote(value):
    """Return `value`, or the start of its text form when that is too long to print."""
    if value is None:
        return None
    text = str(value)
    if len(text) <= _MAX_QUOTED_CHARS:
        return value
    return f"{text[:_MAX_QUOTED_CHARS]}... ({len(text)} characters)"


def _read_header_length(stream, file_size: int) -> int:
    prefix = stream.read(8)
    _require(len(prefix) == 8, "header_length", "file too short for the 8-byte header length",
             ">= 8 bytes", f"{len(prefix)} bytes")
    (header_length,) = struct.unpack("<Q", prefix)
    _require(header_length >= 2, "header_length", "header too short", ">= 2 bytes", header_length)
    _require(header_length <= MAX_HEADER_BYTES, "header_length",
             "header too large; the file is probably not an .lgn model",
             f"<= {MAX_HEADER_BYTES} bytes", header_length)
    _require(8 + header_length <= file_size, "header_length", "header extends past the end of the file",
             f"<= {file_size - 8} bytes", header_length)
    return header_length


def _parse_json(raw: bytes | str, field_name: str):
    """Parse strict JSON: no duplicate keys, no NaN or Infinity, no float overflow.

    Errors name `field_name`, the part of the file the JSON text came from.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            bad = raw[error.start:error.start + 4].hex(" ")
            raise ModelFileError(field_name, f"not valid UTF-8 at byte {error.start}", "UTF-8 text",
                                 f"bytes {bad}") from None

    def reject_duplicate_keys(pairs):
        result = {}
        for key, value in pairs:
            _require(key not in result, field_name, "duplicate JSON key", "unique keys", repr(key))
            result[key] = value
        return result

    def reject_constant(name):
        raise ModelFileError(field_name, "JSON contains a non-standard number", "finite numbers", name)

    def parse_float(text):
        value = float(text)
        _require(math.isfinite(value), field_name, "JSON number overflows a 64-bit float", "finite numbers", text)
        return value

    def parse_int(text):
        # Converting a decimal string to int takes time quadratic in its
        # length, so Python 3.11+ raises ValueError past 4300 digits. The same
        # cap here gives one error on every Python version.
        n_digits = len(text.lstrip("-"))
        _require(n_digits <= _MAX_INTEGER_DIGITS, field_name, "JSON integer literal has too many digits",
                 f"at most {_MAX_INTEGER_DIGITS} digits", f"{n_digits} digits")
        try:
            return int(text)
        except ValueError:  # the process set a lower limit with sys.set_int_max_str_digits()
            raise ModelFileError(field_name, "JSON integer literal has too many digits",
                                 f"at most {sys.get_int_max_str_digits()} digits", f"{n_digits} digits") from None

    try:
        return json.loads(raw, object_pairs_hook=reject_duplicate_keys, parse_constant=reject_constant,
                          parse_float=parse_float, parse_int=parse_int)
    except json.JSONDecodeError as error:
        raise ModelFileError(field_name, "not valid JSON", "a JSON document",
                             f"{error.msg} at position {error.pos}") from None
    except RecursionError:
        limit = sys.getrecursionlimit()
        raise ModelFileError(field_name, "JSON nested too deeply",
                             f"nesting within the recursion limit of {limit} frames", "deeper nesting") from None


def _parse_header_json(header_bytes: bytes) -> dict:
    # safetensors pads the header with trailing spaces to an 8-byte boundary.
    header = _parse_json(header_bytes, "header")
    _require(isinstance(header, dict), "header", "must be a JSON object", "object", type(header).__name__)
    return header


def _split_header(header: dict) -> tuple[dict, dict]:
    metadata = header.get("__metadata__")
    _require(metadata is not None, "__metadata__", "missing; this is not an .lgn file", "an object", None)
    _require(isinstance(metadata, dict), "__metadata__", "must be an object", "object", type(metadata).__name__)
    # Python's json module accepts escaped lone surrogates such as "\ud800",
    # but they have no UTF-8 form and the safetensors parser rejects them.
    for name in header:
        _require(_is_unicode(name), f"tensor {name!r}", "name is not valid Unicode (lone surrogate)",
                 "UTF-8 encodable text", repr(name))
    for key, value in metadata.items():
        _require(_is_unicode(key), "__metadata__", "key is not valid Unicode (lone surrogate)",
                 "UTF-8 encodable text", repr(key))
        _require(not isinstance(value, str) or _is_unicode(value), f"__metadata__.{key}",
                 "value is not valid Unicode (lone surrogate)", "UTF-8 encodable text", repr(value))
    layout = {name: entry for name, entry in header.items() if name != "__metadata__"}
    return metadata, layout


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_layout(layout: dict) -> int:
    """Check dtypes, shapes and offsets; return the data section's length.

    Offsets must tile the data section exactly: sorted by start, each tensor
    begins where the previous one ends, with no gap and no overlap.
    """
    spans = []
    for name, entry in layout.items():
        field_name = f"tensor {name!r}"
        _require(isinstance(entry, dict), field_name, "entry must be an object", "object", type(entry).__name__)
        _require(set(entry) == {"dtype", "shape", "data_offsets"}, field_name, "wrong keys",
                 "dtype, shape, data_offsets", ", ".join(sorted(entry)))
        dtype = entry["dtype"]
        _require(isinstance(dtype, str) and dtype in _DTYPES, f"{field_name}.dtype", "unsupported dtype",
                 "I32, F32 or U8", dtype if isinstance(dtype, str) else _describe(dtype))
        shape = entry["shape"]
        _require(isinstance(shape, list) and len(shape) == 1, f"{field_name}.shape", "must be one-dimensional",
                 "[length]", shape)
        _require(_is_count(shape[0]), f"{field_name}.shape", "length must be a non-negative integer",
                 ">= 0", _describe(shape[0]))
        offsets = entry["data_offsets"]
        _require(isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(v) for v in offsets),
                 f"{field_name}.data_offsets", "must be two non-negative integers", "[begin, end]", offsets)
        begin, end = offsets
        _require(begin <= end, f"{field_name}.data_offsets", "begin is after end", f"<= {end}", begin)
        n_bytes = shape[0] * _DTYPES[dtype].itemsize
        _require(end - begin == n_bytes, f"{field_name}.data_offsets", "size does not match dtype and shape",
                 f"{n_bytes} bytes", f"{end - begin} bytes")
        spans.append((begin, end, name))
    spans.sort()
    position = 0
    for begin, end, name in spans:
        _require(begin == position, f"tensor {name!r}.data_offsets",
                 "overlaps another tensor" if begin < position else "leaves a gap before it",
                 f"begin {position}", f"begin {begin}")
        position = end
    return position


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62


def _check_metadata_fields(metadata: dict) -> None:
    unknown = sorted(set(metadata) - _METADATA_KEYS)
    _require(not unknown, "__metadata__", "unknown keys", ", ".join(sorted(_METADATA_KEYS)), ", ".join(unknown))
    for key in sorted(_METADATA_KEYS):
        _require(isinstance(metadata.get(key), str), f"__metadata__.{key}", "missing or not a string",
                 "a string", _describe(metadata.get(key)))
    _require(metadata["format"] == FORMAT_NAME, "__metadata__.format", "not an .lgn file",
             FORMAT_NAME, metadata["format"])
    _require(metadata["format_version"] == str(FORMAT_VERSION), "__metadata__.format_version",
             "unsupported format version; upgrade lgnrt to read newer files",
             str(FORMAT_VERSION), metadata["format_version"])


def _check_checksum(metadata: dict, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    _require(metadata["data_sha256"] == digest, "__metadata__.data_sha256",
             "checksum does not match the data; the file is corrupt", digest, metadata["data_sha256"])


def _tensors_from_data(header_length: int, header_bytes: bytes, data: bytes) -> dict[str, np.ndarray]:
    # The layout is already checked, so safetensors parses a known-good buffer;
    # copies make the arrays writable and independent of the file bytes. The
    # except clause turns any safetensors rule that the checks above do not
    # mirror into a ModelFileError.
    try:
        loaded = safetensors.numpy.load(struct.pack("<Q", header_length) + header_bytes + data)
    except safetensors.SafetensorError as error:
        raise ModelFileError("header", "rejected by the safetensors parser", "a valid safetensors file",
                             str(error)) from None
    return {name: np.array(array, copy=True) for name, array in loaded.items()}


def _parse_graph(raw: str) -> dict:
    graph = _parse_json(raw, "__metadata__.graph")
    _require(isinstance(graph, dict), "graph", "must be a JSON object", "object", type(graph).__name__)
    for key in ("producer", "inputs", "nodes", "outputs", "training"):
        _require(key in graph, f"graph.{key}", "missing", "present", None)
    for key in ("inputs", "outputs", "training", "producer"):
        _require(isinstance(graph[key], dict), f"graph.{key}", "must be an object", "object",
                 type(graph[key]).__name__)
    _require(isinstance(graph["nodes"], list), "graph.nodes", "must be a list", "list",
             type(graph["nodes"]).__name__)
    return graph


def _tensor(tensors: dict, name, field_name: str) -> np.ndarray:
    _require(isinstance(name, str) and name in tensors, field_name, "names a tensor that is not in the file",
             "a tensor name", name)
    return tensors[name]


def _node(nodes: list, index: int, op: str) -> dict:
    _require(index < len(nodes), "graph.nodes", "too few nodes", f"a {op} node at index {index}", len(nodes))
    node = nodes[index]
    _require(isinstance(node, dict), f"graph.nodes[{index}]", "must be an object", "object", type(node).__name__)
    _require(node.get("op") == op, f"graph.nodes[{index}].op", "unexpected operator", op, node.get("op"))
    return node


def _int_attribute(node: dict, key: str, field_name: str) -> int:
    value = node.get(key)
    _require(isinstance(value, int) and not isinstance(value, bool), f"{field_name}.{key}",
             "must be an integer", "an integer", _describe(value))
    return value


def _network_from_graph(graph: dict, tensors: dict) -> Network:
    nodes = graph["nodes"]
    _require(len(nodes) >= 3, "graph.nodes", "needs an encoder, at least one logic layer and a head",
             ">= 3 nodes", len(nodes))
    n_features = graph["inputs"].get("n_features")
    _require(isinstance(n_features, int) and not isinstance(n_features, bool) and n_features >= 1,
             "graph.inputs.n_features", "must be a positive integer", ">= 1", _describe(n_features))

    encoder_node = _node(nodes, 0, "Threshold")
    encoder = ThresholdEncoder(
        n_features=n_features,
        feature_index=_tensor(tensors, encoder_node.get("feature_index"), "graph.nodes[0].feature_index"),
        threshold=_tensor(tensors, encoder_node.get("threshold"), "graph.nodes[0].threshold"),
    )
    _require(_int_attribute(encoder_node, "n_inputs", "graph.nodes[0]") == n_features,
             "graph.nodes[0].n_inputs", "does not match inputs.n_features", n_features, encoder_node["n_inputs"])
    _require(_int_attribute(encoder_node, "n_outputs", "graph.nodes[0]") == encoder.feature_index.shape[0],
             "graph.nodes[0].n_outputs", "does not match the encoder tensors",
             encoder.feature_index.shape[0], encoder_node["n_outputs"])

    layers = []
    width = encoder.feature_index.shape[0]
    for index in range(1, len(nodes) - 1):
        node = _node(nodes, index, "LogicLayer")
        prefix = f"graph.nodes[{index}]"
        layer = LogicLayer(
            wire_a=_tensor(tensors, node.get("wire_a"), f"{prefix}.wire_a"),
            wire_b=_tensor(tensors, node.get("wire_b"), f"{prefix}.wire_b"),
            gates=_tensor(tensors, node.get("gates"), f"{prefix}.gates"),
        )
        _require(_int_attribute(node, "n_inputs", prefix) == width, f"{prefix}.n_inputs",
                 "does not match the previous node's outputs", width, node["n_inputs"])
        _require(_int_attribute(node, "n_outputs", prefix) == layer.gates.shape[0], f"{prefix}.n_outputs",
                 "does not match the gates tensor", layer.gates.shape[0], node["n_outputs"])
        layers.append(layer)
        width = layer.gates.shape[0]

    head = _node(nodes, len(nodes) - 1, "GroupSum")
    prefix = f"graph.nodes[{len(nodes) - 1}]"
    _require(_int_attribute(head, "n_inputs", prefix) == width, f"{prefix}.n_inputs",
             "does not match the last layer's width", width, head["n_inputs"])
    n_classes = _int_attribute(head, "n_outputs", prefix)
    outputs = graph["outputs"]
    outputs_classes = outputs.get("n_classes")
    _require(isinstance(outputs_classes, int) and not isinstance(outputs_classes, bool)
             and outputs_classes == n_classes, "graph.outputs.n_classes",
             "does not match the GroupSum node", n_classes, outputs_classes)
    tau = head.get("tau")
    _require(isinstance(tau, (int, float)) and not isinstance(tau, bool), f"{prefix}.tau",
             "must be a number", "a number", _describe(tau))
    try:
        tau = float(tau)
    except OverflowError:
        raise ModelFileError(f"{prefix}.tau", "too large for a 64-bit float", "a finite number",
                             _quote(tau)) from None
    return Network(
        encoder=encoder,
        layers=layers,
        n_classes=n_classes,
        tau=tau,
        class_names=outputs.get("class_names"),
        training=graph["training"],
    )
