"""save_network is atomic: a crash or a failed write leaves the earlier file's bytes unchanged.

The crash tests run save_network in a child process and kill it with SIGKILL
while it is writing or syncing, so no Python cleanup code runs. The disk-full
tests make the write fail after part of the file is on disk, either through
an injected OSError(ENOSPC) or through a real kernel error from RLIMIT_FSIZE.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_network

from lgnrt.lgn_format import encode_network, load_network, save_network
from lgnrt.network import LogicLayer, Network, ThresholdEncoder

REPOSITORY = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_SECONDS = 60


def new_network() -> Network:
    """Return a network whose file is larger than the old one and differs from it."""
    rng = np.random.default_rng(1)
    width = 4096
    encoder = ThresholdEncoder(3, np.array([0, 1, 2, 2], np.int32), np.array([0.1, 0.2, 0.3, 0.4], np.float32))
    layers = [LogicLayer(rng.integers(0, 4, width).astype(np.int32), rng.integers(0, 4, width).astype(np.int32),
                         rng.integers(0, 16, width).astype(np.uint8))]
    return Network(encoder, layers, n_classes=2, tau=3.0, training={"seed": 1})


@pytest.fixture
def saved_model(tmp_path) -> tuple[Path, bytes]:
    """Return the path of a saved old network and its bytes."""
    path = tmp_path / "model.lgn"
    save_network(tiny_network(), path)
    return path, path.read_bytes()


def temporary_files(folder: Path, target: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if entry != target)


def assert_old_file_intact(path: Path, old_bytes: bytes) -> None:
    assert path.read_bytes() == old_bytes
    assert load_network(path).tau == 1.0


class FailingStream:
    """A binary file stream that writes `allowed` bytes for real, then raises `error`."""

    def __init__(self, stream, allowed: int, error: BaseException):
        self.stream = stream
        self.allowed = allowed
        self.error = error

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.allowed:
            self.stream.write(data[:self.allowed])
            self.stream.flush()
            self.allowed = 0
            raise self.error
        self.allowed -= len(data)
        return self.stream.write(data)

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return self.stream.__exit__(*exc_info)


def fail_writes_after(monkeypatch, allowed: int, error: BaseException) -> list:
    """Make every stream that os.fdopen opens fail after `allowed` bytes, and return those streams."""
    real_fdopen = os.fdopen
    opened = []

    def fdopen(fd, *args, **kwargs):
        stream = FailingStream(real_fdopen(fd, *args, **kwargs), allowed, error)
        opened.append(stream)
        return stream

    monkeypatch.setattr(os, "fdopen", fdopen)
    return opened


# ---------------------------------------------------------------------------
# Disk full and other write errors, in process
# ---------------------------------------------------------------------------

def test_enospc_during_write_keeps_old_file(saved_model, monkeypatch):
    path, old_bytes = saved_model
    opened = fail_writes_after(monkeypatch, 1000, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OSError) as info:
        save_network(new_network(), path)
    assert info.value.errno == errno.ENOSPC
    assert len(opened) == 1
    assert_old_file_intact(path, old_bytes)
    assert temporary_files(path.parent, path) == []


def test_enospc_on_first_byte_keeps_old_file(saved_model, monkeypatch):
    path, old_bytes = saved_model
    fail_writes_after(monkeypatch, 0, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OSError):
        save_network(new_network(), path)
    assert_old_file_intact(path, old_bytes)
    assert temporary_files(path.parent, path) == []


def test_enospc_without_old_file_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "model.lgn"
    fail_writes_after(monkeypatch, 100, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OSError):
        save_network(new_network(), path)
    assert list(tmp_path.iterdir()) == []


def test_fsync_error_keeps_old_file(saved_model, monkeypatch):
    # Filesystems with delayed allocation report a full disk at fsync.
    path, old_bytes = saved_model

    def failing_fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        save_network(new_network(), path)
    assert_old_file_intact(path, old_bytes)
    assert temporary_files(path.parent, path) == []


def test_rename_error_keeps_old_file(saved_model, monkeypatch):
    path, old_bytes = saved_model

    def failing_replace(source, target):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        save_network(new_network(), path)
    assert_old_file_intact(path, old_bytes)
    assert temporary_files(path.parent, path) == []


def test_keyboard_interrupt_during_write_keeps_old_file(saved_model, monkeypatch):
    path, old_bytes = saved_model
    fail_writes_after(monkeypatch, 500, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        save_network(new_network(), path)
    assert_old_file_intact(path, old_bytes)
    assert temporary_files(path.parent, path) == []


# ---------------------------------------------------------------------------
# Real failures in a child process
# ---------------------------------------------------------------------------

def run_child(script: str, *arguments: str) -> subprocess.Popen:
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPOSITORY),
                                                                           os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *arguments],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def read_line_or_kill(process: subprocess.Popen) -> str:
    """Return the child's first output line; kill it if none comes within the timeout."""
    timer = threading.Timer(CHILD_TIMEOUT_SECONDS, process.kill)
    timer.start()
    try:
        return process.stdout.readline().strip()
    finally:
        timer.cancel()


