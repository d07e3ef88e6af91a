"""Files the commands write and read: atomic writes, one run per output folder, checked inputs.

- Atomic writes: a crash or Ctrl-C never leaves a half-written file that a later run trusts. The
  file gets the mode any other tool's output gets (0666 minus the umask), not mkstemp's 0600.
- `OutputFolder`: an output folder checked before any work (a folder, writable) and held by one run
  at a time (an flock on OUT/.manifpt.lock, released by the kernel when the process dies, so a killed
  run never leaves a stale lock). A second run into the same folder is refused with a message, instead
  of the two interleaving their files.
- `load_npy`: a user's .npy file opened without unpickling, with errors that name the file.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

_umask_lock = threading.Lock()


def _default_file_mode() -> int:
    with _umask_lock:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Calls write(tmp_path) on a temporary file in the same folder, then renames it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_npy(path: str | os.PathLike, array) -> Path:
    """np.save, atomically (np.save on a name would append '.npy' to the temporary file's name)."""
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)

    return atomic_write(path, write)


def check_output_folder(out: str | os.PathLike, flag: str = "--out") -> Path:
    """`out` as a folder this process can write into, created if missing; else a ValueError naming it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".manifpt-write-check.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{flag} {out} is not writable: {e.strerror or e}") from None
    return out


class OutputFolder:
    """Holds `out` for one run: `with OutputFolder(out): ...`. Raises ValueError when another run holds it."""

    LOCK = ".manifpt.lock"

    def __init__(self, out: str | os.PathLike, flag: str = "--out"):
        self.path, self.flag = Path(out), flag
        self._fd: int | None = None
        self._created = False

    def __enter__(self) -> Path:
        self._created = not self.path.exists()
        check_output_folder(self.path, self.flag)
        fd = os.open(self.path / self.LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ValueError(f"{self.flag} {self.path} is in use by another manifpt run ({holder}): wait for it to "
                             "finish, or give another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self.path

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        # A run that wrote nothing (refused arguments, say) leaves no folder it created. Otherwise the lock
        # file stays: unlinking it while another process opens it would let two runs hold two inodes.
        if self._created and [p.name for p in self.path.iterdir()] == [self.LOCK]:
            (self.path / self.LOCK).unlink()
            self.path.rmdir()
        os.close(self._fd)  # releases the flock
        self._fd = None


def load_npy(path: str | os.PathLike, what: str, mmap_mode: str | None = "r"):
    """np.load of a user's file (no pickles), with a ValueError that names `what` and the path."""
    import numpy as np

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder, not a .npy file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} {path} is empty (0 bytes), not a .npy file")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{what} {path} is not a readable .npy array (truncated or another format): {e}") from None


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (weights files are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
