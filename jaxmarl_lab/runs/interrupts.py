"""Ctrl-C and SIGTERM for long commands: one line, exit 128 + signal number, nothing half-written.

    with exit_on_signal("interrupted; continue with: jaxmarl-lab train --resume runs/x"):
        ...                                    # SIGINT -> that line, exit 130; SIGTERM -> exit 143
        with critical():                       # a few file operations a signal must not split
            ...

A `KeyboardInterrupt` raised into JAX can land inside a compile or a running program and
end in a traceback or a segfault, and a Python-level handler only runs when the main thread
is back in Python (after the current chunk). So the handler here does nothing in Python:
the signal's number arrives on a wake-up pipe that a watcher thread reads at once; the
thread prints the line and ends the process with `os._exit`. This is safe because every
file a command writes is written atomically (a kill at any moment leaves the previous
complete file), and the few multi-file steps that must not be split run under `critical()`,
which the watcher waits for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_CRITICAL = threading.RLock()


def _ignore(signum, frame) -> None:
    """The Python-level handler: the watcher thread acts on the signal."""


def _watch(read_fd: int, message: Callable[[], str]) -> None:
    while True:
        data = os.read(read_fd, 1)
        if not data:  # the pipe was closed: the command ended normally
            os.close(read_fd)
            return
        if data[0] in SIGNALS:  # other signals with Python handlers also write their number
            break
    with _CRITICAL:  # waits for a critical section to finish
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.write(2, f"\n{message()}\n".encode())
        os._exit(128 + data[0])


@contextlib.contextmanager
def exit_on_signal(message: str | Callable[[], str]) -> Iterator[None]:
    """Within the block, SIGINT or SIGTERM prints `message` and ends the process (exit 128 + signum).

    Must be entered from the main thread. Outside the block the previous handlers are back.
    """
    text = message if callable(message) else (lambda: message)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = {s: signal.signal(s, _ignore) for s in SIGNALS}
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    watcher = threading.Thread(target=_watch, args=(read_fd, text), name="jaxmarl-lab-signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for s, handler in previous.items():
            signal.signal(s, handler)
        os.close(write_fd)  # the watcher reads end-of-file and returns
        watcher.join()


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A signal arriving inside the block ends the process only after the block."""
    with _CRITICAL:
        yield


__all__ = ["exit_on_signal", "critical"]
