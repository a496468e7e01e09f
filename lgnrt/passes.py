"""Graph passes over a Network and its compilation into a flat gate program.

The passes work on a `Graph`, a node-numbered view of a network: node 0 is
the constant 0, node 1 the constant 1, nodes 2 .. 2+n_inputs-1 are the
encoder's input bits, and the gates follow in layer order. A gate reads
only nodes numbered below its own layer, so the gates of one layer are
independent. Every pass therefore handles a whole layer with numpy at
once, which keeps loading a 48,000-gate network to milliseconds.

Each pass returns a new Graph with the same outputs on every input:

- "fold": constant gates, gates with constant inputs, pass-through gates
  (A, B) and gates whose inputs share one source become a constant, a
  direct reference to a source, or a NOT of a source.
- "not": NOT gates are absorbed into their consumers' truth tables
  (lgnrt.gates.negate_input_a/b); a NOT gate survives only as an output.
- "merge": gates with equal gate id and sources (after normalising input
  order with swap_inputs) and input bits with equal feature and threshold
  are computed once.
- "dead": gates no output depends on are removed. An input that a gate
  ignores is rewired to a source the gate already reads, so the ignored
  source can die too.

`compile_program` turns a Graph into the arrays of lgnrt._kernels.Program.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from .gates import N_GATES, TRUTH_TABLES, gate_id_from_truth_table, negate_input_a, negate_input_b, swap_inputs
from .network import Network

# Canonical order: folding first exposes NOT gates and duplicates, and the
# dead pass last removes everything the others disconnected.
PASS_ORDER = ("fold", "not", "merge", "dead")

NOT_A = 12  # gate id of f(a, b) = not a
NOT_B = 10
PASS_A = 3  # f(a, b) = a
PASS_B = 5

_NEGATE_A = np.array([negate_input_a(g) for g in range(N_GATES)], dtype=np.uint8)
_NEGATE_B = np.array([negate_input_b(g) for g in range(N_GATES)], dtype=np.uint8)
_SWAP = np.array([swap_inputs(g) for g in range(N_GATES)], dtype=np.uint8)
_TABLE_BITS = TRUTH_TABLES.astype(bool)
_DEPENDS_A = (_TABLE_BITS[:, 0] != _TABLE_BITS[:, 2]) | (_TABLE_BITS[:, 1] != _TABLE_BITS[:, 3])
_DEPENDS_B = (_TABLE_BITS[:, 0] != _TABLE_BITS[:, 1]) | (_TABLE_BITS[:, 2] != _TABLE_BITS[:, 3])


@dataclass
class Graph:
    """A network as numbered nodes; see the module docstring for the numbering."""

    input_feature: np.ndarray  # int32 (n_inputs,): feature each input bit reads
    input_threshold: np.ndarray  # float32 (n_inputs,)
    gate: np.ndarray  # uint8 (n_gates,)
    src_a: np.ndarray  # int64 (n_gates,): node ids
    src_b: np.ndarray  # int64 (n_gates,)
    present: np.ndarray  # bool (n_gates,): False once a pass removed the gate
    layer_bounds: list[tuple[int, int]]  # gate index range of each layer
    outputs: np.ndarray  # int64 (n_classes * group_size,): node ids, class-major
    n_classes: int

    @property
    def n_inputs(self) -> int:
        return int(self.input_feature.shape[0])

    @property
    def first_gate(self) -> int:
        return 2 + self.n_inputs

    @property
    def n_nodes(self) -> int:
        return self.first_gate + int(self.gate.shape[0])

    @property
    def n_gates(self) -> int:
        """Number of gates still present."""
        return int(np.count_nonzero(self.present))

    def copy(self) -> "Graph":
        return dataclasses.replace(
            self,
            gate=self.gate.copy(),
            src_a=self.src_a.copy(),
            src_b=self.src_b.copy(),
            present=self.present.copy(),
            outputs=self.outputs.copy(),
        )

    def live_gates(self, layer: int) -> np.ndarray:
        """Return the indices of the present gates of one layer."""
        start, end = self.layer_bounds[layer]
        return start + np.flatnonzero(self.present[start:end])


def graph_from_network(network: Network) -> Graph:
    """Number the nodes of a validated network."""
    encoder = network.encoder
    first_gate = 2 + encoder.n_bits
    gates, src_a, src_b, bounds = [], [], [], []
    previous_first = 2  # node id of the previous layer's first output
    gate_count = 0
    for layer in network.layers:
        gates.append(layer.gates.astype(np.uint8))
        src_a.append(previous_first + layer.wire_a.astype(np.int64))
        src_b.append(previous_first + layer.wire_b.astype(np.int64))
        bounds.append((gate_count, gate_count + layer.width))
        previous_first = first_gate + gate_count
        gate_count += layer.width
    last_start, last_end = bounds[-1]
    return Graph(
        input_feature=encoder.feature_index.astype(np.int32),
        input_threshold=encoder.threshold.astype(np.float32),
        gate=np.concatenate(gates),
        src_a=np.concatenate(src_a),
        src_b=np.concatenate(src_b),
        present=np.ones(gate_count, dtype=bool),
        layer_bounds=bounds,
        outputs=first_gate + np.arange(last_start, last_end, dtype=np.int64),
        n_classes=network.n_classes,
    )


# ---------------------------------------------------------------------------
# fold
# ---------------------------------------------------------------------------

def fold_constants(graph: Graph) -> Graph:
    """Fold constant, pass-through and same-source gates (the "fold" pass)."""
    result = graph.copy()
    alias = np.arange(result.n_nodes, dtype=np.int64)
    for layer in range(len(result.layer_bounds)):
        index = result.live_gates(layer)
        if index.size == 0:
            continue
        a = alias[result.src_a[index]]
        b = alias[result.src_b[index]]
        t00, t01, t10, t11 = _reduced_tables(result.gate[index], a, b)

        depends_a = (t00 != t10) | (t01 != t11)
        depends_b = (t00 != t01) | (t10 != t11)
        nodes = result.first_gate + index
        new_gate = (t00.astype(np.uint8) << 3) | (t01.astype(np.uint8) << 2) | (t10.astype(np.uint8) << 1) | t11

        constant = ~depends_a & ~depends_b
        alias[nodes[constant]] = t00[constant].astype(np.int64)

        # A one-input gate is either its input or the NOT of it.
        only_a = depends_a & ~depends_b
        only_b = ~depends_a & depends_b
        single = only_a | only_b
        single_source = np.where(only_a, a, b)
        single_value_at_1 = np.where(only_a, t10, t01)
        identity = single & ~t00 & single_value_at_1
        negation = single & t00 & ~single_value_at_1
        alias[nodes[identity]] = single_source[identity]

        new_a = np.where(negation, single_source, a)
        new_b = np.where(negation, single_source, b)
        new_gate = np.where(negation, NOT_A, new_gate).astype(np.uint8)
        result.gate[index] = new_gate
        result.src_a[index] = new_a
        result.src_b[index] = new_b
        result.present[index[constant | identity]] = False
    result.outputs = alias[result.outputs]
    return result


def _reduced_tables(gate_ids, a, b):
    """Truth tables of the gates after substituting constant and shared inputs."""
    bits = _TABLE_BITS[gate_ids]
    t00, t01, t10, t11 = (bits[:, k].copy() for k in range(4))

    # A constant input c on a: g(x, y) = f(c, y) for both x.
    a_constant = a < 2
    a_one = a == 1
    row0 = np.where(a_one, t10, t00)
    row1 = np.where(a_one, t11, t01)
    t00 = np.where(a_constant, row0, t00)
    t01 = np.where(a_constant, row1, t01)
    t10 = np.where(a_constant, row0, t10)
    t11 = np.where(a_constant, row1, t11)

    # A constant input c on b: g(x, y) = f(x, c) for both y.
    b_constant = b < 2
    b_one = b == 1
    column0 = np.where(b_one, t01, t00)
    column1 = np.where(b_one, t11, t10)
    t00 = np.where(b_constant, column0, t00)
    t01 = np.where(b_constant, column0, t01)
    t10 = np.where(b_constant, column1, t10)
    t11 = np.where(b_constant, column1, t11)

    # Both inputs from one source x: g(x, y) = f(x, x), a function of x only.
    same = (a == b) & ~a_constant
    t01 = np.where(same, t00, t01)
    t10 = np.where(same, t11, t10)
    return t00, t01, t10, t11


# ---------------------------------------------------------------------------
# not
# ---------------------------------------------------------------------------

def fold_not_gates(graph: Graph) -> Graph:
    """Absorb NOT gates into the gates that read them (the "not" pass).

    Each node gets a literal: a base node and a negation flag. A consumer
    of a negated literal reads the base node with the matching input of its
    truth table negated. Double negations cancel, and the NOT of a constant
    is the other constant. NOT gates that are outputs stay, rewritten to
    read the base node, because the class counter cannot negate.
    """
    result = graph.copy()
    n_nodes = result.n_nodes
    base = np.arange(n_nodes, dtype=np.int64)
    negated = np.zeros(n_nodes, dtype=bool)
    for layer in range(len(result.layer_bounds)):
        index = result.live_gates(layer)
        if index.size == 0:
            continue
        a = result.src_a[index]
        b = result.src_b[index]
        gate = result.gate[index]
        gate = np.where(negated[a], _NEGATE_A[gate], gate)
        gate = np.where(negated[b], _NEGATE_B[gate], gate).astype(np.uint8)
        rewritten = negated[a] | negated[b]
        a = base[a]
        b = base[b]
        result.gate[index] = gate
        result.src_a[index] = a
        result.src_b[index] = b

        nodes = result.first_gate + index
        not_a = gate == NOT_A
        not_b = gate == NOT_B
        base[nodes[not_a]] = a[not_a]
        base[nodes[not_b]] = b[not_b]
        negated[nodes[not_a | not_b]] = True
        # A rewrite that left a pass-through gate was a double negation.
        pass_a = rewritten & (gate == PASS_A)
        pass_b = rewritten & (gate == PASS_B)
        base[nodes[pass_a]] = a[pass_a]
        base[nodes[pass_b]] = b[pass_b]

        # not 0 = 1 and not 1 = 0.
        changed = nodes[not_a | not_b]
        of_constant = changed[base[changed] < 2]
        base[of_constant] = 1 - base[of_constant]
        negated[of_constant] = False

    outputs = result.outputs
    negated_outputs = outputs[negated[outputs]]
    output_not_gates = negated_outputs - result.first_gate
    result.gate[output_not_gates] = NOT_A
    result.src_a[output_not_gates] = base[negated_outputs]
    result.src_b[output_not_gates] = base[negated_outputs]
    result.outputs = np.where(negated[outputs], outputs, base[outputs])

    gate_nodes = result.first_gate + np.arange(result.gate.shape[0])
    absorbed = (base[gate_nodes] != gate_nodes) | negated[gate_nodes]
    absorbed[output_not_gates] = False
    result.present &= ~absorbed
    return result


# ---------------------------------------------------------------------------
# merge
# ---------------------------------------------------------------------------

def merge_duplicates(graph: Graph) -> Graph:
    """Compute identical gates and identical input bits once (the "merge" pass)."""
    result = graph.copy()
    n_nodes = result.n_nodes
    alias = np.arange(n_nodes, dtype=np.int64)

    if result.n_inputs:
        keys = np.stack([result.input_feature.astype(np.int64),
                         result.input_threshold.view(np.int32).astype(np.int64)], axis=1)
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        alias[2:result.first_gate] = 2 + first[inverse.reshape(-1)]

    seen_keys = np.empty(0, dtype=np.int64)
    seen_nodes = np.empty(0, dtype=np.int64)
    for layer in range(len(result.layer_bounds)):
        index = result.live_gates(layer)
        if index.size == 0:
            continue
        a = alias[result.src_a[index]]
        b = alias[result.src_b[index]]
        gate = result.gate[index]
        swap = a > b
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        gate = np.where(swap, _SWAP[gate], gate).astype(np.uint8)
        result.gate[index] = gate
        result.src_a[index] = a
        result.src_b[index] = b

        nodes = result.first_gate + index
        keys = (a * n_nodes + b) * N_GATES + gate
        unique_keys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        representative = nodes[first][inverse]
        if seen_keys.size:
            position = np.searchsorted(seen_keys, keys)
            position_clipped = np.minimum(position, seen_keys.size - 1)
            found = seen_keys[position_clipped] == keys
            representative = np.where(found, seen_nodes[position_clipped], representative)
        alias[nodes] = representative
        result.present[index[representative != nodes]] = False

        new_keys = representative == nodes
        seen_keys = np.concatenate([seen_keys, keys[new_keys]])
        seen_nodes = np.concatenate([seen_nodes, nodes[new_keys]])
        order = np.argsort(seen_keys, kind="stable")
        seen_keys = seen_keys[order]
        seen_nodes = seen_nodes[order]
    result.outputs = alias[result.outputs]
    return result


# ---------------------------------------------------------------------------
# dead
# ---------------------------------------------------------------------------

def remove_dead(graph: Graph) -> Graph:
    """Remove gates that no output depends on (the "dead" pass)."""
    result = graph.copy()
    needed = np.zeros(result.n_nodes, dtype=bool)
    needed[result.outputs] = True
    for layer in reversed(range(len(result.layer_bounds))):
        index = result.live_gates(layer)
        if index.size == 0:
            continue
        keep = needed[result.first_gate + index]
        result.present[index[~keep]] = False
        index = index[keep]

        gate = result.gate[index]
        a = result.src_a[index]
        b = result.src_b[index]
        uses_a = _DEPENDS_A[gate]
        uses_b = _DEPENDS_B[gate]
        # An ignored input reads a node the gate needs anyway (or the
        # constant 0 when it needs none), so the ignored source can die.
        new_a = np.where(uses_a, a, np.where(uses_b, b, 0))
        new_b = np.where(uses_b, b, new_a)
        result.src_a[index] = new_a
        result.src_b[index] = new_b
        needed[new_a] = True
        needed[new_b] = True
    return result


PASSES = {
    "fold": fold_constants,
    "not": fold_not_gates,
    "merge": merge_duplicates,
    "dead": remove_dead,
}


def check_pass_names(passes) -> tuple[str, ...]:
    """Return the requested passes in canonical order; raise ValueError on an unknown name."""
    if isinstance(passes, str):
        raise ValueError(f"passes must be a collection of pass names, got the string {passes!r}; "
                         f"write passes=({passes!r},)")
    requested = list(passes)
    unknown = [name for name in requested if name not in PASSES]
    if unknown:
        raise ValueError(f"unknown pass {unknown[0]!r}; expected some of {', '.join(PASS_ORDER)}")
    return tuple(name for name in PASS_ORDER if name in requested)


def run_passes(graph: Graph, passes) -> tuple[Graph, list[dict]]:
    """Apply the named passes in canonical order; return the graph and per-pass gate counts."""
    report = []
    for name in check_pass_names(passes):
        before = graph.n_gates
        graph = PASSES[name](graph)
        report.append({"pass": name, "gates_before": before, "gates_after": graph.n_gates})
    return graph, report


# ---------------------------------------------------------------------------
# compilation
# ---------------------------------------------------------------------------

def load_kernels():
    """Import and return the compiled extension lgnrt._kernels.

    libgomp reads its wait policy once, when the extension loads it. Its
    default busy-waits at the end of each parallel loop. With more runnable
    threads than cores, the waiting thread then takes CPU from the one it
    waits for: 3x the CPU time per 2-thread call, measured on 2 shared
    cores. So the policy defaults to passive here, but a value the user
    set still wins. Import the extension through this function for that to
    apply.
    """
    global _kernels_module
    if _kernels_module is None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from . import _kernels
        _kernels_module = _kernels
    return _kernels_module


_kernels_module = None


@dataclass
class CompiledProgram:
    """Arrays of a gate program, its packer plan and its class head."""

    ops: np.ndarray  # int32 (n_ops, 4): dst slot, source a slot, source b slot, gate id
    runs: np.ndarray  # int32 (n_runs, 3): first op, end op, gate id
    n_slots: int  # slots 0 and 1 are the constants
    out_slots: np.ndarray  # int32 (n_classes * group_size,): slot of every output
    # The counter's view of the outputs: class c sums the rows
    # class_rows[class_row_start[c]:class_row_start[c + 1]] and adds
    # class_bias[c]; outputs that are constant 0 or 1 need no row.
    class_row_start: np.ndarray  # int32 (n_classes + 1,)
    class_rows: np.ndarray  # int32
    class_bias: np.ndarray  # int32 (n_classes,)
    n_classes: int
    input_slots: np.ndarray  # int32 (n_inputs,): slot of each encoder bit, -1 when unused
    chunk_base: np.ndarray  # int32 (n_chunks,)
    lane_feature: np.ndarray  # int32 (64 * n_chunks,)
    lane_slot: np.ndarray  # int32 (64 * n_chunks,)
    lane_u8_threshold: np.ndarray  # uint8 (64 * n_chunks,)
    chunk_u8_ones: np.ndarray  # uint64 (n_chunks,)
    lane_f32_threshold: np.ndarray  # float32 (64 * n_chunks,)
    n_features: int

    @property
    def n_ops(self) -> int:
        return int(self.ops.shape[0])

    @property
    def n_chunks(self) -> int:
        return int(self.chunk_base.shape[0])


def execution_order(graph: Graph) -> np.ndarray:
    """Return the present gates in execution order.

    Gates of a layer are independent, so each layer is sorted by gate id
    and then by first source. Long runs of one gate let the kernel hoist
    the gate out of its loop.
    """
    order = []
    for layer in range(len(graph.layer_bounds)):
        index = graph.live_gates(layer)
        order.append(index[np.lexsort((graph.src_a[index], graph.gate[index]))])
    return np.concatenate(order) if order else np.empty(0, dtype=np.int64)


def compile_program(graph: Graph, n_features: int) -> CompiledProgram:
    """Allocate slots and build the op, run, output and packer arrays."""
    kernels = load_kernels()
    order = execution_order(graph)
    dst_nodes = graph.first_gate + order
    src_a = graph.src_a[order]
    src_b = graph.src_b[order]
    gates = graph.gate[order].astype(np.int32)

    referenced = np.zeros(graph.n_nodes, dtype=bool)
    referenced[src_a] = True
    referenced[src_b] = True
    referenced[graph.outputs] = True
    used_inputs = 2 + np.flatnonzero(referenced[2:graph.first_gate])

    op_nodes = np.stack([dst_nodes, src_a, src_b], axis=1).astype(np.int32)
    slot_of, n_slots = kernels.allocate_slots(
        np.ascontiguousarray(op_nodes), used_inputs.astype(np.int32),
        graph.outputs.astype(np.int32), graph.n_nodes)

    ops = np.stack([slot_of[dst_nodes], slot_of[src_a], slot_of[src_b], gates], axis=1).astype(np.int32)
    input_slots = slot_of[2:graph.first_gate].astype(np.int32)
    bit_index = used_inputs - 2
    plan = build_pack_plan(graph.input_feature[bit_index], graph.input_threshold[bit_index],
                           input_slots[bit_index], n_features, sink_slot=n_slots)
    out_slots = slot_of[graph.outputs].astype(np.int32)
    return CompiledProgram(
        ops=ops,
        runs=gate_runs(gates),
        n_slots=n_slots,
        out_slots=out_slots,
        n_classes=graph.n_classes,
        **class_rows(out_slots, graph.n_classes),
        input_slots=input_slots,
        n_features=n_features,
        **plan,
    )


def class_rows(out_slots: np.ndarray, n_classes: int) -> dict:
    """Split the outputs into counted rows and constant biases per class.

    Slot 0 (constant 0) adds nothing and slot 1 (constant 1) adds one to
    every sample's count, so neither is read by the counter.
    """
    per_class = out_slots.reshape(n_classes, -1)
    counted = per_class >= 2
    rows = per_class[counted]
    start = np.concatenate([[0], np.cumsum(counted.sum(axis=1))])
    bias = (per_class == 1).sum(axis=1)
    return {
        "class_row_start": start.astype(np.int32),
        "class_rows": rows.astype(np.int32),
        "class_bias": bias.astype(np.int32),
    }


def gate_runs(gates: np.ndarray) -> np.ndarray:
    """Return (first op, end op, gate id) of each maximal run of equal gate ids."""
    if gates.size == 0:
        return np.empty((0, 3), dtype=np.int32)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(gates)) + 1])
    ends = np.concatenate([starts[1:], [gates.size]])
    return np.stack([starts, ends, gates[starts]], axis=1).astype(np.int32)


# A gather lane costs a scalar load, compare and shift per sample; a
# contiguous chunk costs one vector compare for all 64 lanes. A plane is
# gathered only when its used lanes are this much rarer than its windows.
_GATHER_COST = 16


def build_pack_plan(feature, threshold, slot, n_features: int, sink_slot: int) -> dict:
    """Group the used input bits into chunks of 64 packer lanes.

    Bits of one feature are ranked by threshold. Rank r of every feature
    forms "plane" r, laid out by feature number, so a chunk of 64
    consecutive features is one contiguous load from a sample's row. With
    the usual thermometer encoders (the same number of thresholds for
    every feature) each plane is dense. A sparse plane, or any plane of a
    network with fewer than 64 features, is instead gathered lane by lane.
    Unused lanes compare to a value no input can exceed and write to the
    sink slot.
    """
    feature = np.asarray(feature, dtype=np.int64)
    threshold = np.asarray(threshold, dtype=np.float32)
    slot = np.asarray(slot, dtype=np.int64)
    chunks = []  # (base, lane features, lane slots, lane thresholds as float32, lane used)

    if feature.size:
        order = np.lexsort((threshold, feature))
        feature, threshold, slot = feature[order], threshold[order], slot[order]
        group_start = np.concatenate([[0], np.flatnonzero(np.diff(feature)) + 1])
        group_of = np.repeat(np.arange(group_start.size), np.diff(np.concatenate([group_start, [feature.size]])))
        rank = np.arange(feature.size) - group_start[group_of]
        for plane in range(int(rank.max()) + 1):
            selected = rank == plane
            chunks.extend(_plane_chunks(feature[selected], threshold[selected], slot[selected], n_features))

    n_chunks = len(chunks)
    lane_feature = np.zeros(64 * n_chunks, dtype=np.int32)
    lane_slot = np.full(64 * n_chunks, sink_slot, dtype=np.int32)
    lane_threshold = np.full(64 * n_chunks, np.inf, dtype=np.float32)
    lane_used = np.zeros(64 * n_chunks, dtype=bool)
    chunk_base = np.empty(n_chunks, dtype=np.int32)
    for c, (base, features, slots, thresholds, used) in enumerate(chunks):
        lanes = slice(64 * c, 64 * c + 64)
        chunk_base[c] = base
        lane_feature[lanes] = features
        lane_slot[lanes] = np.where(used, slots, sink_slot)
        lane_threshold[lanes] = np.where(used, thresholds, np.inf)
        lane_used[lanes] = used

    u8_threshold, always_one = _uint8_thresholds(lane_threshold, lane_used)
    ones = np.zeros(n_chunks, dtype=np.uint64)
    if n_chunks:
        weights = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))
        ones = (always_one.reshape(n_chunks, 64).astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    return {
        "chunk_base": chunk_base,
        "lane_feature": lane_feature,
        "lane_slot": lane_slot,
        "lane_u8_threshold": u8_threshold,
        "chunk_u8_ones": ones,
        "lane_f32_threshold": lane_threshold,
    }


def _plane_chunks(feature, threshold, slot, n_features):
    window = feature // 64
    occupied = np.unique(window)
    n_gather = (feature.size + 63) // 64
    if n_gather * _GATHER_COST < occupied.size:
        return _gather_chunks(feature, threshold, slot)

    chunks = []
    for w in occupied:
        # The last, partial window loads the last 64 features instead, which
        # overlap the previous window; the overlapped lanes stay unused.
        base = min(64 * int(w), n_features - 64)
        in_window = window == w
        used = np.zeros(64, dtype=bool)
        slots = np.zeros(64, dtype=np.int64)
        thresholds = np.zeros(64, dtype=np.float32)
        if base >= 0:
            lanes = feature[in_window] - base
            features = base + np.arange(64)
        else:
            # Fewer than 64 features: a gather chunk over the features there are.
            lanes = feature[in_window]
            features = np.minimum(np.arange(64), n_features - 1)
        slots[lanes] = slot[in_window]
        thresholds[lanes] = threshold[in_window]
        used[lanes] = True
        chunks.append((max(base, -1), features, slots, thresholds, used))
    return chunks


def _gather_chunks(feature, threshold, slot):
    chunks = []
    for start in range(0, feature.size, 64):
        count = min(64, feature.size - start)
        features = np.zeros(64, dtype=np.int64)
        slots = np.zeros(64, dtype=np.int64)
        thresholds = np.zeros(64, dtype=np.float32)
        used = np.zeros(64, dtype=bool)
        features[:count] = feature[start:start + count]
        slots[:count] = slot[start:start + count]
        thresholds[:count] = threshold[start:start + count]
        used[:count] = True
        chunks.append((-1, features, slots, thresholds, used))
    return chunks


def _uint8_thresholds(threshold: np.ndarray, used: np.ndarray):
    """Map float thresholds to the uint8 compare: x > t  <=>  x > floor(t).

    That is true for integer x and any t in [0, 255). A threshold below 0
    makes the bit always 1, through the chunk's ones mask. Thresholds of
    255 and above, and unused lanes, compare to 255, which no uint8 exceeds.
    """
    threshold = threshold.astype(np.float64)
    always_one = used & (threshold < 0)
    in_range = used & (threshold >= 0) & (threshold < 255)
    result = np.full(threshold.shape, 255, dtype=np.uint8)
    result[in_range] = np.floor(threshold[in_range]).astype(np.uint8)
    return result, always_one
