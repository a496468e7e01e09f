"""Smoke tests of the benchmark suite in bench/, so that a broken benchmark fails pytest.

Every asv benchmark runs setup, its body and teardown once, on the first
value of each parameter, with LGNRT_BENCH_QUICK=1 so that the grids hold
only the small network. bench/compare.py runs end to end on small batches,
which also checks that its PyTorch and onnxruntime formulations give the
runtime's labels.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import random_network

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_MODULES = sorted(path.stem for path in (REPO_ROOT / "bench").glob("bench_*.py"))
# asv imports every module under bench/, not only the bench_*.py ones.
ALL_MODULES = sorted(path.stem for path in (REPO_ROOT / "bench").glob("*.py") if path.stem != "__init__")
BENCHMARK_PREFIXES = ("time_", "timeraw_", "mem_", "peakmem_", "track_")


def _forget_bench_package() -> None:
    for name in [name for name in sys.modules if name == "bench" or name.startswith("bench.")]:
        del sys.modules[name]


@pytest.fixture
def quick_bench(monkeypatch):
    """Import bench modules afresh under LGNRT_BENCH_QUICK=1; forget them afterwards."""
    monkeypatch.setenv("LGNRT_BENCH_QUICK", "1")
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    _forget_bench_package()
    yield lambda name: importlib.import_module(f"bench.{name}")
    _forget_bench_package()


def _first_parameters(benchmark_class) -> tuple:
    params = getattr(benchmark_class, "params", None)
    if not params:
        return ()
    if all(isinstance(values, (list, tuple)) for values in params):
        return tuple(values[0] for values in params)
    return (params[0],)


def _benchmark_classes(module) -> list:
    return [member for _, member in inspect.getmembers(module, inspect.isclass)
            if member.__module__ == module.__name__
            and any(name.startswith(BENCHMARK_PREFIXES) for name in dir(member))]


def test_bench_modules_found():
    assert "bench_predict" in BENCH_MODULES
    assert len(BENCH_MODULES) >= 6


@pytest.mark.parametrize("module_name", BENCH_MODULES)
def test_benchmarks_run_once(quick_bench, module_name):
    module = quick_bench(module_name)
    classes = _benchmark_classes(module)
    assert classes, f"{module_name} defines no benchmark class"

    for benchmark_class in classes:
        parameters = _first_parameters(benchmark_class)
        for name in sorted(dir(benchmark_class)):
            if not name.startswith(BENCHMARK_PREFIXES):
                continue
            instance = benchmark_class()
            label = f"{module_name}.{benchmark_class.__name__}.{name}{parameters}"
            try:
                if hasattr(instance, "setup"):
                    instance.setup(*parameters)
            except NotImplementedError:
                # asv skips a benchmark whose setup raises NotImplementedError.
                continue
            try:
                result = getattr(instance, name)(*parameters)
            finally:
                if hasattr(instance, "teardown"):
                    instance.teardown(*parameters)
            if name.startswith("track_"):
                assert isinstance(result, (int, float)), f"{label} returned {result!r}, not a number"
                assert result >= 0, f"{label} returned {result}"


@pytest.mark.parametrize("module_name", ALL_MODULES)
def test_helpers_not_taken_for_benchmarks(quick_bench, module_name):
    """asv calls every module-level function named like a benchmark, without arguments unless it has params."""
    module = quick_bench(module_name)
    for name, function in inspect.getmembers(module, inspect.isfunction):
        if function.__module__ != module.__name__ or not name.startswith(BENCHMARK_PREFIXES):
            continue
        if hasattr(function, "params"):
            continue
        required = [parameter.name for parameter in inspect.signature(function).parameters.values()
                    if parameter.default is inspect.Parameter.empty
                    and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
        assert not required, (
            f"asv runs bench/{module_name}.py:{name}() as a benchmark and fails, because it requires "
            f"{', '.join(required)}; rename it so that it does not start with one of {BENCHMARK_PREFIXES}")


def test_quick_grid_keeps_only_small_network(quick_bench):
    predict = quick_bench("bench_predict")
    assert predict.Predict.params[0] == ["small"]
    assert predict.PredictMillion.params[0] == [100_000]


def test_compare_random_network(quick_bench, tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    compare = quick_bench("compare")
    output = tmp_path / "compare.json"
    # 300 samples: not a multiple of 64, so the packed formulations pad.
    status = compare.main(["--size", "small", "--batch", "300", "--repeats", "1", "--threads", "2",
                           "--json", str(output)])
    assert status == 0, capsys.readouterr().err

    report = json.loads(output.read_text())
    backends = [(row["backend"], row["threads"]) for row in report["results"]]
    for backend in compare.BACKENDS:
        assert (backend, 1) in backends
        assert (backend, 2) in backends
    assert all(row["mismatches"] == 0 for row in report["results"])
    assert report["reference_check"]["mismatches"] == 0
    assert report["results"][0]["time_ratio_to_lgnrt_1_thread"] == 1.0
    assert "ns/sample" in capsys.readouterr().out


def test_compare_model_file_edge_thresholds(quick_bench, tmp_path, capsys):
    """Thresholds below 0 and above 255, several per feature, and gates reading one source twice."""
    import lgnrt

    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    compare = quick_bench("compare")
    network = random_network(np.random.default_rng(7), n_features=20, bits_per_feature=3, extra_bits=5,
                             widths=(64, 48, 30), n_classes=3)
    assert (network.encoder.threshold < 0).any()
    assert (network.encoder.threshold > 255).any()
    path = tmp_path / "edge.lgn"
    lgnrt.save_network(network, path)

    status = compare.main(["--model", str(path), "--batch", "257", "--repeats", "1", "--threads", "2"])
    assert status == 0, capsys.readouterr().err


def test_compare_reports_mismatch(quick_bench, monkeypatch, capsys):
    pytest.importorskip("torch")
    compare = quick_bench("compare")
    correct_predictor = compare.torch_packed_predictor

    def shifted_predictor(network, threads):
        predict = correct_predictor(network, threads)
        return lambda pixels: (predict(pixels) + 1) % network.n_classes

    monkeypatch.setattr(compare, "torch_packed_predictor", shifted_predictor)
    status = compare.main(["--size", "small", "--batch", "128", "--repeats", "1", "--threads", "1",
                           "--backends", "lgnrt,torch-packed"])
    assert status == 1
    assert "labels differ" in capsys.readouterr().err
