"""The 16 two-input Boolean gates: the one table every other part derives from.

A gate id is its truth table read as a 4-bit number with f(0,0) as the most
significant bit and f(1,1) as the least, so f(a, b) = (id >> (3 - 2a - b)) & 1.
This is the ordering used by difflogic and the other public logic gate network
libraries, so gate ids line up across tools and papers.
"""

from __future__ import annotations

import numpy as np

N_GATES = 16

GATE_NAMES = (
    "FALSE", "AND", "A_AND_NOT_B", "A", "NOT_A_AND_B", "B", "XOR", "OR",
    "NOR", "XNOR", "NOT_B", "A_OR_NOT_B", "NOT_A", "NOT_A_OR_B", "NAND", "TRUE",
)


def truth_table(gate_id: int) -> tuple[int, int, int, int]:
    """Return (f(0,0), f(0,1), f(1,0), f(1,1)) of one gate."""
    return tuple((gate_id >> (3 - index)) & 1 for index in range(4))


def _relaxation_row(gate_id: int) -> tuple[int, int, int, int]:
    # The unique multilinear polynomial c0 + c1*a + c2*b + c3*a*b that agrees
    # with the truth table on {0, 1}^2.
    t00, t01, t10, t11 = truth_table(gate_id)
    return (t00, t10 - t00, t01 - t00, t11 - t10 - t01 + t00)


def _anf_row(gate_id: int) -> tuple[int, int, int, int]:
    # Algebraic normal form over GF(2): f = k0 ^ k1&a ^ k2&b ^ k3&a&b. The
    # runtime evaluates every gate with this one branch-free expression.
    t00, t01, t10, t11 = truth_table(gate_id)
    return (t00, t00 ^ t10, t00 ^ t01, t00 ^ t01 ^ t10 ^ t11)


# TRUTH_TABLES[g] = (f(0,0), f(0,1), f(1,0), f(1,1)), shape (16, 4), uint8.
TRUTH_TABLES = np.array([truth_table(g) for g in range(N_GATES)], dtype=np.uint8)

# RELAXATION[g] = (c0, c1, c2, c3) of the real relaxation, shape (16, 4), int8.
RELAXATION = np.array([_relaxation_row(g) for g in range(N_GATES)], dtype=np.int8)

# ANF[g] = (k0, k1, k2, k3) of the GF(2) form, shape (16, 4), uint8.
ANF = np.array([_anf_row(g) for g in range(N_GATES)], dtype=np.uint8)


def gate_id_from_truth_table(t00: int, t01: int, t10: int, t11: int) -> int:
    """Return the id of the gate with the given truth table."""
    return (t00 << 3) | (t01 << 2) | (t10 << 1) | t11


def swap_inputs(gate_id: int) -> int:
    """Return the id of g' with g'(a, b) == g(b, a)."""
    t00, t01, t10, t11 = truth_table(gate_id)
    return gate_id_from_truth_table(t00, t10, t01, t11)


def negate_input_a(gate_id: int) -> int:
    """Return the id of g' with g'(a, b) == g(not a, b)."""
    t00, t01, t10, t11 = truth_table(gate_id)
    return gate_id_from_truth_table(t10, t11, t00, t01)


def negate_input_b(gate_id: int) -> int:
    """Return the id of g' with g'(a, b) == g(a, not b)."""
    t00, t01, t10, t11 = truth_table(gate_id)
    return gate_id_from_truth_table(t01, t00, t11, t10)


def apply_gates_bool(gate_ids: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Evaluate gates elementwise on boolean arrays by truth-table lookup.

    `gate_ids` broadcasts against `a` and `b`; this is the plain reference
    form that tests compare the fast paths against.
    """
    row = (a.astype(np.uint8) << 1) | b.astype(np.uint8)
    return ((gate_ids.astype(np.uint8) >> (3 - row)) & 1).astype(bool)