# The child saves new_network() over argv[1] and stops at one of two points:
# "write" pauses after half the bytes are in the temporary file, "fsync"
# pauses when save_network syncs the complete temporary file. At the pause
# it prints the temporary file's path and sleeps until it is killed.
KILL_CHILD = """
    import os, sys, time
    sys.path.insert(0, os.path.join(sys.argv[3], "tests"))
    from test_atomic_save import new_network
    from lgnrt.lgn_format import save_network

    target, stop_at = sys.argv[1], sys.argv[2]
    real_fdopen = os.fdopen

    def pause(fd):
        print(fd, os.readlink(f"/proc/self/fd/{fd}"), flush=True)
        time.sleep(600)

    class PausingStream:
        def __init__(self, stream):
            self.stream = stream

        def write(self, data):
            half = len(data) // 2
            self.stream.write(data[:half])
            self.stream.flush()
            pause(self.stream.fileno())
            return self.stream.write(data[half:])

        def __getattr__(self, name):
            return getattr(self.stream, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return self.stream.__exit__(*exc_info)

    if stop_at == "write":
        os.fdopen = lambda fd, *args, **kwargs: PausingStream(real_fdopen(fd, *args, **kwargs))
    else:
        os.fsync = pause
    save_network(new_network(), target)
    print("finished without pausing", flush=True)
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the child finds its temporary file through /proc")
@pytest.mark.parametrize("stop_at", ["write", "fsync"])
def test_sigkill_during_save_keeps_old_file(saved_model, stop_at):
    path, old_bytes = saved_model
    new_bytes = encode_network(new_network())
    process = run_child(KILL_CHILD, str(path), stop_at, str(REPOSITORY))
    fd, link = read_line_or_kill(process).split(" ", 1)
    # Read the paused child's file through its descriptor: on Linux it is an
    # unnamed O_TMPFILE file that vanishes with the process.
    written = Path(f"/proc/{process.pid}/fd/{fd}").read_bytes()
    temporary = Path(link.removesuffix(" (deleted)"))
    process.send_signal(signal.SIGKILL)
    process.wait(CHILD_TIMEOUT_SECONDS)
    stderr = process.stderr.read()
    process.stdout.close()
    process.stderr.close()

    assert process.returncode == -signal.SIGKILL, stderr
    assert temporary.parent == path.parent.resolve(), stderr
    assert_old_file_intact(path, old_bytes)
    assert temporary_files(path.parent, path) in ([], [temporary.name])
    # The kill landed where intended: a half or a complete new file had been
    # written, but never at `path`.
    expected_size = len(new_bytes) // 2 if stop_at == "write" else len(new_bytes)
    assert written == new_bytes[:expected_size]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the child finds its temporary file through /proc")
def test_sigkill_during_save_leaves_no_temporary_file(saved_model):
    path, _ = saved_model
    process = run_child(KILL_CHILD, str(path), "write", str(REPOSITORY))
    read_line_or_kill(process)
    process.send_signal(signal.SIGKILL)
    process.wait(CHILD_TIMEOUT_SECONDS)
    process.stdout.close()
    process.stderr.close()
    assert temporary_files(path.parent, path) == []


# The child lowers RLIMIT_FSIZE so the kernel fails the write with EFBIG
# part-way through, as it would on a full disk, then prints the errno.
FILE_SIZE_LIMIT_CHILD = """
    import os, resource, signal, sys
    sys.path.insert(0, os.path.join(sys.argv[3], "tests"))
    from test_atomic_save import new_network
    from lgnrt.lgn_format import save_network

    # Without this the kernel kills the process with SIGXFSZ instead of failing the write.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        save_network(new_network(), sys.argv[1])
    except OSError as error:
        print(error.errno, flush=True)
    else:
        print("saved", flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE and SIGXFSZ")
def test_file_size_limit_during_write_keeps_old_file(saved_model):
    path, old_bytes = saved_model
    limit = 4096
    assert len(encode_network(new_network())) > limit
    process = run_child(FILE_SIZE_LIMIT_CHILD, str(path), str(limit), str(REPOSITORY))
    stdout, stderr = process.communicate(timeout=CHILD_TIMEOUT_SECONDS)

    assert process.returncode == 0, stderr
    assert stdout.strip() == str(errno.EFBIG)
    assert_old_file_intact(path, old_bytes)
    assert temporary_files(path.parent, path) == []


def test_saved_file_mode_follows_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        save_network(new_network(), tmp_path / "model.lgn")
    finally:
        os.umask(previous)
    assert (tmp_path / "model.lgn").stat().st_mode & 0o777 == 0o640


def test_save_into_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder .*missing does not exist"):
        save_network(new_network(), tmp_path / "missing" / "model.lgn")


def test_save_onto_folder_rejected(tmp_path):
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        save_network(new_network(), tmp_path)
