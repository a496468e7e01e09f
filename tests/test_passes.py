"""Tests of the graph passes and of slot allocation.

Each pass must keep every output's function: the graphs are evaluated here
with a plain numpy evaluator, independent of the compiled kernels, and
compared with lgnrt.network.reference_counts. Crafted circuits check that
each pass removes what it should.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import random_features, random_network

from lgnrt import Model, _kernels
from lgnrt.gates import apply_gates_bool, negate_input_a
from lgnrt.network import LogicLayer, Network, ThresholdEncoder, reference_counts
from lgnrt.passes import (
    NOT_A, PASS_ORDER, Graph, check_pass_names, compile_program, fold_constants, fold_not_gates,
    graph_from_network, merge_duplicates, remove_dead, run_passes,
)

AND, XOR, OR, NAND = 1, 6, 7, 14
FALSE, TRUE, PASS_A, PASS_B, NOT_B = 0, 15, 3, 5, 10


def evaluate_graph(graph: Graph, input_bits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return class counts of a graph, int32 (n_samples, n_classes).

    Removed gates hold random bits, so a present gate or an output that
    still reads one gives wrong counts.
    """
    n_samples = input_bits.shape[0]
    values = rng.random((graph.n_nodes, n_samples)) < 0.5
    values[0] = False
    values[1] = True
    values[2:graph.first_gate] = input_bits.T
    for start, end in graph.layer_bounds:
        index = start + np.flatnonzero(graph.present[start:end])
        values[graph.first_gate + index] = apply_gates_bool(
            graph.gate[index][:, np.newaxis], values[graph.src_a[index]], values[graph.src_b[index]])
    outputs = values[graph.outputs].reshape(graph.n_classes, -1, n_samples)
    return outputs.sum(axis=1, dtype=np.int32).T


def assert_same_function(network: Network, graph: Graph, rng, n_samples: int = 300) -> None:
    features = random_features(rng, network, n_samples, np.float32)
    bits = network.encoder.encode(features)
    actual = evaluate_graph(graph, bits, rng)
    expected = reference_counts(network, features)
    assert np.array_equal(actual, expected)


def assert_sources_present(graph: Graph) -> None:
    """Check that present gates and outputs read only constants, inputs and present gates."""
    alive = np.ones(graph.n_nodes, dtype=bool)
    alive[graph.first_gate:] = graph.present
    gates = np.flatnonzero(graph.present)
    assert alive[graph.src_a[gates]].all()
    assert alive[graph.src_b[gates]].all()
    assert alive[graph.outputs].all()


def input_network(n_inputs: int, layers: list[tuple[list[int], list[int], list[int]]], n_classes: int) -> Network:
    """A network whose input bit i is feature i > 0.5; layers are (wire_a, wire_b, gates) lists."""
    encoder = ThresholdEncoder(n_inputs, np.arange(n_inputs, dtype=np.int32), np.full(n_inputs, 0.5, np.float32))
    logic = [LogicLayer(np.array(a, np.int32), np.array(b, np.int32), np.array(g, np.uint8)) for a, b, g in layers]
    network = Network(encoder, logic, n_classes=n_classes)
    network.validate()
    return network


def all_input_combinations(n_inputs: int) -> np.ndarray:
    return np.array(list(itertools.product([0, 1], repeat=n_inputs)), dtype=np.uint8)


# ---------------------------------------------------------------------------
# Every pass keeps the function
# ---------------------------------------------------------------------------

PASS_SUBSETS = [(name,) for name in PASS_ORDER] + [("fold", "not"), ("not", "merge"), ("fold", "dead"), PASS_ORDER]


@pytest.mark.parametrize("passes", PASS_SUBSETS, ids=lambda p: "+".join(p))
def test_passes_keep_function(passes, rng):
    for seed in range(4):
        network = random_network(np.random.default_rng(seed), n_features=9, bits_per_feature=2,
                                 widths=(40, 40, 30, 24), n_classes=4, same_source_fraction=0.3)
        graph, report = run_passes(graph_from_network(network), passes)
        assert [entry["pass"] for entry in report] == [name for name in PASS_ORDER if name in passes]
        assert report[-1]["gates_after"] == graph.n_gates
        assert graph.n_gates <= network.n_gates
        assert_sources_present(graph)
        assert_same_function(network, graph, rng)


def test_passes_keep_function_on_restricted_gates(rng):
    # Only NOT, pass-through and constant gates: long chains that fold away.
    network = random_network(rng, n_features=6, bits_per_feature=1, widths=(20, 20, 20, 20), n_classes=2,
                             gate_ids=[FALSE, TRUE, PASS_A, PASS_B, NOT_B, NOT_A])
    graph, _ = run_passes(graph_from_network(network), PASS_ORDER)
    assert graph.n_gates <= 20
    assert_sources_present(graph)
    assert_same_function(network, graph, rng)


