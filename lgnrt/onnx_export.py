"""Export of a committed logic gate network to a standard ONNX model.

The exported graph uses only operators of the default ai.onnx domain, so any
ONNX runtime that implements the chosen opset can run it. Gate ids and wiring
are initializer tensors with the same names as in a `.lgn` file
(`layers.{k}.gates`, `layers.{k}.wire_a`, `layers.{k}.wire_b`). Every logic
layer adds the same fixed set of nodes, so the graph grows with the number of
layers, not gates. docs/onnx.md describes the inputs, outputs and limits.

Every gate is evaluated with its algebraic normal form over GF(2),
`k0 ^ (a & (k1 ^ (k3 & b))) ^ (k2 & b)`, where the per-neuron constants k0..k3
are looked up from the gate ids inside the graph. Two formulations exist:

* "packed" (opset 18 or later): activations are uint64 words of shape
  (width, words). Bit t of word j in row i is neuron i's output for sample
  `t * words + j`, and the batch is padded to a multiple of 64 samples.
  It needs BitwiseAnd and BitwiseXor, which opset 18 introduced.
* "bool" (opset 13 or later): activations are bool tensors of shape
  (width, n_samples) evaluated with And and Xor. Runtimes and accelerators
  without 64-bit bitwise operators can run it, but it moves 8 times more
  bytes per gate.

Activations keep the neuron axis first in both formulations, so the wiring
Gathers on axis 0 copy whole contiguous rows.

This module imports onnx lazily and never imports torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import __version__
from .atomic_write import write_file_atomic
from .gates import ANF
from .network import Network, validate_network

FORMULATIONS = ("packed", "bool")

# The lowest opset with every operator each formulation uses. The "bool"
# graph needs ArgMax's select_last_index (opset 12) and the opset-13 forms of
# Unsqueeze and Squeeze that take axes as an input. The "packed" graph adds
# BitwiseAnd and BitwiseXor, which first appear in opset 18.
MIN_OPSET = {"bool": 13, "packed": 18}

INPUT_DTYPES = ("float32", "float64", "uint8")

WORD_BITS = 64

_INSTALL_HINT = "pip install lgnrt[onnx]"


def export_onnx(network_or_model, path=None, *, opset: int | None = None,
                input_dtype: str = "float32", formulation: str = "packed"):
    """Build an ONNX model that computes the network's class counts and labels.

    `network_or_model` is a `lgnrt.Network` or any object whose `network`
    attribute is one, such as a model returned by `lgnrt.load`. The model's
    input is "features", of shape [N, n_features] and dtype `input_dtype`.
    Output "counts" (int32 [N, n_classes]) is the number of ones in each
    class's block of the last layer. Output "labels" (int64 [N]) is the
    argmax of the counts, with ties going to the lowest class index.

    `opset` defaults to the lowest opset the formulation needs (18 for
    "packed", 13 for "bool"). When `path` is given the model is also written
    there atomically: an exception leaves any earlier file at `path` intact.

    Raises TypeError or ValueError for invalid arguments, ModelFileError for a
    network that violates an invariant, and ImportError when onnx is missing.
    """
    network = _network_from(network_or_model)
    if formulation not in FORMULATIONS:
        raise ValueError(
            f"invalid formulation {formulation!r}. Pass one of: {', '.join(FORMULATIONS)}"
        )
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(
            f"invalid input_dtype {input_dtype!r}. Pass one of: {', '.join(INPUT_DTYPES)}"
        )
    onnx = _import_onnx()
    opset = _check_opset(opset, formulation, onnx.defs.onnx_opset_version())
    validate_network(network)

    model = _GraphBuilder(onnx, network, input_dtype, formulation).build(opset)
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        write_file_atomic(model.SerializeToString(), Path(os.fspath(path)))
    return model


def _network_from(network_or_model) -> Network:
    if isinstance(network_or_model, Network):
        return network_or_model
    network = getattr(network_or_model, "network", None)
    if isinstance(network, Network):
        return network
    raise TypeError(
        "export_onnx expects an lgnrt.Network or a model with a .network attribute, "
        f"got {type(network_or_model).__name__}"
    )


def _import_onnx():
    try:
        import onnx
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs the onnx package, which is not installed. Install it with: {_INSTALL_HINT}"
        ) from error
    return onnx


def _check_opset(opset, formulation: str, latest_opset: int) -> int:
    minimum = MIN_OPSET[formulation]
    if opset is None:
        return minimum
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an integer, got {type(opset).__name__}")
    opset = int(opset)
    if opset < minimum:
        raise ValueError(
            f"opset {opset} is too old for the {formulation!r} formulation, which needs "
            f"opset {minimum} or later. Pass opset >= {minimum}"
            + (" or formulation='bool' (opset 13 or later)." if formulation == "packed" else ".")
        )
    if opset > latest_opset:
        raise ValueError(
            f"opset {opset} is newer than {latest_opset}, the latest opset the installed "
            f"onnx package defines. Pass opset <= {latest_opset} or upgrade onnx."
        )
    return opset


class _GraphBuilder:
    """Collects nodes and initializers of one exported graph."""

    def __init__(self, onnx, network: Network, input_dtype: str, formulation: str):
        self.onnx = onnx
        self.network = network
        self.input_dtype = input_dtype
        self.formulation = formulation
        self.nodes = []
        self.initializers = []

    # -- small helpers -----------------------------------------------------

    def constant(self, name: str, array) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op_type: str, inputs: list[str], output: str, **attributes) -> str:
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def shape_from(self, name: str, parts: list) -> str:
        """Concatenate int64 shape parts into a shape tensor.

        Ints become constants, and strings name int64 [1] tensors of the graph.
        """
        inputs = []
        for index, part in enumerate(parts):
            if isinstance(part, str):
                inputs.append(part)
            else:
                inputs.append(self.constant(f"{name}.dim{index}", np.array([part], np.int64)))
        return self.node("Concat", inputs, name, axis=0)

    # -- whole graph -------------------------------------------------------

    def build(self, opset: int):
        helper = self.onnx.helper
        TensorProto = self.onnx.TensorProto
        network = self.network
        n_classes = network.n_classes

        if self.formulation == "packed":
            last = self._layers(self._pack(self._encode()), "BitwiseAnd", "BitwiseXor")
            counts = self._count_packed(last)
        else:
            last = self._layers(self._encode(), "And", "Xor")
            counts = self._count_bool(last)
        self.node("ArgMax", [counts], "labels", axis=1, keepdims=0, select_last_index=0)

        elem_type = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE,
                     "uint8": TensorProto.UINT8}[self.input_dtype]
        graph = helper.make_graph(
            self.nodes, "lgnrt_logic_gate_network",
            [helper.make_tensor_value_info("features", elem_type, ["N", network.n_features])],
            [helper.make_tensor_value_info("counts", TensorProto.INT32, ["N", n_classes]),
             helper.make_tensor_value_info("labels", TensorProto.INT64, ["N"])],
            self.initializers,
            doc_string=(
                "counts[n, c]: number of ones in class c's block of the last logic layer "
                "(the score is counts / tau). labels[n]: argmax of counts, ties to the "
                "lowest class index."
            ),
        )
        opset_ids = [helper.make_opsetid("", opset)]
        # The lowest IR version that can carry this opset, so that older
        # runtimes accept the file.
        model = helper.make_model(graph, opset_imports=opset_ids,
                                  ir_version=helper.find_min_ir_version_for(opset_ids))
        model.producer_name = "lgnrt"
        model.producer_version = __version__
        model.doc_string = "Logic gate network exported by lgnrt."
        metadata = {
            "class_names": json.dumps(network.class_names),
            "tau": repr(float(network.tau)),
            "n_classes": str(n_classes),
            "n_features": str(network.n_features),
            "n_gates": str(network.n_gates),
            "n_layers": str(len(network.layers)),
            "input_dtype": self.input_dtype,
            "formulation": self.formulation,
        }
        helper.set_model_props(model, metadata)
        return model

    # -- encoder -----------------------------------------------------------

    def _encode(self) -> str:
        """Binarise the features into bool bits of shape (n_bits, n_samples).

        Also sets `self.n_samples`, the batch size as an int64 [1] tensor,
        for the later shape computations.
        """
        encoder = self.network.encoder
        features = "features"
        if self.input_dtype == "uint8":
            # uint8 to float32 is exact, so the float32 comparison below still
            # matches the float64 reference.
            features = self.node("Cast", [features], "encoder.features_float32",
                                 to=self.onnx.TensorProto.FLOAT)

        shape = self.node("Shape", [features], "batch.shape")
        self.n_samples = self.node("Gather", [shape, self.constant("batch.axis0", np.array([0], np.int64))],
                                   "batch.n_samples", axis=0)

        by_feature = self.node("Transpose", [features], "encoder.features_by_feature", perm=[1, 0])
        index = self.constant("encoder.feature_index", encoder.feature_index)
        selected = self.node("Gather", [by_feature, index], "encoder.selected", axis=0)

        threshold = self.constant("encoder.threshold", encoder.threshold)
        column = self.node("Unsqueeze", [threshold, self.constant("encoder.axis1", np.array([1], np.int64))],
                           "encoder.threshold_column")
        if self.input_dtype == "float64":
            # float32 thresholds widen to float64 exactly.
            column = self.node("Cast", [column], "encoder.threshold_float64", to=self.onnx.TensorProto.DOUBLE)
        # Strict comparison: a feature equal to its threshold gives bit 0.
        return self.node("Greater", [selected, column], "encoder.bits")

    def _pack(self, bits: str) -> str:
        """Pack bool bits (n_bits, n_samples) into uint64 words (n_bits, words).

        Also sets `self.words` and `self.n_padded` (n_samples rounded up to a
        multiple of 64) as int64 [1] tensors. Bits are assembled into bytes
        with MatMulInteger and bytes into words with a uint64 MatMul. Both
        accumulate exactly in integers, unlike ReduceSum on int64, which
        onnxruntime 1.32 rounds above 2**53.
        """
        TensorProto = self.onnx.TensorProto
        n_bits = self.network.encoder.n_bits

        word_bits = self.constant("batch.word_bits", np.array([WORD_BITS], np.int64))
        remainder = self.node("Mod", [self.n_samples, word_bits], "batch.remainder")
        missing = self.node("Sub", [word_bits, remainder], "batch.to_next_word")
        padding = self.node("Mod", [missing, word_bits], "batch.padding")
        self.n_padded = self.node("Add", [self.n_samples, padding], "batch.n_padded")
        self.words = self.node("Div", [self.n_padded, word_bits], "batch.words")

        as_bytes = self.node("Cast", [bits], "pack.bits_uint8", to=TensorProto.UINT8)
        # The padding samples are zeros. Samples never mix in a logic layer,
        # so their results are computed and then sliced away.
        pads = self.shape_from("pack.pads", [0, 0, 0, padding])
        padded = self.node("Pad", [as_bytes, pads], "pack.bits_padded")
        # Sample t * words + j, with t = 8 * byte + bit, sits at [i, byte, bit, j].
        bits_shape = self.shape_from("pack.bits_shape", [n_bits, 8, 8, self.words])
        grouped = self.node("Reshape", [padded, bits_shape], "pack.bits_grouped")
        bit_values = (np.uint8(1) << np.arange(8, dtype=np.uint8)).reshape(1, 8)
        byte_values = self.node("MatMulInteger", [self.constant("pack.bit_values", bit_values), grouped],
                                "pack.byte_values")
        byte_values = self.node("Cast", [byte_values], "pack.byte_values_uint64", to=TensorProto.UINT64)
        bytes_shape = self.shape_from("pack.bytes_shape", [n_bits, 8, self.words])
        byte_values = self.node("Reshape", [byte_values, bytes_shape], "pack.byte_values_grouped")
        byte_weights = (np.uint64(1) << (np.uint64(8) * np.arange(8, dtype=np.uint64))).reshape(1, 8)
        words = self.node("MatMul", [self.constant("pack.byte_weights", byte_weights), byte_values],
                          "pack.words_3d")
        axis1 = self.constant("pack.axis1", np.array([1], np.int64))
        return self.node("Squeeze", [words, axis1], "encoder.words")

    # -- logic layers ------------------------------------------------------

    def _layers(self, values: str, and_op: str, xor_op: str) -> str:
        if self.formulation == "packed":
            ones = np.iinfo(np.uint64).max
            anf_table = np.where(ANF.astype(bool), np.uint64(ones), np.uint64(0)).astype(np.uint64)
        else:
            anf_table = ANF.astype(bool)
        # One [16, 1] lookup table per ANF coefficient, shared by all layers.
        tables = [self.constant(f"gates.anf_k{c}", anf_table[:, c:c + 1].copy()) for c in range(4)]

        for k, layer in enumerate(self.network.layers):
            prefix = f"layers.{k}"
            gate_ids = self.node("Cast", [self.constant(f"{prefix}.gates", layer.gates)],
                                 f"{prefix}.gates_int32", to=self.onnx.TensorProto.INT32)
            k0, k1, k2, k3 = (self.node("Gather", [tables[c], gate_ids], f"{prefix}.anf_k{c}", axis=0)
                              for c in range(4))
            wire_a = self.constant(f"{prefix}.wire_a", layer.wire_a)
            wire_b = self.constant(f"{prefix}.wire_b", layer.wire_b)
            a = self.node("Gather", [values, wire_a], f"{prefix}.a", axis=0)
            b = self.node("Gather", [values, wire_b], f"{prefix}.b", axis=0)

            # k0 ^ k1 a ^ k2 b ^ k3 a b, factored as k0 ^ (a & (k1 ^ (k3 & b))) ^ (k2 & b).
            k3_b = self.node(and_op, [k3, b], f"{prefix}.k3_b")
            a_factor = self.node(xor_op, [k1, k3_b], f"{prefix}.a_factor")
            a_terms = self.node(and_op, [a, a_factor], f"{prefix}.a_terms")
            b_term = self.node(and_op, [k2, b], f"{prefix}.b_term")
            non_constant = self.node(xor_op, [a_terms, b_term], f"{prefix}.non_constant")
            values = self.node(xor_op, [k0, non_constant], f"{prefix}.output")
        return values

    # -- GroupSum head -----------------------------------------------------

    def _count_bool(self, last: str) -> str:
        """Count ones per class block of bool outputs (width, n_samples)."""
        n_classes = self.network.n_classes
        block = self.network.layers[-1].width // n_classes
        as_bytes = self.node("Cast", [last], "head.bits_uint8", to=self.onnx.TensorProto.UINT8)
        blocks = self.node("Reshape", [as_bytes, self.shape_from("head.blocks_shape", [n_classes, block,
                                                                                        self.n_samples])],
                           "head.blocks")
        # MatMulInteger accumulates in int32, so counts stay exact for any width.
        ones = self.constant("head.ones", np.ones((1, block), np.uint8))
        counts = self.node("MatMulInteger", [ones, blocks], "head.counts_3d")
        counts = self.node("Squeeze", [counts, self.constant("head.axis1", np.array([1], np.int64))],
                           "head.counts_by_class")
        return self.node("Transpose", [counts], "counts", perm=[1, 0])

    def _count_packed(self, last: str) -> str:
        """Count ones per class block of packed outputs (width, words).

        The count stays in uint64 arithmetic, which onnxruntime 1.32 runs
        several times faster per byte than uint8 arithmetic. The word is split
        into `lanes` lanes of `lane_bits` bits each. Shift q moves bits
        q, q + lane_bits, ... to the low bit of every lane, and a uint64
        MatMul then sums each lane over the block in one pass. A lane holds
        counts up to 2**lane_bits - 1, so the lane is wide enough for the
        block size.
        """
        TensorProto = self.onnx.TensorProto
        n_classes = self.network.n_classes
        block = self.network.layers[-1].width // n_classes
        lane_bits = next(bits for bits in (8, 16, 32) if block < 2 ** bits)
        lanes = WORD_BITS // lane_bits

        words = self.node("Unsqueeze", [last, self.constant("head.axis0", np.array([0], np.int64))],
                          "head.words")
        shifts = np.arange(lane_bits, dtype=np.uint64).reshape(lane_bits, 1, 1)
        shifted = self.node("BitShift", [words, self.constant("head.bit_shifts", shifts)],
                            "head.shifted_words", direction="RIGHT")
        low_bits = sum(1 << (lane_bits * lane) for lane in range(lanes))
        spread = self.node("BitwiseAnd", [shifted, self.constant("head.lane_low_bits",
                                                                   np.array([low_bits], np.uint64))],
                           "head.spread_bits")

        # Each lane of spread[q, i, j] contains neuron i's bit q + lane_bits * lane.
        blocks = self.node("Reshape", [spread, self.shape_from("head.blocks_shape",
                                                               [lane_bits, n_classes, block, self.words])],
                           "head.blocks")
        ones = self.constant("head.ones", np.ones((1, block), np.uint64))
        lane_counts = self.node("MatMul", [ones, blocks], "head.lane_counts")

        lane_counts = self.node("Unsqueeze", [lane_counts, self.constant("head.axis0_again",
                                                                         np.array([0], np.int64))],
                                "head.lane_counts_5d")
        lane_shifts = (np.uint64(lane_bits) * np.arange(lanes, dtype=np.uint64)).reshape(lanes, 1, 1, 1, 1)
        counts = self.node("BitShift", [lane_counts, self.constant("head.lane_shifts", lane_shifts)],
                           "head.shifted_counts", direction="RIGHT")
        counts = self.node("BitwiseAnd", [counts, self.constant("head.lane_mask",
                                                                 np.array([2 ** lane_bits - 1], np.uint64))],
                           "head.counts_uint64")
        counts = self.node("Cast", [counts], "head.counts_int32", to=TensorProto.INT32)

        # counts[lane, q, c, 0, j] is class c for sample (lane_bits * lane + q) * words + j.
        counts = self.node("Transpose", [counts], "head.counts_by_sample", perm=[0, 1, 4, 2, 3])
        counts_shape = self.shape_from("head.counts_shape", [self.n_padded, n_classes])
        counts = self.node("Reshape", [counts, counts_shape], "head.counts_padded")
        start = self.constant("head.start", np.array([0], np.int64))
        slice_axis = self.constant("head.slice_axis", np.array([0], np.int64))
        return self.node("Slice", [counts, start, self.n_samples, slice_axis], "counts")
