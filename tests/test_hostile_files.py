"""The loader rejects every hostile file in tests/hostile with a ModelFileError naming the field.

tests/hostile/make_hostile.py generates the files from the golden file, and
tests/hostile/expected.json pins the field and a message fragment of each.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import struct
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import pytest

from lgnrt.errors import ModelFileError
from lgnrt.lgn_format import MAX_HEADER_BYTES, decode_network, load_network

HOSTILE = Path(__file__).parent / "hostile"
EXPECTED = json.loads((HOSTILE / "expected.json").read_text())
GOLDEN = Path(__file__).parent / "golden" / "tiny_v1.lgn"

# A guard against hangs, not a benchmark: far above what rejecting a file of
# at most 41 KB should take.
SECONDS_PER_FILE = 5.0

# Files whose length fields claim far more bytes than the file holds.
HUGE_LENGTH_FILES = [
    "header_length_cap_plus_one.lgn",
    "header_length_2_40.lgn",
    "header_length_2_63.lgn",
    "header_length_u64_max.lgn",
    "png_signature.lgn",
    "tensor_claims_2_61_bytes.lgn",
    "offsets_2_62.lgn",
    "offsets_past_data_end.lgn",
]

# A loader that trusted a length field would allocate at least 16 MiB here.
MAX_PEAK_BYTES = 1024 * 1024


def load_generator():
    spec = importlib.util.spec_from_file_location("make_hostile", HOSTILE / "make_hostile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def time_limit(seconds: float):
    """Raise TimeoutError in the block after `seconds`, so a hang fails the test.

    Without SIGALRM (Windows) the block runs unguarded.
    """
    if not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutError(f"loading took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def hostile_file_names() -> list[str]:
    return sorted(path.name for path in HOSTILE.iterdir() if path.name.endswith(".lgn"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_file_rejected(name):
    expected = EXPECTED[name]
    with time_limit(SECONDS_PER_FILE):
        with pytest.raises(ModelFileError) as info:
            load_network(HOSTILE / name)
    message = str(info.value)
    assert info.value.field == expected["field"], message
    assert expected["message"] in message
    assert expected["field"] in message
    assert "(expected " in message
    assert ", got " in message


@pytest.mark.parametrize("name", [name for name in sorted(EXPECTED) if (HOSTILE / name).is_file()])
def test_hostile_bytes_rejected_in_memory(name):
    data = (HOSTILE / name).read_bytes()
    with time_limit(SECONDS_PER_FILE):
        with pytest.raises(ModelFileError) as info:
            decode_network(data)
    assert info.value.field == EXPECTED[name]["field"]
    assert EXPECTED[name]["message"] in str(info.value)


def test_every_hostile_file_has_expectation():
    on_disk = set(hostile_file_names())
    assert sorted(on_disk - set(EXPECTED)) == [], "files without an entry in expected.json"
    assert sorted(set(EXPECTED) - on_disk) == [], "entries in expected.json without a file"


def test_expectations_are_complete():
    for name, expected in EXPECTED.items():
        assert sorted(expected) == ["description", "field", "message"], name
        assert expected["field"], name
        assert expected["message"], name


def test_committed_files_match_generator(tmp_path):
    expectations = load_generator().write_cases(tmp_path)
    assert expectations == EXPECTED
    for name in hostile_file_names():
        committed = HOSTILE / name
        if committed.is_file():
            assert (tmp_path / name).read_bytes() == committed.read_bytes(), name
        else:
            assert (tmp_path / name).is_dir(), name


def test_generator_base_is_golden_file():
    generator = load_generator()
    assert generator.encode_unchecked(generator.golden_tensors(), generator.golden_graph()) == GOLDEN.read_bytes()


def test_golden_file_still_loads():
    network = load_network(GOLDEN)
    assert network.n_classes == 2


@pytest.mark.parametrize("name", HUGE_LENGTH_FILES)
def test_huge_length_field_fails_fast(name):
    data = (HOSTILE / name).read_bytes()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ModelFileError):
            load_network(HOSTILE / name)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_PEAK_BYTES + len(data)
    assert elapsed < 1.0


def test_header_length_at_cap_reads_nothing_past_file(tmp_path):
    # At exactly the cap the length passes the size check, so only the
    # comparison with the file size stops a 16 MiB read.
    path = tmp_path / "cap.lgn"
    path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES) + b"{}")
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="header extends past the end of the file"):
            load_network(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_PEAK_BYTES


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_rejected_without_blocking(tmp_path):
    # Opening a FIFO for reading blocks until a writer appears.
    path = tmp_path / "pipe.lgn"
    os.mkfifo(path)
    with time_limit(SECONDS_PER_FILE):
        with pytest.raises(ModelFileError) as info:
            load_network(path)
    assert info.value.field == "file"
    assert "not a regular file" in str(info.value)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_character_device_rejected():
    with time_limit(SECONDS_PER_FILE):
        with pytest.raises(ModelFileError, match="not a regular file"):
            load_network("/dev/zero")