def test_optimized_model_matches_unoptimized(rng):
    network = random_network(rng, n_features=30, bits_per_feature=3, widths=(200, 150, 90), n_classes=3)
    features = random_features(rng, network, 1000, np.uint8)
    plain = Model.from_network(network, optimize=False).scores(features)
    optimized_model = Model.from_network(network)
    assert np.array_equal(optimized_model.scores(features), plain)
    assert optimized_model.info()["gates_after"] < network.n_gates


# ---------------------------------------------------------------------------
# fold
# ---------------------------------------------------------------------------

def test_fold_constant_and_pass_through_gates(rng):
    # Layer 0 over inputs x0..x3; layer 1 reads it.
    layer0 = ([0, 0, 0, 0, 2, 3, 0],
              [1, 1, 1, 1, 2, 3, 1],
              [FALSE, TRUE, PASS_A, PASS_B, AND, XOR, OR])
    # n0 = 0, n1 = 1, n2 = x0, n3 = x1, n4 = x2 AND x2 = x2, n5 = x3 XOR x3 = 0, n6 = x0 OR x1
    layer1 = ([0, 1, 2, 4, 6, 5],
              [6, 6, 3, 4, 1, 2],
              [AND, OR, XOR, NAND, AND, OR])
    # AND(0, n6) = 0, OR(1, n6) = 1, XOR(x0, x1), NAND(x2, x2) = NOT x2, AND(n6, 1) = n6, OR(0, x0) = x0
    network = input_network(4, [layer0, layer1], n_classes=2)
    graph = fold_constants(graph_from_network(network))

    assert graph.n_gates == 3
    first = graph.first_gate
    assert graph.present[first - first + 6]  # n6 = OR(x0, x1) stays
    xor = 7 + 2
    assert graph.present[xor]
    assert (graph.src_a[xor], graph.src_b[xor]) == (2, 3)
    negation = 7 + 3
    assert graph.gate[negation] == NOT_A
    assert graph.src_a[negation] == graph.src_b[negation] == 2 + 2
    assert graph.outputs.tolist() == [0, 1, first + xor, first + negation, first + 6, 2]

    features = all_input_combinations(4)
    assert np.array_equal(evaluate_graph(graph, network.encoder.encode(features), rng),
                          reference_counts(network, features))


def test_fold_output_constant_points_at_constant_slot():
    network = input_network(2, [([0, 0], [1, 1], [TRUE, FALSE])], n_classes=2)
    compiled = compile_program(fold_constants(graph_from_network(network)), n_features=2)
    assert compiled.n_ops == 0
    assert compiled.out_slots.tolist() == [1, 0]
    assert compiled.class_bias.tolist() == [1, 0]
    assert compiled.class_rows.size == 0


# ---------------------------------------------------------------------------
# not
# ---------------------------------------------------------------------------

def test_not_gates_absorbed(rng):
    # n0 = NOT x0, n1 = NOT_B(x1, x1) = NOT x1, n2 = x0 AND x1
    layer0 = ([0, 1, 0], [1, 1, 1], [NOT_A, NOT_B, AND])
    # m0 = NOT n0 = x0 (double negation), m1 = n0 AND n2, m2 = n1 OR n1, m3 = NOT n2 (an output)
    layer1 = ([0, 0, 1, 2], [0, 2, 1, 0], [NOT_A, AND, OR, NOT_A])
    network = input_network(2, [layer0, layer1], n_classes=2)
    graph = fold_not_gates(graph_from_network(network))
    first = graph.first_gate

    assert not graph.present[0]
    assert not graph.present[1]
    assert not graph.present[3]
    and_gate = 4
    assert graph.gate[and_gate] == negate_input_a(AND)
    assert (graph.src_a[and_gate], graph.src_b[and_gate]) == (2, first + 2)
    output_not = 6
    assert graph.present[output_not]
    assert graph.gate[output_not] == NOT_A
    assert graph.src_a[output_not] == first + 2
    assert graph.outputs.tolist()[0] == 2

    features = all_input_combinations(2)
    assert np.array_equal(evaluate_graph(graph, network.encoder.encode(features), rng),
                          reference_counts(network, features))


def test_not_of_constant_becomes_constant(rng):
    # A NOT gate reading the constant-0 node (as other passes may leave
    # it) is the constant 1, and its consumer reads node 1.
    network = input_network(2, [([0, 0], [1, 1], [NOT_A, AND]), ([0, 1], [1, 0], [AND, OR])], n_classes=2)
    graph = graph_from_network(network)
    graph.src_a[0] = graph.src_b[0] = 0
    graph = fold_not_gates(graph)
    assert not graph.present[0]
    assert graph.src_a[2] == 1
    bits = all_input_combinations(2).astype(bool)
    counts = evaluate_graph(graph, bits, rng)
    x0_and_x1 = bits[:, 0] & bits[:, 1]
    assert np.array_equal(counts[:, 0], x0_and_x1.astype(np.int32))
    assert np.array_equal(counts[:, 1], np.ones(4, np.int32))


# ---------------------------------------------------------------------------
# merge
# ---------------------------------------------------------------------------

