"""One run directory, one writer: an OS file lock on ``RUNDIR/.lock``.

The lock is ``flock`` on an open file, so the kernel releases it when the holding process ends,
however it ends (a SIGKILL included): ``--resume`` after a crash never finds a stale lock. The
file holds the holder's PID, which a refused process names.
"""
from __future__ import annotations

import os

try:
    import fcntl
except ImportError:  # not POSIX: no lock (the runs are still checkpointed atomically)
    fcntl = None


class RunDirectoryError(Exception):
    """A run directory cannot be used: busy, unwritable, or holding a finished run."""


class RunDirectoryBusy(RunDirectoryError):
    """Another process is training in this run directory."""


class RunExists(RunDirectoryError):
    """The run directory holds a run that this trainer did not resume."""


class RunLock:
    """``with RunLock(out_dir):`` holds the directory's lock, or raises RunDirectoryBusy."""

    def __init__(self, out_dir: str):
        self.path = os.path.join(out_dir, ".lock")
        self.fd: int | None = None
        self.depth = 0  # re-entrant: nested acquire/release pairs in one holder

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        self.depth += 1
        if fcntl is None or self.fd is not None:
            return
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            self.depth -= 1
            raise RunDirectoryError(f"cannot use run directory {os.path.dirname(self.path)}: "
                                    f"{e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            self.depth -= 1
            raise RunDirectoryBusy(f"run directory {os.path.dirname(self.path)} is in use by "
                                   f"process {holder}; wait for it to finish or choose another "
                                   "--out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        self.depth = max(0, self.depth - 1)
        if self.fd is not None and self.depth == 0:
            os.close(self.fd)  # closing drops the flock
            self.fd = None
