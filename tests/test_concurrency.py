"""Tests of one Model shared by many Python threads, and of the GIL release in the kernels.

A Model keeps no scratch memory between calls, so concurrent calls must
give exactly the results of one thread, which in turn must equal
lgnrt.network.reference_counts. The kernels run without the GIL, so
other Python threads keep running during a long call.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import random_features, random_network

import lgnrt
from lgnrt import Model
from lgnrt.network import reference_counts

ISAS = lgnrt.kernel_info()["supported"]
N_WORKERS = 8
CALLS_PER_WORKER = 12


@pytest.fixture(scope="module")
def network():
    return random_network(np.random.default_rng(21), n_features=90, bits_per_feature=2, extra_bits=20,
                          widths=(300, 200, 60), n_classes=4)


@pytest.fixture(scope="module")
def model(network):
    return Model.from_network(network)


@pytest.fixture(scope="module")
def calls(network):
    """Calls for the workers: (features, threads, method name), with reference counts.

    Batch sizes are random, from 0 to a few tiles, and the dtypes cover the
    uint8 and float32 paths that go straight to the kernels and the float64
    path that converts chunk by chunk.
    """
    rng = np.random.default_rng(22)
    dtypes = [np.uint8, np.float32, np.float64]
    result = []
    for index in range(N_WORKERS * CALLS_PER_WORKER):
        n_samples = int(rng.choice([0, 1, 63, 64, 65, int(rng.integers(2, 5000))]))
        features = random_features(rng, network, n_samples, dtypes[index % 3])
        threads = 1 + index % 2
        method = "scores" if index % 4 < 2 else "predict"
        result.append((features, threads, method, reference_counts(network, features)))
    return result


@pytest.fixture
def kernel_isa(request):
    lgnrt.set_kernel_isa(request.param)
    yield request.param
    lgnrt.set_kernel_isa(None)


def call_model(model: Model, features, threads: int, method: str) -> np.ndarray:
    return getattr(model, method)(features, threads=threads)


def expected_output(counts: np.ndarray, method: str) -> np.ndarray:
    return counts if method == "scores" else counts.argmax(axis=1)


def assert_same_output(actual: np.ndarray, expected: np.ndarray, context: str) -> None:
    assert actual.dtype == expected.dtype, context
    assert actual.shape == expected.shape, context
    unequal = actual != expected
    if unequal.ndim == 2:
        unequal = unequal.any(axis=1)
    differing = np.flatnonzero(unequal)
    assert differing.size == 0, f"{context}: first differing sample {differing[:1].tolist()}"


def run_concurrently(model: Model, calls) -> list:
    """Run every call across N_WORKERS threads at once; return outputs in call order."""
    start = threading.Barrier(N_WORKERS)

    def work(worker: int) -> list[tuple[int, np.ndarray]]:
        start.wait()
        outputs = []
        # Each worker walks the calls in its own order, so different batch
        # sizes and thread counts overlap.
        for index in range(worker, len(calls), N_WORKERS):
            features, threads, method, _ = calls[index]
            outputs.append((index, call_model(model, features, threads, method)))
        return outputs

    with ThreadPoolExecutor(max_workers=N_WORKERS) as pool:
        futures = [pool.submit(work, worker) for worker in range(N_WORKERS)]
        collected = [pair for future in futures for pair in future.result(timeout=120)]
    outputs = [None] * len(calls)
    for index, output in collected:
        outputs[index] = output
    return outputs


@pytest.mark.parametrize("kernel_isa", [*ISAS, "auto"], indirect=True)
def test_threads_match_single_thread(kernel_isa, model, calls):
    serial = [call_model(model, features, threads, method) for features, threads, method, _ in calls]
    for index, (output, (_, _, method, counts)) in enumerate(zip(serial, calls)):
        assert_same_output(output, expected_output(counts, method), f"serial call {index} on {kernel_isa}")

    for repeat in range(3):
        concurrent = run_concurrently(model, calls)
        for index, (output, reference) in enumerate(zip(concurrent, serial)):
            assert_same_output(output, reference, f"concurrent call {index}, repeat {repeat} on {kernel_isa}")


def test_kernel_path_switch_during_calls(model, calls):
    # set_kernel_isa from another thread changes the path of later calls
    # only; every path gives the same counts, so results must not change.
    stop = threading.Event()

    def switch_paths():
        while not stop.is_set():
            for isa in ISAS:
                lgnrt.set_kernel_isa(isa)
                time.sleep(0.001)

    switcher = threading.Thread(target=switch_paths)
    switcher.start()
    try:
        concurrent = run_concurrently(model, calls)
    finally:
        stop.set()
        switcher.join()
        lgnrt.set_kernel_isa(None)
    for index, (output, (_, _, method, counts)) in enumerate(zip(concurrent, calls)):
        assert_same_output(output, expected_output(counts, method), f"call {index} while switching paths")


def test_two_models_interleaved(network, calls):
    # Two Models of different networks in the same threads must not share
    # any state.
    other_network = random_network(np.random.default_rng(23), n_features=network.n_features, widths=(64, 40),
                                   n_classes=5)
    first = Model.from_network(network)
    second = Model.from_network(other_network)
    mixed_calls = []
    for index, (features, threads, method, counts) in enumerate(calls):
        if index % 2:
            mixed_calls.append((features, threads, method, counts, first))
        else:
            mixed_calls.append((features, threads, method, reference_counts(other_network, features), second))

    def work(worker: int) -> list[tuple[int, np.ndarray]]:
        return [(index, call_model(mixed_calls[index][4], *mixed_calls[index][:3]))
                for index in range(worker, len(mixed_calls), N_WORKERS)]

    with ThreadPoolExecutor(max_workers=N_WORKERS) as pool:
        results = [pair for future in [pool.submit(work, w) for w in range(N_WORKERS)]
                   for pair in future.result(timeout=120)]
    for index, output in results:
        _, _, method, counts, _ = mixed_calls[index]
        assert_same_output(output, expected_output(counts, method), f"call {index}")


# ---------------------------------------------------------------------------
# GIL release
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def slow_call():
    """A model and a uint8 batch whose predict runs for about 0.6 s on one core.

    uint8 with contiguous rows goes straight to the kernels, so nearly all
    of the call runs in C.
    """
    network = random_network(np.random.default_rng(24), n_features=64, bits_per_feature=2,
                             widths=(3000, 3000, 3000, 1000), n_classes=10)
    model = Model.from_network(network, optimize=False)
    features = random_features(np.random.default_rng(25), network, 1, np.uint8)
    start = time.perf_counter()
    model.predict(np.repeat(features, 4096, axis=0), threads=1)
    per_sample = (time.perf_counter() - start) / 4096
    n_samples = int(min(2_000_000, max(8192, 0.6 / per_sample)))
    return model, np.repeat(features, n_samples, axis=0)


@pytest.mark.parametrize("threads", [1, 2])
def test_gil_released_during_predict(slow_call, threads):
    # A pure-Python thread records a timestamp every 1000 increments. If the
    # kernels held the GIL, it could not run at all while they do, so no
    # timestamp would fall in the middle half of the call. The criterion
    # needs only some progress, so it holds on a loaded machine.
    model, features = slow_call
    stamps: list[float] = []
    stop = threading.Event()

    def count():
        counter = 0
        while not stop.is_set():
            counter += 1
            if counter % 1000 == 0:
                stamps.append(time.perf_counter())

    counter_thread = threading.Thread(target=count)
    counter_thread.start()
    try:
        time.sleep(0.05)
        begin = time.perf_counter()
        model.predict(features, threads=threads)
        end = time.perf_counter()
    finally:
        stop.set()
        counter_thread.join()

    duration = end - begin
    middle_begin = begin + duration / 4
    middle_end = end - duration / 4
    in_middle = sum(1 for stamp in stamps if middle_begin <= stamp <= middle_end)
    assert stamps, "the counter thread never ran"
    assert in_middle > 0, (
        f"no counter progress in the middle half of a {duration:.2f} s predict with threads={threads}: "
        f"{len(stamps)} timestamps in all, none between {middle_begin - begin:.2f} s and "
        f"{middle_end - begin:.2f} s, so the GIL was held"
    )
