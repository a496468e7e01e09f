"""Tests of the training bridge's layer: relaxations, estimators, CAGE and wiring."""

from __future__ import annotations


import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lgnrt.bridge.cage import CageConfig, CageController, backward_temperature, commitment
from lgnrt.bridge.estimators import ESTIMATORS, gate_weights, gumbel_noise
from lgnrt.bridge.layers import (
    GroupSum,
    LogicLayer,
    make_wiring,
    max_unique_pairs,
    random_wiring,
    unique_wiring,
)
from lgnrt.bridge.model import LogicNet
from lgnrt.gates import N_GATES, RELAXATION, TRUTH_TABLES

INPUT_PAIRS = [(0, 0), (0, 1), (1, 0), (1, 1)]  # the column order of TRUTH_TABLES


@pytest.fixture(autouse=True)
def single_thread():
    # The networks here are tiny, so thread start-up and spinning cost more
    # than they save, most of all on a loaded machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def mixture_of_gates(weights: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return sum_g w_g relaxation_g(a, b) with all 16 candidates built explicitly.

    weights (N, 16), a and b (N, B); the plain form the layer's 4-term
    evaluation must agree with.
    """
    relaxation = torch.tensor(RELAXATION, dtype=a.dtype)
    candidates = torch.stack([
        c0 + c1 * a + c2 * b + c3 * a * b for c0, c1, c2, c3 in relaxation
    ], dim=-1)  # (N, B, 16)
    return (candidates * weights.unsqueeze(1)).sum(dim=-1)


def layer_with_gates(gates: list[int], in_dim: int = 2) -> LogicLayer:
    """Build a layer whose neuron i deploys gates[i] and reads inputs (0, 1)."""
    layer = LogicLayer(in_dim, len(gates), estimator="hard_st")
    with torch.no_grad():
        layer.logits.zero_()
        layer.logits[torch.arange(len(gates)), torch.tensor(gates)] = 10.0
        layer.wire_a.zero_()
        layer.wire_b.fill_(1)
    return layer


# ---------------------------------------------------------------------------
# Relaxations
# ---------------------------------------------------------------------------

def test_relaxation_equals_truth_table():
    for gate in range(N_GATES):
        c0, c1, c2, c3 = RELAXATION[gate].tolist()
        for column, (a, b) in enumerate(INPUT_PAIRS):
            assert c0 + c1 * a + c2 * b + c3 * a * b == TRUTH_TABLES[gate, column], (gate, a, b)


@pytest.mark.parametrize("mode", ["eval", "bool"])
def test_layer_deployed_gates_equal_truth_table(mode):
    layer = layer_with_gates(list(range(N_GATES)))
    layer.eval()
    x = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 1]])  # (2, 4): the four input pairs as a batch

    if mode == "eval":
        outputs = layer(x.float())
    else:
        outputs = layer.forward_bool(x.to(torch.uint8))

    np.testing.assert_array_equal(outputs.numpy().astype(np.uint8), TRUTH_TABLES)


def test_layer_four_term_form_equals_mixture():
    torch.manual_seed(0)
    layer = LogicLayer(6, 10, estimator="soft_mix", tau=0.7)
    x = torch.rand(6, 5, requires_grad=True)

    four_term = layer(x)
    weights = torch.softmax(layer.logits / 0.7, dim=1)
    explicit = mixture_of_gates(weights, x[layer.wire_a], x[layer.wire_b])

    torch.testing.assert_close(four_term, explicit)
    four_term_grads = torch.autograd.grad(four_term.square().sum(), (layer.logits, x))
    explicit_grads = torch.autograd.grad(explicit.square().sum(), (layer.logits, x))
    for ours, reference in zip(four_term_grads, explicit_grads):
        torch.testing.assert_close(ours, reference)


def test_eval_forward_equals_bool_forward():
    torch.manual_seed(1)
    layer = LogicLayer(12, 40, estimator="soft_gumbel")
    layer.eval()
    x = (torch.rand(12, 33) > 0.5).to(torch.uint8)

    relaxed = layer(x.float())
    boolean = layer.forward_bool(x)

    assert torch.equal(relaxed, boolean.float())


# ---------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------

def test_soft_mix_weights_are_softmax():
    logits = torch.randn(7, N_GATES)

    weights = gate_weights(logits, "soft_mix", tau=2.0)

    torch.testing.assert_close(weights, torch.softmax(logits / 2.0, dim=1))


def test_soft_gumbel_weights_use_noise():
    logits = torch.randn(7, N_GATES)

    torch.manual_seed(3)
    weights = gate_weights(logits, "soft_gumbel", tau=0.5)
    torch.manual_seed(3)
    noise = gumbel_noise(logits)

    torch.testing.assert_close(weights, torch.softmax((logits + noise) / 0.5, dim=1))


def test_hard_st_forward_is_exact_one_hot():
    logits = torch.randn(50, N_GATES)

    weights = gate_weights(logits, "hard_st", tau=0.3)

    expected = torch.nn.functional.one_hot(logits.argmax(dim=1), N_GATES).float()
    assert torch.equal(weights, expected)


def test_gumbel_st_forward_is_noisy_argmax():
    logits = torch.randn(50, N_GATES)

    torch.manual_seed(4)
    weights = gate_weights(logits, "gumbel_st", tau=1.0)
    torch.manual_seed(4)
    noise = gumbel_noise(logits)

    expected = torch.nn.functional.one_hot((logits + noise).argmax(dim=1), N_GATES).float()
    assert torch.equal(weights, expected)


@pytest.mark.parametrize("backward_tau", [None, 0.25, 4.0])
def test_hard_st_gradient_is_surrogate_softmax(backward_tau):
    logits = torch.randn(9, N_GATES, requires_grad=True)
    upstream = torch.randn(9, N_GATES)
    tau_b = 1.5 if backward_tau is None else backward_tau

    (gradient,) = torch.autograd.grad((gate_weights(logits, "hard_st", 1.5, backward_tau) * upstream).sum(), logits)
    (expected,) = torch.autograd.grad((torch.softmax(logits / tau_b, dim=1) * upstream).sum(), logits)

    torch.testing.assert_close(gradient, expected)


def test_hard_st_forward_independent_of_temperature():
    torch.manual_seed(5)
    layer = LogicLayer(16, 64, estimator="hard_st")
    x = (torch.rand(16, 20) > 0.5).float()
    outputs = []
    for tau, backward_tau in [(0.05, None), (1.0, None), (30.0, None), (1.0, 0.5), (1.0, 3.0)]:
        layer.tau, layer.backward_tau = tau, backward_tau
        outputs.append(layer(x))

    for output in outputs[1:]:
        assert torch.equal(output, outputs[0])
    layer.eval()
    assert torch.equal(layer(x), outputs[0])


@pytest.mark.parametrize("estimator", ["soft_gumbel", "gumbel_st"])
def test_noise_only_in_training_mode(estimator):
    torch.manual_seed(6)
    layer = LogicLayer(16, 200, estimator=estimator)
    x = torch.rand(16, 8)

    layer.train()
    first, second = layer(x), layer(x)
    layer.eval()
    deployed_first, deployed_second = layer(x), layer(x)

    assert not torch.equal(first, second)
    assert torch.equal(deployed_first, deployed_second)
    layer.estimator = "hard_st"
    layer.train()
    assert torch.equal(deployed_first, layer(x))


@pytest.mark.parametrize("estimator", ["soft_mix", "hard_st"])
def test_noiseless_estimators_deterministic(estimator):
    layer = LogicLayer(16, 200, estimator=estimator)
    x = torch.rand(16, 8)

    assert torch.equal(layer(x), layer(x))


def test_eval_mode_uses_argmax_for_every_estimator():
    x = torch.rand(16, 8)
    outputs = []
    for estimator in ESTIMATORS:
        layer = LogicLayer(16, 30, estimator=estimator, seed=9)
        layer.eval()
        outputs.append(layer(x))

    for output in outputs[1:]:
        assert torch.equal(output, outputs[0])


@pytest.mark.parametrize("estimator", ["soft_mix", "soft_gumbel"])
def test_soft_step_lowers_loss(estimator):
    torch.manual_seed(7)
    net = LogicNet(8, [32, 32], 4, tau_out=2.0, estimator=estimator, tau=1.0)
    bits = torch.rand(64, 8) > 0.5
    labels = torch.randint(0, 4, (64,))

    def loss_with_fixed_noise():
        torch.manual_seed(11)
        return torch.nn.functional.cross_entropy(net(bits), labels)

    before = loss_with_fixed_noise()
    gradients = torch.autograd.grad(before, list(net.parameters()))
    with torch.no_grad():
        for parameter, gradient in zip(net.parameters(), gradients):
            parameter -= 1e-2 * gradient
    after = loss_with_fixed_noise()

    assert after < before


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_training_lowers_loss_on_toy_task(estimator):
    # Labels are the XOR of two input bits; a 2-layer network can represent it.
    torch.manual_seed(8)
    bits = torch.rand(256, 6) > 0.5
    labels = (bits[:, 0] ^ bits[:, 1]).long()
    net = LogicNet(6, [64, 64], 2, tau_out=4.0, estimator=estimator, cage=estimator.endswith("_st"))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)

    def deployed_loss():
        net.eval()
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(net(bits), labels).item()

    before = deployed_loss()
    net.train()
    # 150 steps: with fewer, the noisy estimators sometimes have not yet improved.
    for _ in range(150):
        net.update_temperatures()
        loss = torch.nn.functional.cross_entropy(net(bits), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = deployed_loss()

    assert after < before - 0.1


def test_unknown_estimator():
    with pytest.raises(ValueError, match="unknown estimator 'hard'"):
        LogicLayer(4, 4, estimator="hard")


@pytest.mark.parametrize("tau", [0.0, -1.0, float("inf"), float("nan")])
def test_invalid_temperature(tau):
    with pytest.raises(ValueError, match="tau must be a finite positive number"):
        LogicLayer(4, 4, tau=tau)


# ---------------------------------------------------------------------------
# CAGE
# ---------------------------------------------------------------------------

def test_cage_temperature_limits():
    confidences = torch.tensor([0.0, 1.0 / N_GATES, 1.0, 1.2], dtype=torch.float64)

    temperatures = backward_temperature(confidences, tau_max=3.0, tau_min=0.5)

    assert temperatures.tolist() == [3.0, 3.0, 0.5, 0.5]


def test_cage_temperature_linear_between_limits():
    midpoint = torch.tensor(0.5 * (1.0 / N_GATES + 1.0), dtype=torch.float64)

    temperature = backward_temperature(midpoint, tau_max=3.0, tau_min=0.5)

    assert temperature.item() == pytest.approx(1.75)


def test_cage_ema_update():
    controller = CageController(CageConfig(beta=0.9, initial_confidence=1.0 / N_GATES), n_layers=1)
    logits = torch.randn(100, N_GATES)
    confidence = commitment(logits).item()

    controller.update([logits])
    first = controller.confidence_ema.item()
    controller.update([logits])
    second = controller.confidence_ema.item()

    assert first == pytest.approx(0.9 / N_GATES + 0.1 * confidence)
    assert second == pytest.approx(0.9 * first + 0.1 * confidence)
    assert controller.n_updates.item() == 2


def test_cage_ema_starts_at_first_confidence():
    controller = CageController(CageConfig(), n_layers=2)
    logits = [torch.randn(30, N_GATES), torch.randn(10, N_GATES)]
    weighted = (30 * commitment(logits[0]) + 10 * commitment(logits[1])).item() / 40

    temperatures = controller.update(logits)

    assert controller.confidence_ema.item() == pytest.approx(weighted)
    assert temperatures.shape == (1,)


def test_cage_default_constants():
    config = CageConfig()

    assert (config.tau_max, config.tau_min, config.beta, config.per_layer) == (3.0, 0.5, 0.99, False)


def test_cage_uniform_logits_give_tau_max():
    controller = CageController(CageConfig(), n_layers=1)

    temperatures = controller.update([torch.zeros(5, N_GATES)])

    assert temperatures.item() == pytest.approx(3.0)


def test_cage_committed_logits_give_tau_min():
    controller = CageController(CageConfig(beta=0.0), n_layers=1)
    logits = torch.full((5, N_GATES), -1000.0)
    logits[:, 3] = 1000.0

    temperatures = controller.update([logits])

    assert temperatures.item() == pytest.approx(0.5)


def test_cage_per_layer_sets_each_layer():
    net = LogicNet(8, [16, 16, 16], 4, estimator="gumbel_st", cage=CageConfig(per_layer=True, beta=0.0))
    with torch.no_grad():
        net.layers[0].logits.zero_()
        net.layers[2].logits.zero_()
        net.layers[2].logits[:, 0] = 1000.0

    temperatures = net.update_temperatures()

    assert len(temperatures) == 3
    assert temperatures[0] == pytest.approx(3.0)
    assert temperatures[2] == pytest.approx(0.5)
    assert [layer.backward_tau for layer in net.layers] == temperatures


def test_cage_global_sets_every_layer():
    net = LogicNet(8, [16, 16], 4, estimator="hard_st", cage=True)

    temperatures = net.update_temperatures()

    assert temperatures[0] == temperatures[1]
    assert net.layers[0].backward_tau == temperatures[0]
    assert 0.5 < temperatures[0] < 3.0


@pytest.mark.parametrize("estimator", ["soft_mix", "soft_gumbel"])
def test_cage_rejects_soft_estimators(estimator):
    with pytest.raises(ValueError, match="straight-through"):
        LogicNet(8, [16], 4, estimator=estimator, cage=True)


@pytest.mark.parametrize("changes, message", [
    ({"tau_min": 4.0}, "must not exceed"),
    ({"beta": 1.0}, "beta"),
    ({"tau_max": 0.0}, "tau_max"),
    ({"initial_confidence": 2.0}, "initial_confidence"),
])
def test_cage_config_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        CageConfig(**changes)


def test_cage_state_in_state_dict():
    net = LogicNet(8, [16], 4, estimator="hard_st", cage=True)
    net.update_temperatures()
    copy = LogicNet(8, [16], 4, estimator="hard_st", cage=True, seed=1)

    copy.load_state_dict(net.state_dict())
    temperatures = copy.apply_temperatures()

    assert copy.cage.confidence_ema.item() == net.cage.confidence_ema.item()
    assert temperatures == [layer.backward_tau for layer in net.layers]


# ---------------------------------------------------------------------------
# Wiring
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("in_dim", [2, 3, 10, 31])
def test_unique_wiring_at_max_pairs(in_dim):
    n_pairs = max_unique_pairs(in_dim)

    wire_a, wire_b = unique_wiring(in_dim, n_pairs, np.random.default_rng(0))

    pairs = {(min(a, b), max(a, b)) for a, b in zip(wire_a.tolist(), wire_b.tolist())}
    assert len(pairs) == n_pairs
    assert not np.any(wire_a == wire_b)
    assert wire_a.min() >= 0
    assert max(wire_a.max(), wire_b.max()) < in_dim


def test_unique_wiring_no_repeats_large():
    wire_a, wire_b = unique_wiring(784, 8000, np.random.default_rng(1))

    pairs = np.minimum(wire_a, wire_b) * 784 + np.maximum(wire_a, wire_b)
    assert np.unique(pairs).size == 8000
    assert not np.any(wire_a == wire_b)


def test_unique_wiring_too_many_pairs():
    with pytest.raises(ValueError, match="out_dim <= 45 distinct pairs of 10 inputs"):
        unique_wiring(10, 46, np.random.default_rng(0))


def test_unique_wiring_single_input():
    with pytest.raises(ValueError, match="out_dim <= 0"):
        make_wiring("unique", 1, 1, np.random.default_rng(0))


@pytest.mark.parametrize("in_dim, out_dim", [(784, 8000), (100, 50), (7, 7), (1, 3)])
def test_random_wiring_balanced(in_dim, out_dim):
    wire_a, wire_b = random_wiring(in_dim, out_dim, np.random.default_rng(2))

    uses = np.bincount(np.concatenate([wire_a, wire_b]), minlength=in_dim)
    low, high = (2 * out_dim) // in_dim, -(-2 * out_dim // in_dim)
    assert uses.sum() == 2 * out_dim
    assert uses.min() >= low
    assert uses.max() <= high


def test_random_wiring_deterministic():
    first = random_wiring(50, 80, np.random.default_rng(3))
    second = random_wiring(50, 80, np.random.default_rng(3))

    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_unknown_wiring():
    with pytest.raises(ValueError, match="unknown wiring 'dense'"):
        make_wiring("dense", 4, 4, np.random.default_rng(0))


@pytest.mark.parametrize("wiring", ["random", "unique"])
def test_state_dict_round_trip_keeps_wiring(wiring):
    net = LogicNet(20, [30, 20], 4, estimator="soft_mix", wiring=wiring, seed=0)
    other = LogicNet(20, [30, 20], 4, estimator="soft_mix", wiring=wiring, seed=1)
    assert not torch.equal(net.layers[0].wire_a, other.layers[0].wire_a)
    bits = torch.rand(9, 20) > 0.5

    other.load_state_dict(net.state_dict())

    for ours, theirs in zip(net.layers, other.layers):
        assert torch.equal(ours.wire_a, theirs.wire_a)
        assert torch.equal(ours.wire_b, theirs.wire_b)
    assert torch.equal(net(bits), other(bits))
    assert torch.equal(net.hard_counts(bits), other.hard_counts(bits))


def test_seed_fixes_network():
    first = LogicNet(20, [30, 20], 4, seed=5)
    second = LogicNet(20, [30, 20], 4, seed=5)

    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name


# ---------------------------------------------------------------------------
# GroupSum and network shape
# ---------------------------------------------------------------------------

def test_group_sum_contiguous_blocks():
    head = GroupSum(n_classes=3, tau=2.0)
    x = torch.arange(12, dtype=torch.float32).reshape(6, 2)  # (N=6, B=2)

    scores = head(x)

    # Class 0 owns neurons 0-1, class 1 neurons 2-3, class 2 neurons 4-5.
    expected = torch.tensor([[0 + 2, 4 + 6, 8 + 10], [1 + 3, 5 + 7, 9 + 11]], dtype=torch.float32) / 2.0
    torch.testing.assert_close(scores, expected)


def test_logic_net_output_shape():
    net = LogicNet(10, [40, 30], 3)

    scores = net(torch.rand(7, 10) > 0.5)

    assert scores.shape == (7, 3)


def test_logic_net_width_not_multiple_of_classes():
    with pytest.raises(ValueError, match="multiple of n_classes 3"):
        LogicNet(10, [40, 31], 3)


def test_hard_predict_ties_to_lowest_class():
    net = LogicNet(2, [4], 2, estimator="hard_st")
    with torch.no_grad():
        net.layers[0].logits.zero_()
        net.layers[0].logits[:, 15] = 5.0  # TRUE everywhere: both classes count 2

    predictions = net.hard_predict(torch.zeros(3, 2, dtype=torch.bool))

    assert net.hard_counts(torch.zeros(1, 2, dtype=torch.bool)).tolist() == [[2, 2]]
    assert predictions.tolist() == [0, 0, 0]


def test_hard_counts_empty_batch():
    net = LogicNet(5, [10], 2)

    counts = net.hard_counts(torch.zeros(0, 5, dtype=torch.bool))

    assert counts.shape == (0, 2)
