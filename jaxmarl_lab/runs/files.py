"""Files that survive a kill and folders that one process owns: atomic writes and directory locks.

    atomic_write(path, lambda f: f.write(b"..."))        # temp file + fsync + os.replace
    atomic_write_text(path, text)                         # also atomic_write_json, atomic_write_csv
    with DirLock("runs/mappo", "run directory"):         # fcntl lock, holder's pid in .lock
        ...

Every temporary file is `.tmp-*` in the target's folder, so `remove_temp_files(folder)`
cleans up after a writer that was killed mid-write. A reader only ever sees the previous
complete file or the new one.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
import tempfile
from typing import Any, BinaryIO, Callable, Sequence

TMP_PREFIX = ".tmp-"
LOCK = ".lock"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Calls `write(f)` on a temporary file beside `path`, flushes it to disk and renames it over `path`.

    The file gets the permissions of a plain `open` (0666 minus the umask). On any error,
    a full disk included, the temporary file is removed and `path` is left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """`atomic_write` of UTF-8 text (newlines written as given)."""
    atomic_write(path, lambda f: f.write(text.encode()))


def to_strict_json(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None, recursively (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: to_strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_strict_json(v) for v in value]
    return value


def atomic_write_json(path: str, data: Any, indent: int | None = 1) -> None:
    """`data` as strict JSON (NaN and inf written as null), atomically."""
    atomic_write_text(path, json.dumps(to_strict_json(data), indent=indent, allow_nan=False))


def atomic_write_csv(path: str, records: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    """Records as CSV (columns: `columns`, else every key in order of first appearance), atomically."""
    columns = list(columns) if columns is not None else list(dict.fromkeys(k for r in records for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(path, buffer.getvalue())


def remove_temp_files(folder: str) -> None:
    """Removes the `.tmp-*` files a writer killed mid-write left in `folder`."""
    for name in os.listdir(folder):
        if name.startswith(TMP_PREFIX):
            try:
                os.unlink(os.path.join(folder, name))
            except FileNotFoundError:
                pass


def describe_os_error(e: OSError) -> str:
    """`'No space left on device'`-style reason of an OSError, without its Python class name."""
    return e.strerror or str(e)


class LockedError(RuntimeError):
    """Another process holds the lock of a folder; the message names its pid."""


class DirLock:
    """An exclusive `fcntl.flock` on `folder/.lock`, held until `release` (or the process ends).

    The lock file holds the holder's pid, so a second process is told who works there.
    The kernel drops the lock when its holder dies, so a killed run never leaves a stale lock.

    Raises (on `acquire` / `__enter__`):
        LockedError: another process holds the lock.
        PermissionError: `folder` is read-only (the message names it).
    """

    def __init__(self, folder: str, what: str = "folder"):
        self.folder, self.what, self._fd = folder, what, None

    def acquire(self) -> "DirLock":
        path = os.path.join(self.folder, LOCK)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:
            raise PermissionError(f"cannot write in {self.what} {self.folder!r} (permission denied; is it "
                                  f"read-only?)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(f"{self.what} {self.folder!r} is in use by another jaxmarl-lab process (pid {holder}); "
                              f"wait for it to finish or stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "DirLock":
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["TMP_PREFIX", "LOCK", "atomic_write", "atomic_write_text", "atomic_write_json", "atomic_write_csv",
           "to_strict_json", "remove_temp_files", "describe_os_error",
           "LockedError", "DirLock"]
