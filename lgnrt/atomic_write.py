"""Atomic file writes shared by the model-file writer and the ONNX export."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_file_atomic(data: bytes, path: str | os.PathLike) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one.

    The bytes go to a temporary file in the same folder, are flushed to disk,
    and only then replace `path`, so a crash or a full disk leaves any
    earlier file at `path` intact. On Linux the temporary file has no name
    while it is written (O_TMPFILE), so a process killed mid-write leaves
    nothing behind either. The new file gets the usual mode, 0o666 less the
    umask.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist; create it first")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name inside it")

    handle, temporary = _open_temporary(folder, path.name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fchmod(stream.fileno(), 0o666 & ~_umask())
            os.fsync(stream.fileno())
            if temporary is None:
                temporary = _link_unnamed(stream.fileno(), folder, path.name)
        os.replace(temporary, path)
    except BaseException:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
        raise
    _fsync_folder(folder)


def _umask() -> int:
    # Linux reports the umask in /proc; elsewhere os.umask can only read it by
    # setting it, which briefly changes it for every thread of the process.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _open_temporary(folder: Path, name: str) -> tuple[int, str | None]:
    """Open a file for writing in `folder`; return (descriptor, path or None if unnamed)."""
    unnamed_flag = getattr(os, "O_TMPFILE", None)
    if unnamed_flag is not None and Path("/proc/self/fd").is_dir():
        try:
            return os.open(folder, unnamed_flag | os.O_WRONLY, 0o600), None
        except OSError:
            pass  # file systems without O_TMPFILE support fall back to a named file
    return tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)


def _link_unnamed(descriptor: int, folder: Path, name: str) -> str:
    """Give an O_TMPFILE file a temporary name so os.replace can move it into place."""
    # os.link calls linkat(AT_SYMLINK_FOLLOW) only when given a directory
    # descriptor; plain link() would link the /proc symlink itself. The
    # source path is absolute, so the descriptor's folder does not matter.
    folder_descriptor = os.open(folder, os.O_RDONLY)
    try:
        while True:
            temporary = str(folder / f".{name}.{os.urandom(6).hex()}.tmp")
            try:
                os.link(f"/proc/self/fd/{descriptor}", temporary, src_dir_fd=folder_descriptor,
                        follow_symlinks=True)
                return temporary
            except FileExistsError:
                continue
    finally:
        os.close(folder_descriptor)


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a folder.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