def test_merge_duplicate_gates(rng):
    # A_AND_NOT_B(a, b) equals NOT_A_AND_B(b, a); AND is commutative.
    layer0 = ([0, 1, 0, 1, 0], [1, 0, 1, 0, 2], [AND, AND, 2, 4, XOR])
    layer1 = ([0, 1, 2, 3, 4, 4], [2, 2, 0, 2, 4, 0], [OR, OR, OR, XOR, NAND, XOR])
    network = input_network(3, [layer0, layer1], n_classes=2)
    graph = merge_duplicates(graph_from_network(network))
    assert graph.n_gates == network.n_gates - 4
    features = all_input_combinations(3)
    assert np.array_equal(evaluate_graph(graph, network.encoder.encode(features), rng),
                          reference_counts(network, features))


def test_merge_duplicate_input_bits(rng):
    encoder = ThresholdEncoder(2, np.array([0, 0, 1, 0], np.int32), np.array([0.5, 0.5, 0.5, 0.25], np.float32))
    layer = LogicLayer(np.array([0, 1, 3], np.int32), np.array([2, 2, 2], np.int32),
                       np.array([XOR, XOR, XOR], np.uint8))
    network = Network(encoder, [layer], n_classes=3)
    graph = merge_duplicates(graph_from_network(network))
    assert graph.n_gates == 2
    assert graph.outputs[0] == graph.outputs[1]
    features = random_features(rng, network, 200, np.float32)
    assert np.array_equal(evaluate_graph(graph, encoder.encode(features), rng), reference_counts(network, features))


# ---------------------------------------------------------------------------
# dead
# ---------------------------------------------------------------------------

def test_dead_gates_removed(rng):
    # n0 and n2 feed the outputs; n1 is never read; n3 = NOT_A(x0, x2)
    # ignores x2, so n4, its only other reader, is what keeps x2 alive.
    layer0 = ([0, 1, 0, 0], [1, 2, 2, 2], [AND, OR, XOR, NOT_A])
    layer1 = ([0, 3], [2, 3], [OR, PASS_A])
    network = input_network(3, [layer0, layer1], n_classes=1)
    graph = remove_dead(graph_from_network(network))
    assert graph.present.tolist() == [True, False, True, True, True, True]
    assert graph.src_b[3] == graph.src_a[3] == 2
    assert graph.src_b[5] == graph.src_a[5]
    features = all_input_combinations(3)
    assert np.array_equal(evaluate_graph(graph, network.encoder.encode(features), rng),
                          reference_counts(network, features))


def test_dead_pass_keeps_constant_gate_sources_valid():
    network = input_network(2, [([0, 1], [1, 0], [TRUE, AND])], n_classes=1)
    graph = remove_dead(graph_from_network(network))
    assert graph.src_a[0] == graph.src_b[0] == 0
    assert graph.n_gates == 2


# ---------------------------------------------------------------------------
# names, reports and compilation
# ---------------------------------------------------------------------------

def test_pass_names_canonical_order():
    assert check_pass_names(["dead", "not"]) == ("not", "dead")
    assert check_pass_names([]) == ()
    with pytest.raises(ValueError, match="unknown pass 'nope'"):
        check_pass_names(["fold", "nope"])
    with pytest.raises(ValueError, match="write passes=\\('dead',\\)"):
        check_pass_names("dead")


def test_compiled_program_invariants(rng):
    network = random_network(rng, n_features=20, bits_per_feature=2, widths=(100, 100, 100, 100, 60), n_classes=3)
    for passes in ((), PASS_ORDER):
        graph, _ = run_passes(graph_from_network(network), passes)
        compiled = compile_program(graph, network.n_features)
        ops = compiled.ops
        assert np.all(ops[:, 0] != ops[:, 1])
        assert np.all(ops[:, 0] != ops[:, 2])
        assert np.all(ops[:, 0] >= 2)
        assert ops[:, :3].max() < compiled.n_slots
        # Runs cover the ops in order and hold one gate id each.
        runs = compiled.runs
        assert runs[0, 0] == 0
        assert runs[-1, 1] == compiled.n_ops
        assert np.array_equal(np.repeat(runs[:, 2], runs[:, 1] - runs[:, 0]), ops[:, 3])
        # Slot reuse keeps the working set near two layers.
        n_inputs = int(np.count_nonzero(compiled.input_slots >= 0))
        assert compiled.n_slots <= 2 + max(n_inputs + 100, 2 * 100) + 1


def test_allocate_slots_reuses_freed_slots():
    # Nodes: 0, 1 constants; 2, 3 inputs; ops 4 = f(2, 3), 5 = f(4, 4), 6 = f(5, 2)
    op_nodes = np.array([[4, 2, 3], [5, 4, 4], [6, 5, 2]], dtype=np.int32)
    slots, n_slots = _kernels.allocate_slots(op_nodes, np.array([2, 3], np.int32), np.array([6], np.int32), 7)
    assert slots[:4].tolist() == [0, 1, 2, 3]
    # Op 4 gets a new slot; input 3 is then free and op 5 takes it; op 6
    # takes the slot node 4 freed.
    assert slots[4] == 4
    assert slots[5] == 3
    assert slots[6] == 4
    assert n_slots == 5
